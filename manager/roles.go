package manager

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// rolePass is how often the role manager looks again while a change is
// pending (a refused removal, a member that is not caught up yet).
const rolePass = 2 * time.Second

// manageRoles is the leader's role manager. A demoted manager leaves raft
// before its certificate changes (the CA keeps issuing it a manager
// certificate while it is a member); a leader being demoted hands off
// leadership first, and the next leader finishes the job. Removals that
// would lose quorum are refused by raft and retried. It also keeps each
// manager node's recorded raft ID and address in step with the membership.
func (m *Manager) manageRoles(ctx context.Context) error {
	w := m.store.Watch(raftstore.WatchOptions{Kinds: []string{raftstore.KindNode}})
	defer w.Close()
	tick := m.cfg.Clock.NewTicker(rolePass)
	defer tick.Stop()
	for {
		m.reconcileRoles(ctx)
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-w.C:
			if !ok {
				w = m.store.Watch(raftstore.WatchOptions{Kinds: []string{raftstore.KindNode}})
			}
		case <-tick.Chan():
		}
	}
}

func (m *Manager) reconcileRoles(ctx context.Context) {
	var nodes []*api.Node
	m.store.View(func(tx raftstore.ReadTx) { nodes = tx.Nodes() })
	for _, n := range nodes {
		member := m.node.MemberByNodeID(n.Id)
		switch {
		case n.GetSpec().GetDesiredRole() == api.NodeRole_WORKER && member != nil:
			if member.RaftId == m.node.RaftID() {
				m.log.Info("demoting this manager: handing leadership to another manager first")
				tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				if err := m.node.TransferLeadership(tctx, 0); err != nil {
					m.log.Warn("leadership transfer for demotion", "err", err)
				}
				cancel()
				return // the next leader removes this member
			}
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := m.node.RemoveMember(rctx, member.RaftId)
			cancel()
			if err != nil {
				m.log.Warn("demotion: removing the raft member failed; will retry", "node", n.Id, "err", err)
				continue
			}
			m.log.Info("demoted manager left the raft cluster", "node", n.Id)
		case member != nil && (n.GetManagerStatus().GetRaftId() != member.RaftId || n.GetManagerStatus().GetAddr() != member.Addr):
			c := proto.Clone(n).(*api.Node)
			c.ManagerStatus = &api.ManagerStatus{RaftId: member.RaftId, Addr: member.Addr}
			uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_ = m.store.Update(uctx, func(tx *raftstore.Tx) error { return tx.Update(c) })
			cancel()
		}
	}
}
