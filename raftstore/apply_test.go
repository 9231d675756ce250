package raftstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
