package raftstore

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
)

// A write that times out on the leader, its followers cut off, logs where
// replication stands once per election timeout: the commit index and each
// follower's matched and next index, the state of its flow and its
// appends in flight.
func TestCommitStallLogsReplication(t *testing.T) {
	var logs testutil.LogBuffer
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		cfg.ElectionTick = 100 // 2 s: the leader stays leader while the writes time out
	})
	l := c.leader()
	if err := c.write("before"); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.members {
		if m != l {
			c.net.Isolate(m.addr)
		}
	}
	defer c.net.Heal()
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := createPadded(ctx, l.store, "stalled-"+string(rune('a'+i)), 1)
		cancel()
		if err == nil {
			t.Fatal("a write committed with both followers cut off")
		}
	}
	out := logs.String()
	if n := strings.Count(out, "a write timed out waiting to commit"); n != 1 {
		t.Fatalf("%d stall lines for three timed-out writes within an election timeout, want 1:\n%s", n, out)
	}
	for _, want := range []string{"commit ", "next ", "inflight ", "paused "} {
		if !strings.Contains(out, want) {
			t.Fatalf("the stall line lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, ": match "); n != 2 {
		t.Fatalf("the stall line describes %d followers, want 2:\n%s", n, out)
	}
}
