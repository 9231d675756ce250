package manager

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/manager/reconcile"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// rolePass is how often the role manager looks again at a manager node (a
// member whose address may change, a joining manager not caught up yet).
const rolePass = 2 * time.Second

// Retries of a refused change (a removal that would lose quorum, a failed
// leadership transfer).
const (
	roleMinRetry = 500 * time.Millisecond
	roleMaxRetry = 5 * time.Second
)

// raftMembers is what the role manager needs of the raft member
// (*raftstore.Node); tests give it a fake.
type raftMembers interface {
	MemberByNodeID(nodeID string) *api.RaftMember
	RaftID() uint64
	TransferLeadership(ctx context.Context, to uint64) error
	RemoveMember(ctx context.Context, id uint64) error
}

var _ raftMembers = (*raftstore.Node)(nil)

// manageRoles is the leader's role manager. A demoted manager leaves raft
// before its certificate changes (the CA keeps issuing it a manager
// certificate while it is a member); a leader being demoted hands off
// leadership first, and the next leader finishes the job. Removals that
// would lose quorum are refused by raft and retried. It also keeps each
// manager node's recorded raft ID and address in step with the membership.
func (m *Manager) manageRoles(ctx context.Context) error {
	return newRoleManager(m.store, m.node, m.cfg.Clock, m.log).Run(ctx)
}

// roleManager reconciles nodes (keyed by node ID) against the raft
// membership, on a reconcile.Driver.
type roleManager struct {
	store   *raftstore.Store
	members raftMembers
	clock   clockwork.Clock
	log     *slog.Logger
}

func newRoleManager(store *raftstore.Store, members raftMembers, clock clockwork.Clock, log *slog.Logger) *roleManager {
	return &roleManager{store: store, members: members, clock: clock, log: log}
}

// Run manages roles until ctx ends.
func (r *roleManager) Run(ctx context.Context) error {
	return reconcile.New(reconcile.Config{
		Name:     "roles",
		Store:    r.store,
		Kinds:    []string{raftstore.KindNode},
		Clock:    r.clock,
		Log:      r.log,
		MinRetry: roleMinRetry,
		MaxRetry: roleMaxRetry,
	}, r).Run(ctx)
}

func (r *roleManager) Snapshot(tx raftstore.ReadTx, mark func(string)) {
	for _, n := range tx.Nodes() {
		mark(n.Id)
	}
}

func (r *roleManager) Event(ev raftstore.Event, mark func(string)) { mark(ev.Object.GetId()) }

// Reconcile handles each node in ID order. Once this leader hands off its
// leadership for its own demotion, the nodes after it are left for later
// (the next leader, most likely).
func (r *roleManager) Reconcile(ctx context.Context, ids []string, out *reconcile.Outcome) {
	later := r.clock.Now().Add(rolePass)
	for i, id := range ids {
		var n *api.Node
		r.store.View(func(tx raftstore.ReadTx) { n = tx.Node(id) })
		if n == nil {
			continue
		}
		member := r.members.MemberByNodeID(n.Id)
		if member != nil || n.GetSpec().GetDesiredRole() == api.NodeRole_MANAGER {
			out.WakeAt(id, later) // membership changes are not store events
		}
		switch {
		case n.GetSpec().GetDesiredRole() == api.NodeRole_WORKER && member != nil:
			if member.RaftId == r.members.RaftID() {
				r.log.Info("demoting this manager: handing leadership to another manager first")
				tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := r.members.TransferLeadership(tctx, 0)
				cancel()
				if err != nil {
					out.Fail(id, fmt.Errorf("leadership transfer for demotion: %w", err))
				}
				for _, rest := range ids[i+1:] {
					out.WakeAt(rest, later)
				}
				return // the next leader removes this member
			}
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := r.members.RemoveMember(rctx, member.RaftId)
			cancel()
			if err != nil {
				out.Fail(id, fmt.Errorf("demotion: removing raft member %d: %w", member.RaftId, err))
				continue
			}
			r.log.Info("demoted manager left the raft cluster", "node", n.Id)
		case member != nil && (n.GetManagerStatus().GetRaftId() != member.RaftId || n.GetManagerStatus().GetAddr() != member.Addr):
			c := proto.Clone(n).(*api.Node)
			c.ManagerStatus = &api.ManagerStatus{RaftId: member.RaftId, Addr: member.Addr}
			uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := r.store.Update(uctx, func(tx *raftstore.Tx) error { return tx.Update(c) })
			cancel()
			if err != nil {
				out.Fail(id, fmt.Errorf("recording manager status: %w", err))
			}
		}
	}
}
