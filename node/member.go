package node

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/manager"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
	"github.com/shoal-project/shoal/worker"
)

type startMode int

const (
	startRestart startMode = iota
	startBootstrap
	startJoin
)

// member is a running swarm member: its TLS identity, its connections, the
// manager (if a manager) and the agent. Its goroutines run under ctx and
// stop waits for them.
type member struct {
	n        *Node
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
	// updates carries the agent's node updates to watchRole: capacity 1,
	// the latest update wins.
	updates chan worker.NodeUpdate

	connMu sync.Mutex
	conns  map[string]*grpc.ClientConn
	// raftConns are raft's own connections to the other managers
	// (dialRaft).
	raftConns map[string]*grpc.ClientConn

	agentMu  sync.Mutex
	managers []string // manager addresses known before the agent runs
	agent    *worker.Agent
	exec     Executor // the agent's executor while open (metrics read it)
	// execUp is closed once the agent's executor is open (its node-local
	// bridge and egress made): init and join wait for it, bounded.
	execUp chan struct{}
}

// start brings up the member described by st: the cluster API server and
// the manager when it is one, then the agent. For startJoin, joinVia is the
// manager through which this manager becomes a raft member. On error
// nothing it started runs any more.
func (n *Node) start(parent context.Context, st *pki.LoadedState, state *nodeState, mode startMode, joinVia string) (*member, error) {
	kp, err := pki.NewKeyPair(st.CertPEM, st.KeyPEM)
	if err != nil {
		return nil, err
	}
	kr := n.keyring()
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
	mb := &member{
		n: n, identity: st.Identity, kp: kp, roots: st.RootCA.Pool(), rootPEM: st.RootCAPEM, state: state, keys: kr,
		ctx: ctx, cancel: cancel, conns: map[string]*grpc.ClientConn{}, raftConns: map[string]*grpc.ClientConn{}, managers: state.Managers,
		updates: make(chan worker.NodeUpdate, 1), execUp: make(chan struct{}),
	}
	if st.Identity.Role == api.NodeRole_MANAGER {
		if err := mb.startManager(st, mode, joinVia); err != nil {
			mb.stop()
			return nil, err
		}
	}
	mb.startAgent()
	mb.wg.Add(1)
	go mb.watchRole()
	return mb, nil
}

// startManager starts the manager, its cluster API server and, for
// startJoin, joins raft first. The manager owns its raft log: Close
// releases it when Run never starts.
func (mb *member) startManager(st *pki.LoadedState, mode startMode, joinVia string) error {
	n := mb.n
	keys, ok := mb.keys.Keys()
	if !ok {
		return errSwarmLocked
	}
	m, err := manager.New(manager.Config{
		NodeID: mb.identity.NodeID, ClusterID: mb.identity.ClusterID, Addr: mb.state.AdvertiseAddr,
		RaftPath: n.raftPath(), RaftKey: keys.RaftKey(), Raft: raftstore.Config{Tick: n.cfg.RaftTick}, RootCAPEM: st.RootCAPEM,
		Dial: mb.dial, RaftDial: mb.dialRaft, HeartbeatPeriod: n.cfg.HeartbeatPeriod, Clock: n.cfg.Clock, Logger: n.log,
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
	if raftMode == raftstore.Restart {
		if err := m.CheckRestart(); err != nil {
			m.Close()
			return err
		}
	}
	if err := mb.serve(m); err != nil {
		m.Close()
		return err
	}
	if mode == startJoin {
		ctx, cancel := clockwork.WithTimeout(mb.ctx, n.cfg.Clock, raftJoinTimeout)
		err := m.JoinRaft(ctx, joinVia)
		cancel()
		if err != nil {
			m.Close()
			return err
		}
	}
	mb.manager = m
	mb.wg.Add(1)
	go func() {
		defer mb.wg.Done()
		if err := m.Run(mb.ctx, raftMode); err != nil {
			if errors.Is(err, raftstore.ErrRemoved) {
				n.log.Warn("this manager was removed from the raft cluster")
			} else if mb.ctx.Err() == nil {
				n.log.Error("manager stopped", "err", err)
			}
		}
	}()
	mb.wg.Add(1)
	go mb.watchUnlockKey(m)
	return nil
}

// serve starts the cluster API server of manager m on the listen address.
func (mb *member) serve(m *manager.Manager) error {
	authz, err := pki.NewAuthorizer(pki.AuthorizerConfig{
		ClusterID:       mb.identity.ClusterID,
		Policy:          manager.Policy(),
		Unauthenticated: manager.Unauthenticated,
		IsRemoved:       m.IsRemovedNode,
		IsDemoted:       m.IsDemotedNode,
	})
	if err != nil {
		return err
	}
	lis, err := mb.n.cfg.Listen("tcp", mb.state.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another process using the port? change it with --listen-addr)", mb.state.ListenAddr, err)
	}
	tlsCfg := pki.ServerConfig(mb.kp, mb.roots, m.TicketKeys())
	// Refuse new connections while overloaded (other managers' excepted).
	pki.Admit(tlsCfg, m.AdmitHandshake)
	mb.server = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.ChainUnaryInterceptor(mb.n.grpcMetrics.UnaryServerInterceptor(), errorsUnary, authz.UnaryServerInterceptor(), m.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(mb.n.grpcMetrics.StreamServerInterceptor(), errorsStream, authz.StreamServerInterceptor(), m.StreamInterceptor()),
		grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg),
		// No read buffer of gRPC's own: TLS buffers each record already,
		// and 32 KiB per connection was 324 MiB of a leader's heap at
		// 10,000 nodes (BENCHMARKS.md, "Scale (issue 13)").
		grpc.ReadBufferSize(0),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 500 * time.Millisecond, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Second, Timeout: 2 * time.Second}),
	)
	m.Register(mb.server)
	mb.wg.Add(1)
	go func() {
		defer mb.wg.Done()
		_ = mb.server.Serve(lis)
	}()
	return nil
}

// dial returns a cached mTLS connection to another node's cluster API.
func (mb *member) dial(_ context.Context, addr string) (*grpc.ClientConn, error) {
	return mb.cachedConn(mb.conns, addr)
}

// dialRaft returns a cached mTLS connection to another manager that only
// raft's messages use. On a connection shared with the agents' calls that
// followers forward to the leader (sessions, status reports, relayed
// heartbeats: megabytes after a leader change at 10,000 nodes), raft's
// heartbeats and their answers would wait behind them in one TCP
// connection and one HTTP/2 flow-control window; at 1,000,000 tasks
// leaders stepped down by CheckQuorum again and again while the agents
// reconnected (BENCHMARKS.md, session 23).
func (mb *member) dialRaft(_ context.Context, addr string) (*grpc.ClientConn, error) {
	return mb.cachedConn(mb.raftConns, addr)
}

// cachedConn returns conns' connection to addr, made on first use.
func (mb *member) cachedConn(conns map[string]*grpc.ClientConn, addr string) (*grpc.ClientConn, error) {
	mb.connMu.Lock()
	defer mb.connMu.Unlock()
	if c := conns[addr]; c != nil {
		return c, nil
	}
	c, err := grpc.NewClient(addr, mb.n.dialOptions(
		// As a peer: an overloaded manager still admits other managers.
		grpc.WithTransportCredentials(credentials.NewTLS(pki.PeerClientConfig(mb.kp, mb.roots, pki.ManagerServerName))),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 2 * time.Second, Timeout: 2 * time.Second, PermitWithoutStream: true}),
		// gRPC's default reconnect backoff grows to 2 minutes: a manager
		// that restarts must be reachable again within a heartbeat or two.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
	)...)
	if err != nil {
		return nil, errdefs.Unavailable("connect to %s: %v", addr, err)
	}
	conns[addr] = c
	return c, nil
}

// dialOptions adds the injected dialer, if any, to opts.
func (n *Node) dialOptions(opts ...grpc.DialOption) []grpc.DialOption {
	if d := n.cfg.DialContext; d != nil {
		opts = append(opts, grpc.WithContextDialer(d))
	}
	return opts
}

// stop stops everything the member runs and waits.
func (mb *member) stop() {
	mb.cancel()
	if mb.server != nil {
		stopped := make(chan struct{})
		go func() { mb.server.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-mb.n.cfg.Clock.After(serverStopGrace):
			mb.server.Stop()
			<-stopped
		}
	}
	mb.wg.Wait()
	mb.connMu.Lock()
	for _, conns := range []map[string]*grpc.ClientConn{mb.conns, mb.raftConns} {
		for addr, c := range conns {
			c.Close()
			delete(conns, addr)
		}
	}
	mb.connMu.Unlock()
}
