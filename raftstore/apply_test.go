package raftstore

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// A committed entry is applied, and its write acknowledged, while the Ready
// after it is still being written: it does not wait for the fsync of newer
// entries (apply.go). The second write of the raft log after the hook is
// armed (the commit of the proposal, written with the next entries) is held
// until the proposal returns or 5 s pass; with apply in the Ready loop the
// proposal could only return after that write.
func TestCommitNotHeldByTheNextWrite(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	m := c.leader()
	if err := c.write("settle"); err != nil {
		t.Fatal(err)
	}
	var saves atomic.Int32
	held := make(chan struct{})
	release := make(chan struct{})
	hook := func(op string) error {
		if op == "save" && saves.Add(1) == 2 {
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
		t.Fatal("the raft log was not written twice for one proposal")
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
