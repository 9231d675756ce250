package raftstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shoal-project/shoal/errdefs"
)

// A committed entry that cannot be applied (its bytes do not decode as a
// transaction) is skipped the same way on every member: the proposer gets
// an error, no member stops, every member converges, and a member
// restarted over the log that holds the entry comes back up.
func TestPoisonEntryIsSkippedEverywhereAndSurvivesRestart(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	if err := c.write("before"); err != nil {
		t.Fatal(err)
	}
	l := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := l.node.Propose(ctx, CmdTransaction, []byte{0xff, 0xff, 0xff, 0x01})
	if !errors.Is(err, errdefs.ErrInternal) {
		t.Fatalf("poison entry: got %v, want an internal error", err)
	}
	if err := c.write("after"); err != nil {
		t.Fatalf("write after the poison entry: %v", err)
	}
	c.converged()
	for _, m := range c.running() {
		select {
		case err := <-m.errc:
			t.Fatalf("member %d stopped: %v", m.idx, err)
		default:
		}
	}
	// Every member restarts over a log holding the entry.
	for _, m := range c.members {
		c.stop(m)
	}
	for _, m := range c.members {
		c.start(m, Restart)
	}
	if err := c.write("restarted"); err != nil {
		t.Fatalf("write after restart: %v", err)
	}
	c.converged()
	c.leader().store.View(func(tx ReadTx) {
		for _, name := range []string{"before", "after", "restarted"} {
			if tx.ServiceByName(name) == nil {
				t.Errorf("service %s missing", name)
			}
		}
	})
}
