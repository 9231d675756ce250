package raftstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// MemberStatus is one raft member as this node sees it.
type MemberStatus struct {
	RaftID    uint64
	NodeID    string
	Addr      string
	Leader    bool
	Reachable bool
	// DiskFault is set while the member's raft log cannot be written, in a
	// few words ("disk full"): for this member from its own state, for
	// others from what they answered the last raft messages with. Such a
	// member is not Reachable.
	DiskFault string
}

// Members lists the current raft members, ordered by node ID.
func (n *Node) Members() []MemberStatus {
	n.mu.Lock()
	lead := n.lead
	out := make([]MemberStatus, 0, len(n.members))
	for id, m := range n.members {
		out = append(out, MemberStatus{RaftID: id, NodeID: m.NodeId, Addr: m.Addr, Leader: id == lead})
	}
	n.mu.Unlock()
	for i := range out {
		out[i].DiskFault = n.peerDiskFault(out[i].RaftID)
		out[i].Reachable = out[i].DiskFault == "" && n.peerReachable(out[i].RaftID)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// Member returns the member with a raft ID, nil if none.
func (n *Node) Member(id uint64) *api.RaftMember {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m := n.members[id]; m != nil {
		return proto.Clone(m).(*api.RaftMember)
	}
	return nil
}

// MemberByNodeID returns the member with a node ID, nil if none.
func (n *Node) MemberByNodeID(nodeID string) *api.RaftMember {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.members {
		if m.NodeId == nodeID {
			return proto.Clone(m).(*api.RaftMember)
		}
	}
	return nil
}

// IsRemoved reports whether a raft ID was removed from the cluster (and
// must never be accepted again).
func (n *Node) IsRemoved(id uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.removed[id]
}

// RemovedMembers lists removed raft IDs.
func (n *Node) RemovedMembers() []uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]uint64, 0, len(n.removed))
	for id := range n.removed {
		out = append(out, id)
	}
	return out
}

// SeedMembers tells a member that is about to join (JoinExisting) who the
// current members are, so it can answer the leader before it has replayed
// the membership changes from the log. Call it before Run.
func (n *Node) SeedMembers(members []*api.RaftMember) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range members {
		if _, known := n.members[m.RaftId]; known {
			continue
		}
		n.members[m.RaftId] = proto.Clone(m).(*api.RaftMember)
		if m.RaftId != n.raftID {
			n.transport.AddPeer(m.RaftId, m.Addr)
		}
	}
}

// RaftMembers returns the member records.
func (n *Node) RaftMembers() []*api.RaftMember {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*api.RaftMember, 0, len(n.members))
	for _, m := range n.members {
		out = append(out, proto.Clone(m).(*api.RaftMember))
	}
	return out
}

// AddMember adds a member with a new raft ID and waits until the change is
// applied here. Only the leader may add members, and only when the cluster
// keeps a reachable majority with the new member counted.
func (n *Node) AddMember(ctx context.Context, nodeID, addr string) (uint64, error) {
	if !n.IsLeader() {
		return 0, n.unavailable()
	}
	release, err := n.lockConfChange(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	if m := n.MemberByNodeID(nodeID); m != nil {
		return 0, errdefs.AlreadyExists("node %s is already a raft member", nodeID)
	}
	reach, total := n.reachable()
	if reach < total/2+1 {
		return 0, errdefs.FailedPrecondition("cannot add a manager: quorum lost (%d of %d managers reachable)", reach, total)
	}
	id := NewRaftID()
	for n.IsRemoved(id) || n.Member(id) != nil {
		id = NewRaftID()
	}
	m := &api.RaftMember{RaftId: id, NodeId: nodeID, Addr: addr}
	return id, n.changeMembership(ctx, raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: id}, m)
}

// RemoveMember removes a member and waits until the change is applied here.
// It refuses a removal that would leave fewer reachable members than the
// new majority needs. The leader cannot remove itself: transfer leadership
// first.
func (n *Node) RemoveMember(ctx context.Context, id uint64) error {
	if !n.IsLeader() {
		return n.unavailable()
	}
	m := n.Member(id)
	if m == nil {
		return errdefs.NotFound("raft member %x not found", id)
	}
	if id == n.raftID {
		return errdefs.FailedPrecondition("the leader cannot remove itself; transfer leadership first")
	}
	release, err := n.lockConfChange(ctx)
	if err != nil {
		return err
	}
	defer release()
	if n.Member(id) == nil {
		return errdefs.NotFound("raft member %x not found", id)
	}
	// A leader elected a moment ago has not heard from everyone yet: give
	// reachability up to two election timeouts to settle before refusing.
	settle := n.cfg.Clock.After(2 * time.Duration(n.cfg.ElectionTick) * n.cfg.Tick)
	for {
		reach, total := n.reachable()
		if n.peerReachable(id) {
			reach--
		}
		after := total - 1
		if reach >= after/2+1 {
			break
		}
		select {
		case <-settle:
			return errdefs.FailedPrecondition("removing this manager would lose quorum: %d of the remaining %d managers are reachable, %d are needed", reach, after, after/2+1)
		case <-ctx.Done():
			return n.ctxError(ctx, ctx.Err())
		case <-n.cfg.Clock.After(50 * time.Millisecond):
		}
	}
	return n.changeMembership(ctx, raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: id}, m)
}

// UpdateMemberAddr records a member's new address.
func (n *Node) UpdateMemberAddr(ctx context.Context, id uint64, addr string) error {
	m := n.Member(id)
	if m == nil {
		return errdefs.NotFound("raft member %x not found", id)
	}
	if m.Addr == addr {
		return nil
	}
	release, err := n.lockConfChange(ctx)
	if err != nil {
		return err
	}
	defer release()
	m.Addr = addr
	return n.changeMembership(ctx, raftpb.ConfChange{Type: raftpb.ConfChangeUpdateNode, NodeID: id}, m)
}

// lockConfChange takes this node's membership-change slot, bounded by
// ctx, and makes sure no earlier change is still unapplied. Raft accepts
// one membership change at a time: a change proposed while another is
// committed but not yet applied is silently turned into an empty entry,
// and its proposer would wait for it until its deadline (two managers
// promoted by one `node promote` met exactly that). So changes made
// through this node go one by one, and the first after an election waits
// for a barrier, which applies everything the previous leader proposed.
// Call release once the change is applied or abandoned.
func (n *Node) lockConfChange(ctx context.Context) (release func(), err error) {
	select {
	case n.confSlot <- struct{}{}:
	case <-ctx.Done():
		return nil, n.ctxError(ctx, ctx.Err())
	}
	release = func() { <-n.confSlot }
	if err := n.Barrier(ctx); err != nil {
		release()
		return nil, err
	}
	// The barrier is applied here; raft counts it applied once its Ready
	// is advanced, a moment later.
	if err := n.waitRaftApplied(ctx, n.applied.Load()); err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// waitRaftApplied waits until raft counts index applied (its Ready
// advanced), which it needs before a membership change or a campaign.
func (n *Node) waitRaftApplied(ctx context.Context, index uint64) error {
	for n.raft.Status().Applied < index {
		select {
		case <-ctx.Done():
			return n.ctxError(ctx, ctx.Err())
		case <-n.cfg.Clock.After(time.Millisecond):
		}
	}
	return nil
}

// changeMembership proposes cc and waits until it is applied here. Hold
// the slot of lockConfChange.
func (n *Node) changeMembership(ctx context.Context, cc raftpb.ConfChange, m *api.RaftMember) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	cc.ID = n.reqBase | (n.reqSeq.Add(1) & 0xffffffff)
	cc.Context = data
	ch, forget := n.register(cc.ID)
	if err := n.raft.ProposeConfChange(ctx, cc); err != nil {
		forget()
		if errors.Is(err, raft.ErrStopped) {
			return n.stoppedWhileProposing()
		}
		return n.ctxError(ctx, err)
	}
	return n.await(ctx, ch, forget)
}

func (n *Node) applyConfChange(index uint64, cc raftpb.ConfChange) {
	var m api.RaftMember
	if err := proto.Unmarshal(cc.Context, &m); err != nil || (cc.Type != raftpb.ConfChangeRemoveNode && m.RaftId != cc.NodeID) {
		// Keep raft's view consistent but refuse the member: every replica
		// decides the same way.
		cc.Type = raftpb.ConfChangeRemoveNode
	}
	var result error
	n.mu.Lock()
	if n.removed[cc.NodeID] && cc.Type != raftpb.ConfChangeRemoveNode {
		result = errdefs.FailedPrecondition("raft ID %x was removed and cannot come back", cc.NodeID)
		cc.NodeID = raft.None // a no-op change
	}
	n.mu.Unlock()
	cs := n.raft.ApplyConfChange(cc)
	n.mu.Lock()
	n.confState = *cs
	switch cc.Type {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeUpdateNode:
		if cc.NodeID != raft.None {
			n.members[cc.NodeID] = &m
			if cc.NodeID != n.raftID {
				n.transport.AddPeer(cc.NodeID, m.Addr)
			}
		}
	case raftpb.ConfChangeRemoveNode:
		delete(n.members, cc.NodeID)
		n.removed[cc.NodeID] = true
		if cc.NodeID != n.raftID {
			n.transport.RemovePeer(cc.NodeID)
		}
	}
	if ch, ok := n.waiters[cc.ID]; ok {
		ch <- result
		delete(n.waiters, cc.ID)
	}
	n.mu.Unlock()
	n.log.Info("raft membership changed", "index", index, "change", cc.Type.String(), "member", fmt.Sprintf("%x", cc.NodeID), "addr", m.Addr)
	if cc.Type == raftpb.ConfChangeRemoveNode && cc.NodeID == n.raftID {
		n.removedOnce.Do(func() { close(n.removedSelf) })
	}
}

// TransferLeadership asks raft to hand leadership to another member and
// waits (bounded by ctx) until some other member leads.
func (n *Node) TransferLeadership(ctx context.Context, to uint64) error {
	if !n.IsLeader() {
		return nil
	}
	if to == raft.None {
		for _, m := range n.Members() {
			if m.RaftID != n.raftID && m.Reachable {
				to = m.RaftID
				break
			}
		}
	}
	if to == raft.None {
		return errdefs.FailedPrecondition("no other reachable manager to hand leadership to")
	}
	sub, cancel := n.SubscribeLeadership()
	defer cancel()
	n.raft.TransferLeadership(ctx, n.raftID, to)
	for {
		if l := n.Leader(); l != raft.None && l != n.raftID {
			return nil
		}
		select {
		case <-sub:
		case <-ctx.Done():
			return n.ctxError(ctx, ctx.Err())
		}
	}
}

// ---- leadership ----

func (n *Node) leadershipChanged(lead uint64, isLeader bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	was := n.isLeader
	if lead != raft.None && lead != n.lead {
		n.leaderChanges.Add(1)
	}
	n.lead, n.isLeader = lead, isLeader
	if was && !isLeader {
		for id, ch := range n.waiters {
			ch <- ErrLostLeadership
			delete(n.waiters, id)
		}
	}
	if lead != raft.None {
		// A leader (again): should it become unreachable later, it is
		// forgotten anew, even one forgotten before.
		n.forgotten.Store(0)
		n.log.Info("raft leader", "leader", fmt.Sprintf("%x", lead), "self", isLeader, "term", n.term)
	}
	n.notifyLeadershipLocked()
}

func (n *Node) notifyLeadershipLocked() {
	for ch := range n.leaderSubs {
		select {
		case ch <- struct{}{}:
		default: // a notification is already pending
		}
	}
}

// SubscribeLeadership returns a channel that receives a value whenever
// leadership may have changed; read IsLeader/Leader to learn the state. At
// most one notification is pending at a time, so a slow reader never blocks
// raft. Call cancel to unsubscribe.
func (n *Node) SubscribeLeadership() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	n.leaderSubs[ch] = struct{}{}
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		delete(n.leaderSubs, ch)
		n.mu.Unlock()
	}
}

// IsLeader reports whether this member leads.
func (n *Node) IsLeader() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.isLeader
}

// Leader returns the current leader's raft ID, 0 when there is none.
func (n *Node) Leader() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lead
}

// LeaderMember returns the leader's member record, nil when unknown.
func (n *Node) LeaderMember() *api.RaftMember {
	return n.Member(n.Leader())
}

// LeaderChanges is how many times this member has seen a new leader take
// over since it started (the first leader it saw included).
func (n *Node) LeaderChanges() uint64 { return n.leaderChanges.Load() }

// Term is the last known raft term.
func (n *Node) Term() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.term
}

// Campaign makes this member start an election now instead of waiting for
// the election timeout (used after bootstrapping a single-member cluster).
func (n *Node) Campaign(ctx context.Context) error {
	return n.raft.Campaign(ctx)
}

// ElectionTimeout is the time a follower waits for the leader before it
// campaigns (ElectionTick ticks; raft randomizes it up to twice that).
func (n *Node) ElectionTimeout() time.Duration {
	return time.Duration(n.cfg.ElectionTick) * n.cfg.Tick
}
