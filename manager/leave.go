package manager

import (
	"context"
	"fmt"
	"time"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// LeaveQuorum is the raft arithmetic of a manager leaving: how many
// managers would remain, how many of them this manager sees reachable, and
// whether those are a quorum of the remaining membership.
type LeaveQuorum struct {
	Remaining, ReachableRemaining int
	KeepsQuorum                   bool
}

// QuorumAfterLeave computes LeaveQuorum for the manager self leaving the
// raft membership members (as Members reports it). A member that is not in
// members changes nothing.
func QuorumAfterLeave(members []raftstore.MemberStatus, self string) LeaveQuorum {
	var q LeaveQuorum
	for _, mem := range members {
		if mem.NodeID == self {
			continue
		}
		q.Remaining++
		if mem.Reachable {
			q.ReachableRemaining++
		}
	}
	q.KeepsQuorum = q.Remaining > 0 && q.ReachableRemaining >= q.Remaining/2+1
	return q
}

// LeaveRefusal is the error `swarm leave` without --force gets on the
// manager self: always a FailedPrecondition, whose words (Docker's) say
// whether leaving erases the swarm (the last manager) or loses its quorum.
func LeaveRefusal(members []raftstore.MemberStatus, self string) error {
	msg := "You are attempting to leave the swarm on a node that is participating as a manager. "
	q := QuorumAfterLeave(members, self)
	if q.Remaining == 0 {
		msg += "Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message."
		return errdefs.FailedPrecondition("%s", msg)
	}
	if !q.KeepsQuorum {
		msg += fmt.Sprintf("Removing this node leaves %d managers out of %d. Without a Raft quorum your swarm will be inaccessible. "+
			"The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. ",
			q.ReachableRemaining, len(members))
	}
	msg += "The recommended way is to demote it first (`shoal node demote`). Use `--force` to suppress this message."
	return errdefs.FailedPrecondition("%s", msg)
}

// leaveRetry is how long LeaveRaft waits between attempts while there is
// no leader to ask, or a new one is settling in.
const leaveRetry = 200 * time.Millisecond

// LeaveRaft removes this running manager from the raft membership: a
// leader first hands leadership to another reachable member, then the
// leader is asked to remove this member, retried (every leaveRetry on the
// manager's clock) while no leader answers, until ctx ends (give it a
// deadline). A member already out of raft (demoted a moment ago) returns
// nil at once.
func (m *Manager) LeaveRaft(ctx context.Context) error {
	node := m.node
	if node.IsLeader() {
		if err := node.TransferLeadership(ctx, 0); err != nil {
			return err
		}
	}
	var err error
	for {
		if node.MemberByNodeID(m.cfg.NodeID) == nil || node.IsRemoved(node.RaftID()) {
			return nil
		}
		if l := node.LeaderMember(); l != nil && l.NodeId != m.cfg.NodeID {
			err = m.askLeave(ctx, l.Addr, node.RaftID())
			if err == nil || !errdefs.IsUnavailable(err) {
				return err
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return err
			}
			return errdefs.DeadlineExceeded("leaving raft: no leader answered in time: %v", ctx.Err())
		case <-m.cfg.Clock.After(leaveRetry):
		}
	}
}

func (m *Manager) askLeave(ctx context.Context, leader string, raftID uint64) error {
	conn, err := m.cfg.Dial(ctx, leader)
	if err != nil {
		return errdefs.Unavailable("connect to the leader at %s: %v", leader, err)
	}
	_, err = api.NewRaftClient(conn).Leave(ctx, &api.LeaveRaftRequest{RaftId: raftID})
	return errdefs.FromGRPC(err)
}
