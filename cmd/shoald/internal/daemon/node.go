package daemon

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/manager"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
	"github.com/shoal-project/shoal/worker"
)

// nodeState is what the daemon records besides certificates.
type nodeState struct {
	ListenAddr    string   `json:"listen_addr"`
	AdvertiseAddr string   `json:"advertise_addr"`
	Managers      []string `json:"managers,omitempty"` // last known manager addresses
}

func loadState(path string) (*nodeState, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node state %s is missing or unreadable (%v); the certificates say this node is in a swarm. "+
			"To recover, run `shoal swarm leave --force` and join again", path, err)
	}
	var s nodeState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("node state %s is damaged (%v). To recover, run `shoal swarm leave --force` and join again", path, err)
	}
	return &s, nil
}

func saveState(path string, s *nodeState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

type startMode int

const (
	startRestart startMode = iota
	startBootstrap
	startJoin
)

// nodeRun is a running swarm member: its TLS identity, its connections, the
// manager (if a manager) and the agent.
type nodeRun struct {
	d        *Daemon
	identity pki.Identity
	kp       *pki.KeyPair
	roots    *x509.CertPool
	rootPEM  []byte
	state    *nodeState
	keys     *pki.Keyring // open: the data keys are available

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	server  *grpc.Server
	manager *manager.Manager

	connMu sync.Mutex
	conns  map[string]*grpc.ClientConn

	agentMu  sync.Mutex
	managers []string // manager addresses known before the agent runs
	agent    *worker.Agent
}

// start brings up the member described by st: the cluster API server and
// the manager when it is one, then the agent.
func (d *Daemon) start(parent context.Context, st *pki.LoadedState, state *nodeState, mode startMode) (*nodeRun, error) {
	return d.startWith(parent, st, state, mode, "")
}

// startWith is start; for startJoin, joinVia is the manager through which
// this manager becomes a raft member.
func (d *Daemon) startWith(parent context.Context, st *pki.LoadedState, state *nodeState, mode startMode, joinVia string) (*nodeRun, error) {
	kp, err := pki.NewKeyPair(st.CertPEM, st.KeyPEM)
	if err != nil {
		return nil, err
	}
	kr := d.keyring()
	if kr == nil || kr.Locked() {
		return nil, errdefs.Internal("the node's keyring is not open")
	}
	if st.Identity.Role != api.NodeRole_MANAGER {
		// Workers are never locked: their data key is wrapped by the
		// node's own key (a demoted manager's may still be locked away).
		if err := kr.Wrap(nil); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(parent)
	n := &nodeRun{
		d: d, identity: st.Identity, kp: kp, roots: st.RootCA.Pool(), rootPEM: st.RootCAPEM, state: state, keys: kr,
		ctx: ctx, cancel: cancel, conns: map[string]*grpc.ClientConn{}, managers: state.Managers,
	}
	if st.Identity.Role == api.NodeRole_MANAGER {
		if err := n.startManager(st, mode, joinVia); err != nil {
			n.stop()
			return nil, err
		}
	}
	n.startAgent()
	n.wg.Add(1)
	go n.watchRole()
	return n, nil
}

func (n *nodeRun) startManager(st *pki.LoadedState, mode startMode, joinVia string) error {
	d := n.d
	rc := raftstore.Config{Tick: d.cfg.RaftTick}
	keys, ok := n.keys.Keys()
	if !ok {
		return errSwarmLocked
	}
	m, err := manager.New(manager.Config{
		NodeID: n.identity.NodeID, ClusterID: n.identity.ClusterID, Addr: n.state.AdvertiseAddr,
		RaftPath: d.raftPath(), RaftKey: keys.RaftKey(), Raft: rc, RootCAPEM: st.RootCAPEM,
		Dial: n.dial, HeartbeatPeriod: d.cfg.HeartbeatPeriod, Clock: d.cfg.Clock, Logger: d.log,
	})
	if err != nil {
		return err
	}
	raftMode := raftstore.Restart
	switch mode {
	case startBootstrap:
		raftMode = raftstore.Bootstrap
	case startJoin:
		raftMode = raftstore.JoinExisting
	}
	if raftMode == raftstore.Restart && m.Storage().IsEmpty() {
		m.Storage().Close()
		return fmt.Errorf("the raft log %s is empty but the certificates say this node is a manager; it cannot rejoin "+
			"with an empty log under its old identity. To recover, run `shoal swarm leave --force` and join again", d.raftPath())
	}
	authz, err := pki.NewAuthorizer(pki.AuthorizerConfig{
		ClusterID:       n.identity.ClusterID,
		Policy:          manager.Policy(),
		Unauthenticated: manager.Unauthenticated,
		IsRemoved:       m.IsRemovedNode,
		IsDemoted:       m.IsDemotedNode,
	})
	if err != nil {
		m.Storage().Close()
		return err
	}
	lis, err := net.Listen("tcp", n.state.ListenAddr)
	if err != nil {
		m.Storage().Close()
		return fmt.Errorf("listen on %s: %w (is another process using the port? change it with --listen-addr)", n.state.ListenAddr, err)
	}
	n.server = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(pki.ServerConfig(n.kp, n.roots))),
		grpc.ChainUnaryInterceptor(errorsUnary, authz.UnaryServerInterceptor(), m.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(errorsStream, authz.StreamServerInterceptor(), m.StreamInterceptor()),
		grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 500 * time.Millisecond, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Second, Timeout: 2 * time.Second}),
	)
	m.Register(n.server)
	n.manager = m
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		_ = n.server.Serve(lis)
	}()
	if mode == startJoin {
		if err := n.joinRaft(m, joinVia); err != nil {
			m.Storage().Close() // Run, which owns it from here on, never started
			return err
		}
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := m.Run(n.ctx, raftMode); err != nil {
			if errors.Is(err, raftstore.ErrRemoved) {
				d.log.Warn("this manager was removed from the raft cluster")
			} else if n.ctx.Err() == nil {
				d.log.Error("manager stopped", "err", err)
			}
		}
	}()
	n.wg.Add(1)
	go n.watchUnlockKey(m)
	return nil
}

// joinRaft makes this manager a raft member through the manager at via
// (which forwards to the leader), recording the raft ID it is given.
func (n *nodeRun) joinRaft(m *manager.Manager, via string) error {
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	defer cancel()
	conn, err := n.dial(ctx, via)
	if err != nil {
		return err
	}
	resp, err := api.NewRaftClient(conn).Join(ctx, &api.JoinRaftRequest{Addr: n.state.AdvertiseAddr})
	if err != nil {
		return fmt.Errorf("join the raft cluster through %s: %w", via, errdefs.FromGRPC(err))
	}
	if err := m.Storage().SetRaftID(resp.RaftId); err != nil {
		return err
	}
	m.Raft().SeedMembers(resp.Members)
	return nil
}

// dial returns a cached mTLS connection to another node's cluster API.
func (n *nodeRun) dial(ctx context.Context, addr string) (*grpc.ClientConn, error) {
	n.connMu.Lock()
	defer n.connMu.Unlock()
	if c := n.conns[addr]; c != nil {
		return c, nil
	}
	c, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(pki.ClientConfig(n.kp, n.roots, pki.ManagerServerName))),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 2 * time.Second, Timeout: 2 * time.Second, PermitWithoutStream: true}),
		// gRPC's default reconnect backoff grows to 2 minutes: a manager
		// that restarts must be reachable again within a heartbeat or two.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
	)
	if err != nil {
		return nil, errdefs.Unavailable("connect to %s: %v", addr, err)
	}
	n.conns[addr] = c
	return c, nil
}

// stop stops everything the member runs and waits.
func (n *nodeRun) stop() {
	n.cancel()
	if n.server != nil {
		stopped := make(chan struct{})
		go func() { n.server.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			n.server.Stop()
		}
	}
	n.wg.Wait()
	n.connMu.Lock()
	for _, c := range n.conns {
		c.Close()
	}
	n.conns = map[string]*grpc.ClientConn{}
	n.connMu.Unlock()
}
