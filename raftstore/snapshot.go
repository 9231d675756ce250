package raftstore

import (
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// snapshotVersion is StoreSnapshot.version as written by this binary.
const snapshotVersion = 1

// Snapshots bound the log by bytes as well as by entries: entries of a
// megabyte (thousands of tasks written at once) would otherwise let 10,000
// of them fill gigabytes of disk before a snapshot.
const (
	// snapshotMinLogBytes: a snapshot is due once the entries applied
	// since the last one hold this much, or snapshotLogRatio times the
	// last snapshot's size if that is more (so the log costs at most a
	// few times the state's disk, and large states are not snapshotted
	// over and over).
	snapshotMinLogBytes = 8 << 20
	// snapshotLogRatio: a snapshot encodes the whole state, so its CPU
	// per byte of log is 1/snapshotLogRatio of an encode. At 1 the
	// members spent 10 % of their CPU on snapshots while 1,000,000 tasks
	// were created (each task is written twice, so the state grew by half
	// between snapshots); at 2 a third less, for a log (and a replay at
	// restart) of up to twice the state's snapshot.
	snapshotLogRatio = 2
	// keepLogBytes caps what a snapshot keeps of the log for slow
	// followers, whatever the number of entries to keep says; a follower
	// further behind gets the snapshot.
	keepLogBytes = 8 << 20
)

// maybeSnapshot starts a snapshot in the background when enough entries,
// or enough bytes of entries, were applied since the last one. Called by
// the applier after a batch, so the store's content matches the applied
// index exactly and the membership is the one as of that index.
func (n *Node) maybeSnapshot() {
	applied := n.applied.Load()
	logBytes := n.logBytes.Load()
	due := applied-n.snapIndex.Load() >= n.snapEvery.Load() ||
		uint64(logBytes) >= max(snapshotMinLogBytes, snapshotLogRatio*n.lastSnapBytes.Load())
	if !due || !n.snapshotting.CompareAndSwap(false, true) {
		return
	}
	objs, version := n.store.Objects() // immutable: safe to encode off the loop
	n.mu.Lock()
	cs := n.confState
	snap := &api.StoreSnapshot{Version: snapshotVersion}
	for _, m := range n.members {
		snap.Members = append(snap.Members, proto.Clone(m).(*api.RaftMember))
	}
	for id := range n.removed {
		snap.RemovedMembers = append(snap.RemovedMembers, id)
	}
	n.mu.Unlock()
	if version > applied {
		applied = version
	}
	go func() {
		defer n.snapshotting.Store(false)
		start := n.cfg.Clock.Now()
		for _, o := range objs {
			snap.Objects = append(snap.Objects, Wrap(o))
		}
		raw, err := proto.Marshal(snap)
		if err != nil {
			n.log.Error("encode snapshot", "err", err)
			return
		}
		data := encodeSnapshotData(raw)
		keep := n.storage.entriesWithin(applied, n.snapKeep.Load(), keepLogBytes)
		if f := n.injectFault.Load(); f != nil {
			err = (*f)("snapshot") // a test's disk failure
		}
		if err == nil {
			_, err = n.storage.CreateSnapshot(applied, &cs, data, keep)
		}
		if err != nil {
			if !n.reportSnapshotFault(err) { // a disk fault is ridden out by the Ready loop
				n.log.Error("save snapshot", "index", applied, "err", err)
			}
			return
		}
		n.snapIndex.Store(applied)
		n.logBytes.Add(-logBytes) // what was applied meanwhile still counts
		n.lastSnapBytes.Store(uint64(len(data)))
		n.snapLatency.Observe(n.cfg.Clock.Since(start))
		n.log.Debug("snapshot saved", "index", applied, "bytes", len(data), "objects", len(objs))
	}()
}

// SetSnapshotPolicy changes, at run time, the applied entries between
// snapshots and the entries kept after one for slow followers (the
// cluster's raft settings, `swarm update --snapshot-interval`). A zero
// value restores the configured one.
func (n *Node) SetSnapshotPolicy(interval, keep uint64) {
	if interval == 0 {
		interval = n.cfg.SnapshotInterval
	}
	if keep == 0 {
		keep = n.cfg.LogEntriesForSlowFollowers
	}
	n.snapEvery.Store(interval)
	n.snapKeep.Store(keep)
}

// restoreSnapshot replaces the store and the member list with a snapshot's.
func (n *Node) restoreSnapshot(s raftpb.Snapshot) error {
	snap, objs, err := DecodeSnapshotObjects(s.Data)
	if err != nil {
		return fmt.Errorf("snapshot at index %d: %w", s.Metadata.Index, err)
	}
	if err := n.store.Restore(s.Metadata.Index, objs); err != nil {
		return err
	}
	n.mu.Lock()
	for id := range n.members {
		if id != n.raftID {
			n.transport.RemovePeer(id)
		}
	}
	n.members = map[uint64]*api.RaftMember{}
	for _, m := range snap.Members {
		n.members[m.RaftId] = m
		if m.RaftId != n.raftID {
			n.transport.AddPeer(m.RaftId, m.Addr)
		}
	}
	n.removed = map[uint64]bool{}
	for _, id := range snap.RemovedMembers {
		n.removed[id] = true
	}
	n.confState = s.Metadata.ConfState
	n.mu.Unlock()
	n.applied.Store(s.Metadata.Index)
	n.snapIndex.Store(s.Metadata.Index)
	// The log applied from here is measured against this snapshot, as
	// against one this member took: a manager restarted at 1M tasks with
	// nothing recorded snapshotted its whole store after every 8 MiB of
	// the log it replayed, one snapshot after the other.
	n.logBytes.Store(0)
	n.lastSnapBytes.Store(uint64(len(s.Data)))
	n.log.Info("restored snapshot", "index", s.Metadata.Index, "objects", len(objs), "members", len(snap.Members))
	return nil
}

// DecodeSnapshot decodes snapshot data, checking its version.
func DecodeSnapshot(data []byte) (*api.StoreSnapshot, error) {
	raw, err := decodeSnapshotData(data)
	if err != nil {
		return nil, err
	}
	var snap api.StoreSnapshot
	if err := proto.Unmarshal(raw, &snap); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := checkSnapshotVersion(snap.Version); err != nil {
		return nil, err
	}
	return &snap, nil
}

// checkSnapshotVersion refuses a snapshot format this binary does not read.
func checkSnapshotVersion(v uint32) error {
	if v != snapshotVersion {
		return fmt.Errorf("snapshot format %d is not understood by this shoald (it reads %d)", v, snapshotVersion)
	}
	return nil
}
