package raftstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/shoal-project/shoal/errdefs"
)

// A committed entry is applied, and its write acknowledged, while the Ready
// after it is still being written: it does not wait for the fsync of newer
// entries (apply.go). The first write of the raft log once the proposal's
// entry is on disk (its commit, with any newer entries) is held until the
// proposal returns or 5 s pass; with apply in the Ready loop the proposal
// could only return after that write.
func TestCommitNotHeldByTheNextWrite(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	m := c.leader()
	if err := c.write("settle"); err != nil {
		t.Fatal(err)
	}
	// The proposal's entry comes next; the first write after it is on
	// disk carries its commit.
	last, err := m.storage.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	var holding atomic.Bool
	held := make(chan struct{})
	release := make(chan struct{})
	hook := func(op string) error {
		if op != "save" {
			return nil
		}
		if now, _ := m.storage.LastIndex(); now > last && holding.CompareAndSwap(false, true) {
			close(held)
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
		}
		return nil
	}
	m.node.injectFault.Store(&hook)
	defer m.node.injectFault.Store(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- createService(ctx, m.store, "held") }()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the commit of the proposal was never written")
	}
	select {
	case err := <-errc:
		close(release)
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		close(release)
		t.Fatal("the committed write was acknowledged only after the next write of the log")
	}
}

// Stopping a member while writes stream in ends its applier with it, and
// every write in flight returns: applied, errdefs.ErrStopped, or (once the
// member stops leading) unavailable.
func TestStopUnderLoadEndsTheApplier(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	m := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var applied atomic.Int64
	var stopping atomic.Bool
	stop := make(chan struct{})
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				err := createService(ctx, m.store, fmt.Sprintf("w%d-%d", w, i))
				switch {
				case err == nil:
					applied.Add(1)
				case errors.Is(err, errdefs.ErrStopped):
					return
				case stopping.Load() && errdefs.IsUnavailable(err):
					return // the stopping member no longer leads
				default:
					t.Errorf("write: %v", err)
					return
				}
			}
		}()
	}
	c.eventually(10*time.Second, "writes applied", func() bool { return applied.Load() >= 100 })
	stopping.Store(true)
	c.stop(m)
	close(stop)
	returned := make(chan struct{})
	go func() { wg.Wait(); close(returned) }()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("writes in flight did not return after the member stopped")
	}
	select {
	case <-m.node.applier.exited:
	default:
		t.Fatal("the applier still runs after Run returned")
	}
}

// TestApplierBacklogIsBoundedByBytes: the Ready loop can hand the applier
// far more than 16 Readies while it lags (a follower that stops answering
// while it applies gets its leader deposed), and is held back only once
// applyBacklogBytes of entries wait. On the old queue of 16 batches the
// 17th hand-off waits for the (stopped) applier and the test fails.
func TestApplierBacklogIsBoundedByBytes(t *testing.T) {
	n := &Node{applier: newApplier()} // no applier goroutine: nothing is applied
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	small := []raftpb.Entry{{Index: 1, Data: make([]byte, 1024)}}
	for i := 0; i < 1000; i++ {
		if err := n.toApplier(ctx, applyBatch{entries: small}); err != nil {
			t.Fatalf("hand-off %d of small batches to a lagging applier: %v", i+1, err)
		}
	}
	// A batch past the byte bound waits until the applier makes room.
	big := []raftpb.Entry{{Index: 2, Data: make([]byte, applyBacklogBytes)}}
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	if err := n.toApplier(short, applyBatch{entries: big}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a batch past the backlog bound: %v, want it held until its deadline", err)
	}
	if got, want := n.applier.backlog.Load(), int64(1000*1024); got != want {
		t.Fatalf("backlog %d bytes after the refused hand-off, want %d", got, want)
	}
	// Once the applier runs, the backlog drains and the big batch goes in
	// (one batch is always let in, whatever its size).
	drained := make(chan struct{})
	go func() { // the applier's bookkeeping, without a store to apply to
		defer close(drained)
		for b := range n.applier.queue {
			n.applier.release(b.entries)
			if len(b.entries) > 0 && b.entries[0].Index == 2 {
				return
			}
		}
	}()
	if err := n.toApplier(ctx, applyBatch{entries: big}); err != nil {
		t.Fatalf("the big batch once the applier runs: %v", err)
	}
	<-drained
	if got := n.applier.backlog.Load(); got != 0 {
		t.Fatalf("backlog %d bytes once everything was applied, want 0", got)
	}
}
