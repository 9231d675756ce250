package daemon

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	ctrexec "github.com/shoal-project/shoal/worker/containerd"
)

// Leave takes this node out of the swarm: a manager first leaves raft (a
// leader hands off leadership before), then everything stops, the node's
// containers are removed and its certificates and state are wiped. The node
// stays in other managers' `node ls` as Down until `shoal node rm`.
func (l *localNode) Leave(ctx context.Context, req *api.LeaveRequest) (*api.LeaveResponse, error) {
	d := l.d
	d.mu.Lock()
	n := d.node
	if n == nil && d.locked && !d.pending {
		d.pending = true
		id := d.lockedID
		d.mu.Unlock()
		defer func() {
			d.mu.Lock()
			d.pending = false
			d.mu.Unlock()
		}()
		return d.leaveLocked(ctx, id, req.GetForce())
	}
	if n == nil {
		d.mu.Unlock()
		return nil, errdefs.FailedPrecondition("This node is not part of a swarm")
	}
	if d.pending {
		d.mu.Unlock()
		return nil, errdefs.FailedPrecondition("this node is joining or leaving a swarm; wait for it to finish")
	}
	d.pending = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.pending = false
		d.mu.Unlock()
	}()
	if m := n.manager; m != nil {
		members := m.Members()
		if !req.GetForce() {
			msg := "You are attempting to leave the swarm on a node that is participating as a manager. "
			if len(members) <= 1 {
				msg += "Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message."
			} else {
				reach := 0
				for _, mem := range members {
					if mem.Reachable {
						reach++
					}
				}
				left := len(members) - 1
				if reach-1 < left/2+1 {
					msg += fmt.Sprintf("Removing this node leaves %d managers out of %d. Without a Raft quorum your swarm will be inaccessible. "+
						"The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. ", reach-1, len(members))
				}
				msg += "The recommended way is to demote it first (`shoal node demote`). Use `--force` to suppress this message."
			}
			return nil, errdefs.FailedPrecondition("%s", msg)
		}
		if len(members) > 1 {
			if err := leaveRaft(ctx, n); err != nil {
				d.log.Warn("leaving raft failed; leaving anyway (--force)", "err", err)
			}
		}
	}
	// A role change may have replaced the member meanwhile: stop whatever
	// runs now, under the lock, so no agent keeps the old identity alive.
	d.mu.Lock()
	cur := d.node
	d.node = nil
	d.mu.Unlock()
	if cur != nil && cur != n {
		cur.stop()
	}
	n.stop()
	d.removeContainers(ctx, n.identity.NodeID)
	d.wipe()
	d.log.Info("left the swarm")
	return &api.LeaveResponse{}, nil
}

// leaveLocked takes a locked manager out of the swarm: only with --force
// (its raft log cannot be read, so it cannot leave raft; the other managers
// keep it as an unreachable member until `shoal node demote` / `node rm`).
// This is the way out when the unlock key is lost.
func (d *Daemon) leaveLocked(ctx context.Context, id pki.Identity, force bool) (*api.LeaveResponse, error) {
	if !force {
		return nil, errdefs.FailedPrecondition("this manager is locked (autolock): unlock it with `shoal swarm unlock` first, " +
			"or, if the unlock key is lost, use `--force` to leave without it (its raft data is then lost; remove the node " +
			"from the swarm on another manager with `shoal node demote` and `shoal node rm`)")
	}
	d.removeContainers(ctx, id.NodeID)
	d.wipe()
	d.log.Info("left the swarm (locked manager, --force)")
	return &api.LeaveResponse{}, nil
}

// leaveRaft removes this manager from the raft membership, through the
// leader (after handing leadership off if this manager leads).
func leaveRaft(ctx context.Context, n *nodeRun) error {
	m := n.manager
	node := m.Raft()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if node.IsLeader() {
		if err := node.TransferLeadership(ctx, 0); err != nil {
			return err
		}
	}
	var err error = ctx.Err()
	for ctx.Err() == nil {
		if node.MemberByNodeID(n.identity.NodeID) == nil || node.IsRemoved(node.RaftID()) {
			return nil // already out of raft (e.g. demoted a moment ago)
		}
		l := node.LeaderMember()
		if l == nil || l.NodeId == n.identity.NodeID {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var conn *grpc.ClientConn
		if conn, err = n.dial(ctx, l.Addr); err == nil {
			_, err = api.NewRaftClient(conn).Leave(ctx, &api.LeaveRaftRequest{RaftId: node.RaftID()})
			if err = errdefs.FromGRPC(err); err == nil || !errdefs.IsUnavailable(err) {
				return err
			}
		}
		time.Sleep(200 * time.Millisecond) // a new leader settling in
	}
	if err != nil {
		return err
	}
	return ctx.Err()
}

// removeContainers removes every container this node ran: a node that
// left a swarm runs none of its tasks.
func (d *Daemon) removeContainers(ctx context.Context, nodeID string) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	exec, err := ctrexec.New(ctx, ctrexec.Config{
		Address: d.cfg.ContainerdAddress, Namespace: d.cfg.ContainerdNamespace, DataDir: d.execDir(),
		NodeID: nodeID, Bridge: d.cfg.Bridge, Subnet: d.cfg.Subnet,
	})
	if err != nil {
		d.log.Warn("leaving: cannot reach containerd to remove this node's containers", "err", err)
		return
	}
	defer exec.Close()
	ids, err := exec.Tasks(ctx)
	if err != nil {
		d.log.Warn("leaving: listing containers", "err", err)
		return
	}
	for _, id := range ids {
		c, err := exec.Controller(&api.Task{Id: id}, nil)
		if err != nil {
			continue
		}
		_ = c.Shutdown(ctx)
		if err := c.Remove(ctx); err != nil {
			d.log.Warn("leaving: removing container", "task", id, "err", err)
		}
		_ = c.Close()
	}
}

// leaveRemoved takes this node out of the swarm after the managers removed
// it (`shoal node rm`): its certificate is refused everywhere, so it stops
// its tasks, removes their containers and forgets the swarm, as `swarm
// leave` would.
func (d *Daemon) leaveRemoved(n *nodeRun) {
	d.mu.Lock()
	if d.node != n || d.pending {
		d.mu.Unlock()
		return
	}
	d.pending = true
	d.node = nil
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.pending = false
		d.mu.Unlock()
	}()
	d.log.Warn("this node was removed from the swarm by a manager: stopping its tasks and leaving")
	n.stop()
	d.removeContainers(context.Background(), n.identity.NodeID)
	d.wipe()
	d.log.Info("left the swarm")
}
