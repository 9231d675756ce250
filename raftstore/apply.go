package raftstore

import (
	"context"
	"errors"
	"sort"
	"sync/atomic"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// The applier applies committed entries to the store on a goroutine of its
// own, so the Ready loop writes the next entries while the last ones are
// applied (doc.go, "Ready loop contract").

// The applier's backlog is bounded by bytes, not by Readies: a full queue
// holds the Ready loop back, and a Ready loop held back sends nothing, not
// even heartbeats and the answers to the leader's appends. A follower whose
// applier falls behind for a moment (it applies everything the leader does,
// on a loaded machine) must keep answering, or the leader, hearing from no
// quorum, steps down (CheckQuorum): at 10,000 simulated nodes and 500,000
// tasks the queue of 16 Readies filled and leaders were deposed again and
// again. Committed entries are in raft's in-memory log anyway; the queue
// holds slices of them.
const (
	// applyQueueLen bounds the batches waiting (one Ready's committed
	// entries each).
	applyQueueLen = 4096
	// applyBacklogBytes bounds the bytes of entries waiting; one batch is
	// always let in, whatever its size.
	applyBacklogBytes = 256 << 20
)

// applyBatch is committed entries to apply in order, or, with done set, a
// barrier the applier closes once every batch queued before it is applied.
type applyBatch struct {
	entries []raftpb.Entry
	done    chan struct{}
}

// applier is the goroutine that applies committed entries. Run starts it
// and shutdown stops it; it stops by itself only on an entry it cannot
// apply (err, read after exited is closed), which stops the node.
type applier struct {
	queue   chan applyBatch
	backlog atomic.Int64  // bytes of entries queued and not yet applied
	room    chan struct{} // a token when the backlog shrank
	stop    chan struct{} // closed by shutdown
	exited  chan struct{} // closed when the goroutine has returned
	err     error
}

func newApplier() *applier {
	return &applier{
		queue:  make(chan applyBatch, applyQueueLen),
		room:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		exited: make(chan struct{}),
	}
}

// release takes applied entries off the backlog and wakes a waiting
// hand-off.
func (a *applier) release(ents []raftpb.Entry) {
	a.backlog.Add(-batchBytes(ents))
	select {
	case a.room <- struct{}{}:
	default:
	}
}

// batchBytes is what a batch counts against the backlog.
func batchBytes(ents []raftpb.Entry) int64 {
	var n int64
	for i := range ents {
		n += int64(len(ents[i].Data))
	}
	return n
}

// runApplier applies batches until shutdown or an entry it cannot apply.
// A batch is always applied whole, so a membership change is never half
// done; batches still queued at shutdown are dropped (their proposers get
// errdefs.ErrStopped from shutdown).
func (n *Node) runApplier() {
	a := n.applier
	defer close(a.exited)
	for {
		select {
		case <-a.stop:
			return
		case b := <-a.queue:
			if len(b.entries) > 0 {
				if err := n.applyEntries(b.entries); err != nil {
					a.err = err
					return
				}
				a.release(b.entries)
			}
			if b.done != nil {
				close(b.done)
			}
		}
	}
}

// applyEntries applies committed entries in order, wakes WaitApplied and
// takes a snapshot when one is due: the store then matches the applied
// index exactly, and the membership is the one as of that index.
func (n *Node) applyEntries(ents []raftpb.Entry) error {
	var run txRun
	for _, e := range ents {
		if err := n.apply(e, &run); err != nil {
			n.flush(&run) // what came before it was sound
			return err
		}
	}
	n.flush(&run)
	n.appliedMu.Lock()
	close(n.appliedNotify)
	n.appliedNotify = make(chan struct{})
	n.appliedMu.Unlock()
	n.maybeSnapshot()
	return nil
}

// errApplierStopped is what the Ready loop gets when the applier stopped
// without an error of its own (only at shutdown).
var errApplierStopped = errors.New("raft applier stopped")

// toApplier queues a batch for the applier. It fails when ctx ends or the
// applier stopped.
func (n *Node) toApplier(ctx context.Context, b applyBatch) error {
	a := n.applier
	if size := batchBytes(b.entries); size > 0 {
		for a.backlog.Load() > 0 && a.backlog.Load()+size > applyBacklogBytes {
			select {
			case <-a.room:
			case <-a.exited:
				return n.applierError()
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		a.backlog.Add(size)
	}
	select {
	case a.queue <- b:
		return nil
	case <-a.exited:
		a.backlog.Add(-batchBytes(b.entries))
		return n.applierError()
	case <-ctx.Done():
		a.backlog.Add(-batchBytes(b.entries))
		return ctx.Err()
	}
}

// drainApplier returns once every batch queued so far is applied.
func (n *Node) drainApplier(ctx context.Context) error {
	done := make(chan struct{})
	if err := n.toApplier(ctx, applyBatch{done: done}); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-n.applier.exited:
		return n.applierError()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *Node) applierError() error {
	if n.applier.err != nil {
		return n.applier.err
	}
	return errApplierStopped
}

// stopApplier stops the applier after the batch it is applying and waits
// for it. Called by shutdown while raft still runs, so that a membership
// change being applied reaches raft.
func (n *Node) stopApplier() {
	close(n.applier.stop)
	<-n.applier.exited
}

// splitDurable splits a Ready's committed entries into those already on
// this member's disk before the Ready is written, which the applier may
// apply while the Ready is written, and the rest (a follower may learn in
// one Ready of entries and of their commit), which wait for the write. The
// durable ones end before the first entry this Ready writes (it may replace
// entries from that index on) and at the last index the log holds; none
// when the Ready carries a snapshot, which replaces the store first.
func (n *Node) splitDurable(rd raft.Ready) (durable, rest []raftpb.Entry) {
	ents := rd.CommittedEntries
	if len(ents) == 0 || !raft.IsEmptySnap(rd.Snapshot) {
		return nil, ents
	}
	last, err := n.storage.LastIndex()
	if err != nil {
		return nil, ents
	}
	if len(rd.Entries) > 0 && rd.Entries[0].Index <= last {
		last = rd.Entries[0].Index - 1
	}
	i := sort.Search(len(ents), func(i int) bool { return ents[i].Index > last })
	return ents[:i], ents[i:]
}

// hasConfChange says whether entries hold a membership change.
func hasConfChange(ents []raftpb.Entry) bool {
	for _, e := range ents {
		if e.Type == raftpb.EntryConfChange || e.Type == raftpb.EntryConfChangeV2 {
			return true
		}
	}
	return false
}
