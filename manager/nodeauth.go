package manager

import (
	"sync"
	"sync/atomic"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// nodeAuth answers the authorizer's two questions — was this node removed,
// has it been made a worker — from memory instead of a store read per call:
// a reconnect storm of thousands of agents after a failover otherwise piles
// thousands of store reads on the new leader.
//
// It is never staler than a store read. Its sets are updated by a watch's
// Filter, which the store runs on the apply loop inside Apply, in the same
// critical section that commits the transaction (raftstore.WatchOptions):
// a write is reflected here before Apply returns, so before any View can
// see it and before the writer is told it was applied. When the watch is
// ended (a snapshot replaced the store), the sets are rebuilt with the
// watch restarted, atomically, at the next call.
type nodeAuth struct {
	store *raftstore.Store

	watchMu sync.Mutex // serializes rebuilds
	// w is the live watch. Its channel never carries an event (the Filter
	// keeps them all); it is closed when the watch ends, which a
	// non-blocking receive sees without taking any lock: this is on every
	// authenticated call, and a mutex there convoys under load.
	w atomic.Pointer[raftstore.Watcher]

	mu      sync.RWMutex
	removed map[string]map[string]bool // cluster ID -> removed node IDs
	workers map[string]bool            // nodes whose desired role is worker
}

func newNodeAuth(store *raftstore.Store) *nodeAuth {
	a := &nodeAuth{store: store}
	a.rebuild()
	return a
}

// rebuild reads the sets from a snapshot and watches changes after it.
func (a *nodeAuth) rebuild() {
	a.watchMu.Lock()
	defer a.watchMu.Unlock()
	if w := a.w.Load(); w != nil && !ended(w) {
		return // another caller rebuilt it
	}
	w := a.store.ViewAndWatch(raftstore.WatchOptions{
		Kinds: []string{raftstore.KindCluster, raftstore.KindNode},
		// Never delivers anything: the channel stays empty, so the watch
		// is never cut off for being slow.
		Filter: func(ev raftstore.Event) bool { a.event(ev); return false },
		Buffer: 1,
	}, func(tx raftstore.ReadTx) {
		removed, workers := map[string]map[string]bool{}, map[string]bool{}
		for _, c := range tx.Clusters() {
			removed[c.Id] = removedSet(c)
		}
		for _, n := range tx.Nodes() {
			if n.GetSpec().GetDesiredRole() == api.NodeRole_WORKER {
				workers[n.Id] = true
			}
		}
		a.mu.Lock()
		a.removed, a.workers = removed, workers
		a.mu.Unlock()
	})
	a.w.Store(w)
}

// ended reports whether w's watch ended (its channel closed).
func ended(w *raftstore.Watcher) bool {
	select {
	case _, ok := <-w.C:
		return !ok
	default:
		return false
	}
}

func removedSet(c *api.Cluster) map[string]bool {
	set := make(map[string]bool, len(c.RemovedNodes))
	for _, r := range c.RemovedNodes {
		set[r.NodeId] = true
	}
	return set
}

// event applies one store event (on the apply loop).
func (a *nodeAuth) event(ev raftstore.Event) {
	switch o := ev.Object.(type) {
	case *api.Cluster:
		var set map[string]bool
		if ev.Action != raftstore.ActionDelete {
			set = removedSet(o)
		}
		a.mu.Lock()
		if set == nil {
			delete(a.removed, o.Id)
		} else {
			a.removed[o.Id] = set
		}
		a.mu.Unlock()
	case *api.Node:
		worker := ev.Action != raftstore.ActionDelete && o.GetSpec().GetDesiredRole() == api.NodeRole_WORKER
		a.mu.Lock()
		if worker {
			a.workers[o.Id] = true
		} else {
			delete(a.workers, o.Id)
		}
		a.mu.Unlock()
	}
}

// live makes sure the sets follow the store; false when they cannot (the
// caller then reads the store).
func (a *nodeAuth) live() bool {
	if !ended(a.w.Load()) {
		return true
	}
	a.rebuild()
	return !ended(a.w.Load())
}

// isRemoved reports whether nodeID is in a cluster's removed nodes.
func (a *nodeAuth) isRemoved(nodeID string) bool {
	if !a.live() {
		return a.readRemoved(nodeID)
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, set := range a.removed {
		if set[nodeID] {
			return true
		}
	}
	return false
}

// isWorker reports whether nodeID's desired role is worker.
func (a *nodeAuth) isWorker(nodeID string) bool {
	if !a.live() {
		return a.readWorker(nodeID)
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.workers[nodeID]
}

// readRemoved and readWorker are the store reads the sets stand for.
func (a *nodeAuth) readRemoved(nodeID string) bool {
	removed := false
	a.store.View(func(tx raftstore.ReadTx) {
		for _, c := range tx.Clusters() {
			for _, r := range c.RemovedNodes {
				if r.NodeId == nodeID {
					removed = true
				}
			}
		}
	})
	return removed
}

func (a *nodeAuth) readWorker(nodeID string) bool {
	worker := false
	a.store.View(func(tx raftstore.ReadTx) {
		if n := tx.Node(nodeID); n != nil && n.GetSpec().GetDesiredRole() == api.NodeRole_WORKER {
			worker = true
		}
	})
	return worker
}
