package raftstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/shoal-project/shoal/errdefs"
)

// A node whose raft log cannot be written (DiskFaultError) does not stop.
// It rides the fault out:
//
//  1. The Ready whose Save failed is never advanced, and of its committed
//     entries only those durable before it are applied (the applier
//     finishes them first, apply.go): raft's contract forbids going past
//     what is not durable. The raft node is
//     stopped; nothing it held in memory only (unstable entries, a vote)
//     survives, and it sent nothing it had not persisted (a follower sends
//     after Save; a leader's own entries count only after Advance).
//  2. The fault is recorded: proposals, barriers and reads fail at once
//     with it, in-flight proposals get it too (they may still be applied
//     elsewhere), leadership subscribers see "not leading", and raft
//     messages from other members are answered with it, so the leader
//     shows this member as unreachable with a disk fault.
//  3. The disk is probed with a bounded backoff (Config.DiskRetryMin/Max
//     on the injected clock): a scratch write of Config.DiskProbeBytes,
//     then the bbolt file and the log segments are closed, reopened and
//     checked (a torn last write of the log cut off), and a write
//     transaction must commit.
//  4. Raft restarts from what is on disk (raft.RestartNode) with Applied
//     set to the store's applied index and the membership as of that
//     index, so nothing is applied twice; the in-memory log is rebuilt from
//     the file alone. A follower then catches up from the leader; a lone
//     member campaigns at once.

// raftHandle is the raft.Node a Node drives. Recovery from a disk fault
// replaces the raft node; the handle lets every caller reach the current
// one without a lock.
type raftHandle struct{ p atomic.Pointer[raftRef] }

type raftRef struct{ raft.Node }

func (h *raftHandle) set(rn raft.Node) { h.p.Store(&raftRef{rn}) }
func (h *raftHandle) get() raft.Node   { return h.p.Load().Node }

func (h *raftHandle) Tick()                              { h.get().Tick() }
func (h *raftHandle) Campaign(ctx context.Context) error { return h.get().Campaign(ctx) }
func (h *raftHandle) Propose(ctx context.Context, data []byte) error {
	return h.get().Propose(ctx, data)
}
func (h *raftHandle) ProposeConfChange(ctx context.Context, cc raftpb.ConfChangeI) error {
	return h.get().ProposeConfChange(ctx, cc)
}
func (h *raftHandle) Step(ctx context.Context, m raftpb.Message) error { return h.get().Step(ctx, m) }
func (h *raftHandle) Ready() <-chan raft.Ready                         { return h.get().Ready() }
func (h *raftHandle) Advance()                                         { h.get().Advance() }
func (h *raftHandle) ApplyConfChange(cc raftpb.ConfChangeI) *raftpb.ConfState {
	return h.get().ApplyConfChange(cc)
}
func (h *raftHandle) TransferLeadership(ctx context.Context, lead, to uint64) {
	h.get().TransferLeadership(ctx, lead, to)
}
func (h *raftHandle) ForgetLeader(ctx context.Context) error { return h.get().ForgetLeader(ctx) }
func (h *raftHandle) ReadIndex(ctx context.Context, rctx []byte) error {
	return h.get().ReadIndex(ctx, rctx)
}
func (h *raftHandle) Status() raft.Status         { return h.get().Status() }
func (h *raftHandle) ReportUnreachable(id uint64) { h.get().ReportUnreachable(id) }
func (h *raftHandle) ReportSnapshot(id uint64, st raft.SnapshotStatus) {
	h.get().ReportSnapshot(id, st)
}
func (h *raftHandle) Stop() {
	if r := h.p.Load(); r != nil {
		r.Stop()
	}
}

// confStateStorage is the storage a resumed raft starts from: the log on
// disk, with the membership as of the store's applied index (raft does not
// return the membership changes up to Applied again, so it must start
// with their result), and a commit index no lower than the applied one:
// entries already on disk are applied as soon as raft says they are
// committed, before the hard state naming that commit index is saved (a
// fault may stop it from being saved at all), and raft refuses to start
// with an applied index above its commit index.
type confStateStorage struct {
	*DiskStorage
	cs      raftpb.ConfState
	applied uint64
}

func (s confStateStorage) InitialState() (raftpb.HardState, raftpb.ConfState, error) {
	hs, _, err := s.DiskStorage.InitialState()
	hs.Commit = max(hs.Commit, s.applied)
	return hs, s.cs, err
}

// DiskFault returns the disk fault this member is riding out, nil when its
// raft log takes writes.
func (n *Node) DiskFault() *DiskFaultError { return n.fault.Load() }

// persist writes one Ready; a failure to write the disk comes back as a
// *DiskFaultError.
func (n *Node) persist(rd raft.Ready) error {
	var err error
	write := !raft.IsEmptyHardState(rd.HardState) || len(rd.Entries) > 0 || !raft.IsEmptySnap(rd.Snapshot)
	if f := n.injectFault.Load(); f != nil && write {
		err = (*f)("save") // a test's disk failure: nothing is written
	}
	if err == nil {
		err = n.storage.Save(rd.HardState, rd.Entries, rd.Snapshot, rd.MustSync)
	}
	if df := asDiskFault(n.storage.Path(), err); df != nil {
		return df
	}
	return err
}

// inFlightError is what a proposal in flight when the disk failed gets.
func inFlightError(df *DiskFaultError) error {
	class := errdefs.ErrUnavailable
	if errors.Is(df, errdefs.ErrResourceExhausted) {
		class = errdefs.ErrResourceExhausted
	}
	return errdefs.Newf(class, "%w (the write was in flight and may still be applied: read the state before retrying)", df)
}

// rideOutFault stops raft, records the fault and probes the disk until it
// takes writes, then restarts raft from it. It returns nil once raft runs
// again or ctx ended; any other error (a file found damaged) is final.
func (n *Node) rideOutFault(ctx context.Context, df *DiskFaultError) error {
	n.enterFault(df)
	backoff := n.cfg.DiskRetryMin
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-n.cfg.Clock.After(backoff):
		}
		err := n.probe()
		if err == nil {
			break
		}
		var again *DiskFaultError
		if !errors.As(err, &again) {
			return err
		}
		cur := n.fault.Load()
		if again.Errno != cur.Errno || again.Path != cur.Path {
			n.log.Warn("raft log still cannot be written", "err", again)
		}
		again.Since = cur.Since
		n.fault.Store(again)
		backoff = min(2*backoff, n.cfg.DiskRetryMax)
	}
	return n.resume()
}

func (n *Node) enterFault(df *DiskFaultError) {
	if df.Since.IsZero() {
		df.Since = n.cfg.Clock.Now()
	}
	n.fault.Store(df)
	// Not leading any more, before anyone learns of the fault from a
	// failed call (and may look).
	n.mu.Lock()
	wasLeader := n.isLeader
	n.isLeader, n.lead = false, raft.None
	n.faultLeadTerm = n.term
	n.notifyLeadershipLocked()
	n.mu.Unlock()
	// Stop raft where it is: the failed Ready is neither applied nor
	// advanced. Calls into the stopped node return raft.ErrStopped.
	n.raft.Stop()
	failed := inFlightError(df)
	n.mu.Lock()
	close(n.interrupt)
	for id, ch := range n.waiters {
		ch <- failed
		delete(n.waiters, id)
	}
	n.mu.Unlock()
	n.log.Error("the raft log cannot be written: this manager refuses writes and takes no part in raft until the disk takes writes again",
		"err", df, "was_leader", wasLeader)
}

// probe checks the disk and reopens the log file; nil means raft may
// restart from it.
func (n *Node) probe() error {
	if f := n.injectFault.Load(); f != nil {
		if err := (*f)("probe"); err != nil {
			if df := asDiskFault(n.storage.Path(), err); df != nil {
				return df
			}
			return err
		}
	}
	if err := probeDisk(n.storage.Path(), n.cfg.DiskProbeBytes); err != nil {
		return err
	}
	return n.storage.reopen()
}

// resume restarts raft from the reopened log file.
func (n *Node) resume() error {
	hs, snap, last, err := n.storage.durableState()
	if err != nil {
		return err
	}
	applied := n.applied.Load()
	if !raft.IsEmptySnap(snap) && snap.Metadata.Index > applied {
		if err := n.restoreSnapshot(snap); err != nil {
			return err
		}
		applied = snap.Metadata.Index
	}
	// The saved commit index may lag the applied one (confStateStorage);
	// the entries themselves must all be there.
	if applied > last {
		return &DamagedError{Path: n.storage.Path(), Detail: fmt.Sprintf(
			"after the disk fault it holds entries up to %d (committed up to %d), but this manager had applied %d: writes it had persisted are missing",
			last, hs.Commit, applied)}
	}
	n.mu.Lock()
	cs := n.confState
	n.mu.Unlock()
	cfg := n.raftConfig()
	cfg.Applied = applied
	cfg.Storage = confStateStorage{DiskStorage: n.storage, cs: cs, applied: applied}
	if n.mode == Bootstrap && n.storage.IsEmpty() {
		// The bootstrap itself never reached the disk: do it again.
		n.raft.set(raft.StartNode(cfg, n.bootstrapPeers))
	} else {
		n.raft.set(raft.RestartNode(cfg))
	}
	since := n.fault.Load().Since
	n.mu.Lock()
	n.interrupt = make(chan struct{})
	n.lead = raft.None
	n.notifyLeadershipLocked()
	n.mu.Unlock()
	n.forgotten.Store(0)
	select {
	case <-n.snapFault: // met before the disk came back
	default:
	}
	n.fault.Store(nil)
	n.log.Warn("the raft log takes writes again: raft member resumed", "applied", applied,
		"fault_lasted", n.cfg.Clock.Since(since).Round(time.Millisecond).String())
	if soleVoter(cs, n.raftID) {
		// Alone: lead again now rather than after an election timeout.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = n.raft.Campaign(ctx)
		cancel()
	}
	return nil
}

// faultStep answers a raft message while the disk fault lasts: a message
// only a leader sends tells who leads (so calls can be forwarded there),
// and the sender learns of the fault.
func (n *Node) faultStep(df *DiskFaultError, m raftpb.Message) error {
	switch m.Type {
	case raftpb.MsgApp, raftpb.MsgHeartbeat, raftpb.MsgSnap:
		n.mu.Lock()
		if m.Term >= n.faultLeadTerm && n.lead != m.From {
			n.faultLeadTerm, n.lead = m.Term, m.From
			n.notifyLeadershipLocked()
		}
		n.mu.Unlock()
	}
	return df
}

// interrupted is closed when a disk fault stops raft: waits for raft end.
func (n *Node) interrupted() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.interrupt
}

// faultOr returns the disk fault when there is one, else err.
func (n *Node) faultOr(err error) error {
	if df := n.fault.Load(); df != nil {
		return df
	}
	return err
}

// stoppedWhileProposing explains raft.ErrStopped from a proposal: raft
// stops for a disk fault, possibly after it took the proposal.
func (n *Node) stoppedWhileProposing() error {
	if df := n.fault.Load(); df != nil {
		return inFlightError(df)
	}
	return errdefs.ErrStopped
}

// reportSnapshotFault hands a disk fault met while saving a snapshot to the
// Ready loop, which rides it out like a failed Save.
func (n *Node) reportSnapshotFault(err error) bool {
	df := asDiskFault(n.storage.Path(), err)
	if df == nil {
		return false
	}
	select {
	case n.snapFault <- df:
	default:
	}
	return true
}

// peerDiskFault is a member's disk fault in a few words, "" if none known.
func (n *Node) peerDiskFault(id uint64) string {
	if id == n.raftID {
		if df := n.fault.Load(); df != nil {
			return df.Condition()
		}
		return ""
	}
	if t, ok := n.transport.(interface{ PeerDiskFault(uint64) string }); ok {
		return t.PeerDiskFault(id)
	}
	return ""
}
