package manager

import (
	"context"
	"fmt"
	"net"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// JoinRaft makes this manager, made by New and not yet running, a member of
// an existing raft cluster through the manager at via (any manager: a
// follower forwards to the leader). It records the raft ID the cluster
// gives it and seeds the members it must answer before it has replayed the
// log; Run(ctx, raftstore.JoinExisting) follows. The caller's server must
// already serve this manager's Raft service at Config.Addr, since the
// leader talks to it as soon as the member is added. Bound ctx with a
// deadline. On failure nothing changed in the cluster or here; the caller
// may retry or Close the manager.
func (m *Manager) JoinRaft(ctx context.Context, via string) error {
	if via == "" {
		return errdefs.FailedPrecondition("no manager known to join the raft cluster through")
	}
	conn, err := m.cfg.Dial(ctx, via)
	if err != nil {
		return err
	}
	resp, err := api.NewRaftClient(conn).Join(ctx, &api.JoinRaftRequest{Addr: m.cfg.Addr})
	if err != nil {
		return fmt.Errorf("join the raft cluster through %s: %w", via, errdefs.FromGRPC(err))
	}
	if resp.GetRaftId() == 0 {
		return errdefs.Internal("the manager at %s gave this manager no raft ID", via)
	}
	if err := m.node.SetRaftID(resp.RaftId); err != nil {
		return err
	}
	m.node.SeedMembers(resp.Members)
	return nil
}

// CheckRestart refuses to restart (raftstore.Restart) a manager, made by
// New and not yet running, whose raft log is empty: the certificates say
// it is a manager, but it cannot rejoin with an empty log under its old
// identity. The error names the file and the recovery.
func (m *Manager) CheckRestart() error {
	if !m.storage.IsEmpty() {
		return nil
	}
	return errdefs.FailedPrecondition("the raft log %s is empty but the certificates say this node is a manager; it cannot rejoin "+
		"with an empty log under its old identity. To recover, run `shoal swarm leave --force` and join again", m.cfg.RaftPath)
}

// hostOf is the host part of a host:port address, or the address itself.
func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}
