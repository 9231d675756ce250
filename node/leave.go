package node

import (
	"context"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/manager"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// Leave takes this node out of the swarm (`shoal swarm leave`): a manager
// first leaves raft (a leader hands off leadership before), then everything
// stops, the node's containers are removed and its certificates and state
// are wiped. The node stays in other managers' `node ls` as Down until
// `shoal node rm`. Without force a manager refuses (manager.LeaveRefusal).
func (n *Node) Leave(ctx context.Context, req *api.LeaveRequest) (*api.LeaveResponse, error) {
	var mb *member
	var lockedID pki.Identity
	var locked bool
	err := n.reserveWait(ctx, leaveWaitBusy, "this node is joining or leaving a swarm, or changing its role; wait for it to finish", func() error {
		mb, locked, lockedID = n.member, n.locked, n.lockedID
		if n.resuming {
			return errResuming
		}
		if mb == nil && !locked {
			return errdefs.FailedPrecondition("This node is not part of a swarm")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer n.release()
	if mb == nil {
		return n.leaveLocked(ctx, lockedID, req.GetForce())
	}
	if m := mb.manager; m != nil {
		members := m.Members()
		if !req.GetForce() {
			return nil, manager.LeaveRefusal(members, mb.identity.NodeID)
		}
		if len(members) > 1 {
			lctx, cancel := clockwork.WithTimeout(ctx, n.cfg.Clock, leaveRaftTimeout)
			err := m.LeaveRaft(lctx)
			cancel()
			if err != nil {
				n.log.Warn("leaving raft failed; leaving anyway (--force)", "err", err)
			}
		}
	}
	// A role change may have replaced the member meanwhile: stop whatever
	// runs now, so no agent keeps the old identity alive.
	n.mu.Lock()
	cur := n.member
	n.member = nil
	n.mu.Unlock()
	if cur != nil && cur != mb {
		cur.stop()
	}
	mb.stop()
	n.removeContainers(ctx, mb.identity.NodeID, mb.state)
	n.wipe()
	n.log.Info("left the swarm")
	return &api.LeaveResponse{}, nil
}

// leaveLocked takes a locked manager out of the swarm: only with --force
// (its raft log cannot be read, so it cannot leave raft; the other managers
// keep it as an unreachable member until `shoal node demote` / `node rm`).
// This is the way out when the unlock key is lost.
func (n *Node) leaveLocked(ctx context.Context, id pki.Identity, force bool) (*api.LeaveResponse, error) {
	if !force {
		return nil, errdefs.FailedPrecondition("this manager is locked (autolock): unlock it with `shoal swarm unlock` first, " +
			"or, if the unlock key is lost, use `--force` to leave without it (its raft data is then lost; remove the node " +
			"from the swarm on another manager with `shoal node demote` and `shoal node rm`)")
	}
	n.mu.Lock()
	state := n.state
	n.mu.Unlock()
	n.removeContainers(ctx, id.NodeID, state)
	n.wipe()
	n.log.Info("left the swarm (locked manager, --force)")
	return &api.LeaveResponse{}, nil
}

// removeContainers removes every container this node ran: a node that
// left a swarm runs none of its tasks. Then the overlay networks go too.
func (n *Node) removeContainers(ctx context.Context, nodeID string, state *nodeState) {
	ctx, cancel := clockwork.WithTimeout(ctx, n.cfg.Clock, removeTimeout)
	defer cancel()
	if state != nil {
		defer n.removeOverlay(ctx, nodeID, state)
	}
	exec, err := n.cfg.Executor(ctx, nodeID, n.execDir(), nil)
	if err != nil {
		n.log.Warn("leaving: cannot open the executor to remove this node's containers", "err", err)
		return
	}
	defer exec.Close()
	ids, err := exec.Tasks(ctx)
	if err != nil {
		n.log.Warn("leaving: listing containers", "err", err)
		return
	}
	for _, id := range ids {
		c, err := exec.Controller(&api.Task{Id: id}, nil)
		if err != nil {
			continue
		}
		_ = c.Shutdown(ctx)
		if err := c.Remove(ctx); err != nil {
			n.log.Warn("leaving: removing container", "task", id, "err", err)
		}
		_ = c.Close()
	}
	// The node-local bridge's egress (docker_gwbridge's NAT) is node
	// infrastructure while the node is in a swarm: it goes now.
	if r, ok := exec.(egressRemover); ok {
		if err := r.RemoveEgress(); err != nil {
			n.log.Warn("leaving: removing the node-local bridge's egress table", "err", err)
		}
	}
}

// egressRemover is an executor whose node-local bridge has an egress table
// to remove when the node leaves (worker/containerd).
type egressRemover interface {
	RemoveEgress() error
}

// leaveRemoved takes this node out of the swarm after the managers removed
// it (`shoal node rm`): its certificate is refused everywhere, so it stops
// its tasks, removes their containers and forgets the swarm, as `swarm
// leave` would.
func (n *Node) leaveRemoved(mb *member) {
	err := n.reserve("", func() error {
		if n.member != mb || n.pending {
			return errStale
		}
		n.member = nil
		return nil
	})
	if err != nil {
		return
	}
	defer n.release()
	n.log.Warn("this node was removed from the swarm by a manager: stopping its tasks and leaving")
	mb.stop()
	n.removeContainers(context.WithoutCancel(n.runCtx()), mb.identity.NodeID, mb.state)
	n.wipe()
	n.log.Info("left the swarm")
}

// removeOverlay removes every overlay network of a node that left (its
// tasks are gone): an agent that adopts with no live task removes them all.
func (n *Node) removeOverlay(ctx context.Context, nodeID string, state *nodeState) {
	ov := n.openOverlay(nodeID, state, nil)
	if ov == nil {
		return
	}
	if err := ov.Start(ctx, []string{}); err != nil {
		n.log.Warn("leaving: removing the overlay networks", "err", err)
	}
	_ = ov.Close()
}
