package testcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/pprof"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/manager"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Manager is one manager node of the cluster: a manager.Manager serving
// the real gRPC services (mTLS, the authorizer, leader forwarding) on the
// in-memory network, its raft member on the MemNetwork, and (unless
// Options.NoManagerAgents) its node's agent.
type Manager struct {
	c    *Cluster
	Name string // "m0", "m1", ...
	Addr string // Name + ":4242"
	// TCPAddr is the manager's 127.0.0.1 port with Options.Loopback, ""
	// without; it is kept across restarts.
	TCPAddr string
	NodeID  string
	// Agent is the node's agent, nil with Options.NoManagerAgents. It
	// stops and starts with the manager, as in one shoald.
	Agent *Agent
	kp    *pki.KeyPair
	path  string

	mu     sync.Mutex
	m      *manager.Manager
	srv    *grpc.Server
	lis    *memListener
	dialer *dialer
	cancel context.CancelFunc
	done   chan error
}

func (c *Cluster) newManager() *Manager {
	c.mu.Lock()
	i := len(c.managers)
	c.mu.Unlock()
	id := c.newID()
	name := fmt.Sprintf("m%d", i)
	m := &Manager{c: c, Name: name, Addr: name + ":4242", NodeID: id, kp: c.issue(id, api.NodeRole_MANAGER),
		path: c.path(name, "raft.db")}
	c.mu.Lock()
	c.managers = append(c.managers, m)
	c.mu.Unlock()
	return m
}

// AddManager joins one more manager through the leader, as `swarm join
// --token <manager token>` does (the raft member is added, then the
// manager starts with the leader's membership), and records its Node.
func (c *Cluster) AddManager() *Manager {
	c.tb.Helper()
	l := c.Leader()
	m := c.newManager()
	var raftID uint64
	var members []*api.RaftMember
	c.WaitFor("adding "+m.Name+" to raft", time.Minute, func() error {
		mgr := l.Manager()
		if mgr == nil {
			return errors.New("the leader stopped")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		id, err := mgr.Raft().AddMember(ctx, m.NodeID, m.Addr)
		if err != nil {
			return err
		}
		raftID, members = id, mgr.Raft().RaftMembers()
		return nil
	})
	m.labelled(func() {
		mgr := m.build()
		if err := mgr.Storage().SetRaftID(raftID); err != nil {
			c.tb.Fatal(err)
		}
		mgr.Raft().SeedMembers(members)
		m.run(mgr, raftstore.JoinExisting)
	})
	c.update("record "+m.Name, c.Leader(), func(tx *raftstore.Tx) error {
		return tx.Create(c.managerNode(m))
	})
	return m
}

func (m *Manager) config() manager.Config {
	return manager.Config{
		NodeID: m.NodeID, ClusterID: m.c.clusterID, Addr: m.Addr, RaftPath: m.path,
		RootCAPEM: m.c.ca.CertPEM(),
		Raft:      raftstore.Config{Tick: m.c.opts.Tick},
		Transport: m.c.raftNet.Transport(m.Addr, m.NodeID),
		Clock:     m.c.clock,
		Logger:    m.c.log.With("manager", m.Name),
	}
}

// build opens the manager (its raft log) with a fresh dialer.
func (m *Manager) build() *manager.Manager {
	m.c.tb.Helper()
	d := newDialer(m.c.net, m.Name, m.kp, m.c.ca.Pool())
	cfg := m.config()
	cfg.Dial = d.dial
	mgr, err := manager.New(cfg)
	if err != nil {
		m.c.tb.Fatalf("%s: %v", m.Name, err)
	}
	m.mu.Lock()
	m.dialer = d
	m.mu.Unlock()
	return mgr
}

// start opens and runs the manager in mode.
func (m *Manager) start(mode raftstore.StartMode) {
	m.labelled(func() { m.run(m.build(), mode) })
}

// LabelKey is the pprof label whose value names the part of the process
// a goroutine works for: a manager's name for the goroutines its start
// creates (and, transitively, theirs: its gRPC server's connections and
// streams, raft, control loops), "fleet" for simulated nodes
// (internal/simagent). CPU profiles can thus be split by manager.
const LabelKey = "shoal"

// labelled runs fn with the manager's pprof label on this goroutine, so
// that every goroutine fn starts carries it.
func (m *Manager) labelled(fn func()) {
	pprof.Do(context.Background(), pprof.Labels(LabelKey, m.Name), func(context.Context) { fn() })
}

// run serves mgr's gRPC services and runs it; then starts the node's agent.
func (m *Manager) run(mgr *manager.Manager, mode raftstore.StartMode) {
	m.c.tb.Helper()
	authz, err := pki.NewAuthorizer(pki.AuthorizerConfig{
		ClusterID:       m.c.clusterID,
		Policy:          manager.Policy(),
		Unauthenticated: manager.Unauthenticated,
		IsRemoved:       mgr.IsRemovedNode,
		IsDemoted:       mgr.IsDemotedNode,
	})
	if err != nil {
		m.c.tb.Fatal(err)
	}
	tlsCfg := pki.ServerConfig(m.kp, m.c.ca.Pool(), mgr.TicketKeys())
	pki.Admit(tlsCfg, mgr.AdmitHandshake)
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.ChainUnaryInterceptor(errorsUnary, authz.UnaryServerInterceptor(), mgr.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(errorsStream, authz.StreamServerInterceptor(), mgr.StreamInterceptor()),
		grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg),
	)
	mgr.Register(srv)
	lis := m.c.net.listen(m.Name)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	m.mu.Lock()
	m.m, m.srv, m.lis, m.cancel, m.done = mgr, srv, lis, cancel, done
	m.mu.Unlock()
	go func() { _ = srv.Serve(lis) }()
	if m.c.opts.Loopback {
		tcp := m.listenTCP()
		go func() { _ = srv.Serve(tcp) }() // srv.Stop closes it
	}
	go func() {
		err := mgr.Run(ctx, mode)
		if ctx.Err() == nil {
			m.c.crash(fmt.Errorf("manager %s stopped on its own: %v", m.Name, err))
		}
		done <- err
	}()
	if m.Agent != nil {
		m.Agent.Start()
	} else if !m.c.opts.NoManagerAgents {
		m.Agent = m.c.addAgent(m)
	}
}

// listenTCP opens the manager's loopback port: a new one at the first
// start, the same one at a restart (retried for a while: the kernel may
// still hold it).
func (m *Manager) listenTCP() net.Listener {
	m.c.tb.Helper()
	addr := m.TCPAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			m.TCPAddr = l.Addr().String()
			return l
		}
		if time.Now().After(deadline) {
			m.c.tb.Fatalf("%s: loopback listener: %v", m.Name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func errorsUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	return resp, errdefs.ToGRPC(err)
}

func errorsStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return errdefs.ToGRPC(h(srv, ss))
}

// Manager is the running manager.Manager, nil while stopped.
func (m *Manager) Manager() *manager.Manager {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m
}

// Running reports whether the manager runs.
func (m *Manager) Running() bool { return m.Manager() != nil }

// Leading reports whether the manager runs the control loops.
func (m *Manager) Leading() bool {
	mgr := m.Manager()
	return mgr != nil && mgr.Leading()
}

// Stop stops the node: its agent, then the manager (its raft member stops
// without handing over leadership, as after kill -9; the raft log stays).
func (m *Manager) Stop() {
	m.c.tb.Helper()
	if m.Agent != nil {
		m.Agent.Stop()
	}
	if err := m.stop(); err != nil {
		m.c.tb.Errorf("%s: %v", m.Name, err)
	}
}

func (m *Manager) stop() error {
	m.mu.Lock()
	mgr, srv, lis, cancel, done, d := m.m, m.srv, m.lis, m.cancel, m.done, m.dialer
	m.m, m.srv, m.lis, m.cancel, m.dialer = nil, nil, nil, nil, nil
	m.mu.Unlock()
	if mgr == nil {
		return nil
	}
	m.c.net.unlisten(m.Name, lis)
	if m.Agent != nil {
		m.Agent.stop()
	}
	cancel()
	srv.Stop()
	var err error
	select {
	case err = <-done:
		if errors.Is(err, context.Canceled) {
			err = nil
		}
	case <-time.After(30 * time.Second):
		err = errors.New("did not stop within 30s")
	}
	d.close()
	return err
}

// Start restarts a stopped manager from its raft log (and its agent).
func (m *Manager) Start() {
	m.c.tb.Helper()
	if m.Running() {
		m.c.tb.Fatalf("%s already runs", m.Name)
	}
	m.start(raftstore.Restart)
}

// Restart stops the manager and starts it again.
func (m *Manager) Restart() {
	m.c.tb.Helper()
	m.Stop()
	m.Start()
}

// Managers lists the managers in creation order.
func (c *Cluster) Managers() []*Manager {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Manager(nil), c.managers...)
}

// currentLeader returns the running manager that leads in the highest
// term, or nil.
func (c *Cluster) currentLeader() *Manager {
	var best *Manager
	var term uint64
	for _, m := range c.Managers() {
		mgr := m.Manager()
		if mgr == nil || !mgr.Leading() {
			continue
		}
		if t := mgr.Raft().Term(); best == nil || t > term {
			best, term = m, t
		}
	}
	return best
}

// Leader waits (up to a minute of cluster time) for a manager that runs
// the control loops and returns it.
func (c *Cluster) Leader() *Manager {
	c.tb.Helper()
	var l *Manager
	c.WaitFor("a leader", time.Minute, func() error {
		if l = c.currentLeader(); l == nil {
			return errors.New("no manager leads")
		}
		return nil
	})
	return l
}

// KillLeader stops the leader's node and returns it.
func (c *Cluster) KillLeader() *Manager {
	c.tb.Helper()
	l := c.Leader()
	l.Stop()
	return l
}

// Followers are the running managers other than the leader.
func (c *Cluster) Followers() []*Manager {
	c.tb.Helper()
	l := c.Leader()
	var out []*Manager
	for _, m := range c.Managers() {
		if m != l && m.Running() {
			out = append(out, m)
		}
	}
	return out
}

// Converged waits until every running manager applied the same index and
// holds the same state.
func (c *Cluster) Converged(within time.Duration) {
	c.tb.Helper()
	c.WaitFor("the managers' stores to converge", within, func() error {
		var idx uint64
		var hash string
		var first string
		for _, m := range c.Managers() {
			mgr := m.Manager()
			if mgr == nil {
				continue
			}
			i, h := mgr.Raft().AppliedIndex(), fmt.Sprint(mgr.Store().Hash())
			if first == "" {
				idx, hash, first = i, h, m.Name
				continue
			}
			if i != idx || h != hash {
				return fmt.Errorf("%s applied %d, %s applied %d (or their states differ)", first, idx, m.Name, i)
			}
		}
		return nil
	})
}
