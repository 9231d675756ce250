package manager

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// A Control call that the leader serves waits for a read barrier: a leader
// cut off from the other managers, which still believes it leads, answers no
// read from its store (the others may already have elected a new leader and
// written). A healthy leader's calls pass the barrier.
func TestControlCallsPassAReadBarrier(t *testing.T) {
	c := newTestCluster(t, 3, 0)
	l := c.leader()
	info := &grpc.UnaryServerInfo{FullMethod: "/shoal.v1.Control/GetConfig"}
	var served atomic.Int32
	handler := func(context.Context, any) (any, error) { served.Add(1); return "ok", nil }
	call := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := l.m.UnaryInterceptor()(ctx, nil, info, handler)
		return err
	}
	// What the barrier costs a call on a healthy leader (one heartbeat round
	// to the followers, in process), for BENCHMARKS.md.
	const calls = 200
	took := make([]time.Duration, calls)
	for i := range took {
		start := time.Now()
		if err := call(time.Second); err != nil {
			t.Fatalf("healthy leader: %v", err)
		}
		took[i] = time.Since(start)
	}
	if served.Load() != calls {
		t.Fatalf("healthy leader: handler ran %d of %d times", served.Load(), calls)
	}
	slices.Sort(took)
	t.Logf("healthy leader: a Control call through the interceptor with its barrier: p50 %v, p99 %v (%d calls)",
		took[calls/2], took[calls*99/100], calls)

	c.net.Isolate(l.addr)
	if !l.m.Leading() {
		t.Fatal("the leader stepped down at once: the election timeout is 200 ms")
	}
	err := call(100 * time.Millisecond)
	if n := served.Load(); n != calls {
		t.Fatalf("a leader cut off from the quorum served a Control read from its store (err %v)", err)
	}
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("a leader cut off from the quorum: %v, want an error that says nothing was changed", err)
	}
	t.Logf("isolated leader: %v", err)

	// A call with a long deadline fails as soon as the cut-off leader steps
	// down (CheckQuorum: within two election timeouts, 400 ms here), not at
	// its deadline.
	if !l.m.Leading() {
		t.Fatal("the isolated leader already stepped down: the election timeout is 200 ms")
	}
	start := time.Now()
	err = call(10 * time.Second)
	if took := time.Since(start); err == nil || !strings.Contains(err.Error(), "stopped leading") || took > 3*time.Second {
		t.Fatalf("a call on a leader that steps down: %v after %v, want it to fail with \"stopped leading\" within 3 s", err, took)
	}
	if n := served.Load(); n != calls {
		t.Fatalf("the deposed leader served the call (err %v)", err)
	}
	t.Logf("leader stepping down: %v after %v", err, time.Since(start).Round(time.Millisecond))
}
