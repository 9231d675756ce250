package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/unixsock"
	"github.com/shoal-project/shoal/manager"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// serveLocal serves the control socket: LocalNode and Registry here; every
// other service is proxied to this node's manager over mTLS.
func (n *Node) serveLocal() (*grpc.Server, error) {
	path := n.cfg.ControlSocket
	lis, err := unixsock.Listen(path, 0o660)
	if errors.Is(err, unixsock.ErrInUse) {
		return nil, fmt.Errorf("control socket %w (another shoald?): stop it, or give this one another --control-socket", err)
	}
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	s := grpc.NewServer(
		grpc.ChainUnaryInterceptor(errorsUnary),
		grpc.ChainStreamInterceptor(errorsStream),
		grpc.UnknownServiceHandler(n.proxyToManager),
		grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg),
	)
	api.RegisterLocalNodeServer(s, &localNode{n: n})
	api.RegisterVolumesServer(s, &volumesServer{n: n})
	n.serveRegistry(s)
	go func() { _ = s.Serve(lis) }() // ends when Run stops s
	return s, nil
}

// proxyToManager forwards a CLI call to this node's manager.
func (n *Node) proxyToManager(_ any, ss grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(ss)
	mb := n.current()
	if mb == nil {
		return n.outsideErr()
	}
	if mb.manager == nil {
		return errdefs.ErrNotManager
	}
	conn, err := mb.dial(ss.Context(), mb.state.AdvertiseAddr)
	if err != nil {
		return err
	}
	return manager.ProxyLocal(ss, conn, method)
}

func errorsUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	return resp, errdefs.ToGRPC(err)
}

func errorsStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return errdefs.ToGRPC(h(srv, ss))
}

// localNode serves the LocalNode service on the control socket.
type localNode struct {
	api.UnimplementedLocalNodeServer
	n *Node
}

func (l *localNode) Init(ctx context.Context, req *api.InitRequest) (*api.InitResponse, error) {
	return l.n.Init(ctx, req)
}

func (l *localNode) Join(ctx context.Context, req *api.JoinRequest) (*api.JoinResponse, error) {
	return l.n.Join(ctx, req)
}

func (l *localNode) Leave(ctx context.Context, req *api.LeaveRequest) (*api.LeaveResponse, error) {
	return l.n.Leave(ctx, req)
}

func (l *localNode) Unlock(_ context.Context, req *api.UnlockRequest) (*api.UnlockResponse, error) {
	if err := l.n.unlock(req); err != nil {
		return nil, err
	}
	return &api.UnlockResponse{}, nil
}

func (l *localNode) Info(context.Context, *api.InfoRequest) (*api.InfoResponse, error) {
	return l.n.Info(), nil
}

var errInSwarm = errdefs.New(errdefs.ErrFailedPrecondition,
	"This node is already part of a swarm. Use \"shoal swarm leave\" to leave this swarm and join another one.")

// enterSwarm runs an init or a join: fn brings the member up, and on failure
// everything it started is stopped and its files wiped, so a failed attempt
// leaves the node as it was.
func (n *Node) enterSwarm(fn func() (*member, *nodeState, error)) error {
	err := n.reserve("this node is already joining or initializing a swarm; wait for it to finish", func() error {
		if n.member != nil || n.locked || n.resuming {
			return errInSwarm
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer n.release()
	mb, state, err := fn()
	if err != nil {
		if mb != nil {
			mb.stop()
		}
		n.wipe()
		return err
	}
	n.mu.Lock()
	n.member, n.state = mb, state
	n.mu.Unlock()
	return nil
}

// wipe removes the swarm state of the data directory.
func (n *Node) wipe() {
	for _, p := range []string{n.certDir(), n.statePath(), filepath.Dir(n.raftPath()), n.workerDir()} {
		_ = os.RemoveAll(p)
	}
	n.mu.Lock()
	n.keys, n.locked, n.lockedID = nil, false, pki.Identity{}
	n.mu.Unlock()
}

// Info reports the node's swarm state (`shoal info`).
func (n *Node) Info() *api.InfoResponse {
	host, _ := os.Hostname()
	out := &api.InfoResponse{Version: n.cfg.Version, Hostname: host, DataDir: n.cfg.DataDir, State: api.InfoResponse_INACTIVE}
	mb := n.current()
	if mb == nil {
		n.mu.Lock()
		defer n.mu.Unlock()
		switch {
		case n.locked:
			out.State = api.InfoResponse_LOCKED
			out.NodeId, out.ClusterId = n.lockedID.NodeID, n.lockedID.ClusterID
			out.NodeAddr = n.state.AdvertiseAddr
			out.UnlockKeyFingerprint = n.keys.WrappedWith()
		case n.pending, n.resuming:
			out.State = api.InfoResponse_PENDING
		}
		return out
	}
	out.State = api.InfoResponse_ACTIVE
	out.UnlockKeyFingerprint = mb.keys.WrappedWith()
	mb.agentMu.Lock()
	if mb.agent != nil {
		out.HeldSecrets, out.HeldConfigs = mb.agent.Held()
	}
	mb.agentMu.Unlock()
	out.NodeId, out.ClusterId = mb.identity.NodeID, mb.identity.ClusterID
	out.NodeAddr = mb.state.AdvertiseAddr
	if m := mb.manager; m != nil {
		out.ControlAvailable = true
		out.RaftAppliedIndex = m.Raft().AppliedIndex()
		if df := m.Raft().DiskFault(); df != nil {
			out.RaftDiskFault, out.RaftDiskFaultSince = df.Error(), timestamppb.New(df.Since)
		}
		for _, mem := range m.Members() {
			out.Managers = append(out.Managers, &api.Peer{NodeId: mem.NodeID, Addr: mem.Addr})
			if mem.Leader {
				out.LeaderAddr = mem.Addr
			}
		}
		out.ManagerCount = uint32(len(out.Managers))
		m.Store().View(func(tx raftstore.ReadTx) { out.Nodes = uint32(len(tx.Nodes())) })
	} else {
		for _, a := range mb.knownManagers() {
			out.Managers = append(out.Managers, &api.Peer{Addr: a})
		}
	}
	return out
}
