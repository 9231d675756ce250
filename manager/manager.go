package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/fwdmeta"
	"github.com/shoal-project/shoal/internal/overload"
	"github.com/shoal-project/shoal/manager/allocator"
	"github.com/shoal-project/shoal/manager/caserver"
	"github.com/shoal-project/shoal/manager/controlapi"
	"github.com/shoal-project/shoal/manager/dispatcher"
	"github.com/shoal-project/shoal/manager/logbroker"
	"github.com/shoal-project/shoal/manager/orchestrator"
	"github.com/shoal-project/shoal/manager/schedloop"
	"github.com/shoal-project/shoal/manager/statsbroker"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Config configures a Manager. Zero values take the defaults in validate.
type Config struct {
	// NodeID and ClusterID are this node's identity (from its certificate).
	NodeID    string
	ClusterID string
	// Addr is the address other nodes reach this manager at (host:port).
	Addr string
	// RaftPath is the raft log file.
	RaftPath string
	// RaftKey encrypts the raft log file at rest (32 bytes, a subkey of the
	// node's data key); nil keeps its records in clear (tests).
	RaftKey []byte
	// Raft tunes the raft member (Tick, ElectionTick, snapshots...);
	// NodeID, Addr and StoragePath are filled from the fields above.
	Raft raftstore.Config
	// RootCAPEM is sent to agents. The CA key itself lives in the
	// replicated Cluster object, so every manager can sign.
	RootCAPEM []byte
	// Dial connects to another manager over mTLS. Connections are cached
	// and owned by the dialer.
	Dial raftstore.Dialer
	// RaftDial connects to another manager for raft's messages only
	// (default: Dial). Give raft connections of their own: on one shared
	// with the agents' calls that followers forward to the leader, raft's
	// heartbeats and their answers wait behind the megabytes of sessions
	// and status reports forwarded after a leader change, and a leader
	// that hears no answers for an election timeout steps down
	// (CheckQuorum) though every member is up.
	RaftDial raftstore.Dialer
	// Transport carries raft messages; default a gRPC transport over
	// RaftDial.
	// Tests run several managers in one process over a MemNetwork.
	Transport raftstore.Transport
	// HeartbeatPeriod overrides the cluster's dispatcher heartbeat (tests).
	HeartbeatPeriod time.Duration
	// ElectionHold bounds how long a follower holds a call for the leader
	// while an election is under way, and a new leader an agent's call
	// until its dispatcher serves (electwait.go). Default (0): the
	// election timeout; negative: never held (the call fails at once with
	// "no leader" or "not running a dispatcher"; for A/B measurements).
	ElectionHold time.Duration
	// Overload tunes the refusal of new connections while this manager's
	// goroutines wait too long for a processor (AdmitHandshake; zero
	// values: internal/overload's defaults, a 50ms 90th-percentile wait).
	// NoShedding admits every connection (for A/B measurements).
	Overload   overload.Config
	NoShedding bool
	Clock      clockwork.Clock
	Logger     *slog.Logger
}

func (c *Config) validate() error {
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.NodeID == "" || c.ClusterID == "":
		return errors.New("manager: NodeID and ClusterID are required")
	case c.RaftPath == "":
		return errors.New("manager: RaftPath is required")
	case c.Dial == nil:
		return errors.New("manager: Dial is required")
	}
	if c.RaftDial == nil {
		c.RaftDial = c.Dial
	}
	c.Raft.NodeID, c.Raft.Addr, c.Raft.StoragePath = c.NodeID, c.Addr, c.RaftPath
	c.Raft.Clock, c.Raft.Logger = c.Clock, c.Logger
	return nil
}

// Manager is a manager node's control plane: a raft member with its store,
// the Control, Raft, Dispatcher, Logs, Stats and Watch services, and — while it
// leads — the control loops (orchestrator, allocator, scheduler, dispatcher,
// log broker).
type Manager struct {
	cfg       Config
	log       *slog.Logger
	storage   *raftstore.DiskStorage
	store     *raftstore.Store
	transport raftstore.Transport
	node      *raftstore.Node
	control   *controlapi.Server
	raftSvc   *raftstore.RaftService
	logs      *logbroker.Broker
	stats     *statsbroker.Broker
	relay     *heartbeatRelay // a follower's batches of agents' heartbeats
	// dispatcherMetrics outlive the dispatcher of each leadership term.
	dispatcherMetrics dispatcher.Metrics
	schedMetrics      schedloop.Metrics
	auth              *nodeAuth // the authorizer's removed and demoted nodes
	// tickets seals the TLS session tickets of this manager's server;
	// followCluster keys it from the cluster's root CA key.
	tickets *pki.TicketKeys

	// ran is set once Run starts: from then on Run owns the raft log and
	// closes it; closeOnce closes it exactly once (Run or Close).
	ran       atomic.Bool
	closeOnce sync.Once
	closeErr  error

	mu         sync.Mutex
	dispatcher *dispatcher.Dispatcher
	leading    bool
	// leadChanged is closed and replaced whenever leading changes.
	leadChanged chan struct{}

	// leaders wakes the calls awaitLeader holds during an election;
	// heldCalls counts the calls it held.
	leaders   *leaderWatch
	heldCalls atomic.Uint64

	admission admission
}

// New opens the raft log and prepares the manager; Run starts it.
func New(cfg Config) (*Manager, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var storage *raftstore.DiskStorage
	var err error
	if cfg.RaftKey != nil {
		storage, err = raftstore.OpenEncryptedDiskStorage(cfg.RaftPath, cfg.RaftKey)
	} else {
		storage, err = raftstore.OpenDiskStorage(cfg.RaftPath)
	}
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, log: cfg.Logger.With("component", "manager"), storage: storage, leadChanged: make(chan struct{}), leaders: newLeaderWatch(),
		tickets: pki.NewTicketKeys()}
	if !cfg.NoShedding {
		if m.admission.shed, err = overload.New(cfg.Overload); err != nil {
			storage.Close()
			return nil, fmt.Errorf("manager: %w", err)
		}
	}
	m.store = raftstore.NewStore(cfg.Clock)
	m.auth = newNodeAuth(m.store)
	// The gRPC transport also records which peers were heard from for the
	// Raft service; with another transport it only serves that record.
	grpcTransport := raftstore.NewGRPCTransport(cfg.RaftDial, cfg.Logger)
	m.transport = cfg.Transport
	if m.transport == nil {
		m.transport = grpcTransport
	}
	m.node, err = raftstore.New(cfg.Raft, storage, m.store, m.transport)
	if err != nil {
		storage.Close()
		return nil, err
	}
	m.control = controlapi.New(m.store, m.node, cfg.Clock)
	m.raftSvc = raftstore.NewRaftService(m.node, grpcTransport, identifyNode)
	m.logs = logbroker.New(m.store, cfg.Clock, cfg.Logger)
	m.stats = statsbroker.New(m.store, cfg.Clock, cfg.Logger)
	m.relay = newHeartbeatRelay(m.relayToLeader, cfg.Clock, cfg.Logger.With("component", "hbrelay"))
	return m, nil
}

func identifyNode(ctx context.Context) (string, error) {
	id, ok := pki.IdentityFromContext(ctx)
	if !ok {
		return "", errdefs.New(errdefs.ErrUnauthenticated, "no verified node certificate")
	}
	return id.NodeID, nil
}

// Store is the manager's replicated store.
func (m *Manager) Store() *raftstore.Store { return m.store }

// Raft is the manager's raft member.
func (m *Manager) Raft() *raftstore.Node { return m.node }

// Storage is the raft log; RaftID reads the member ID from it.
func (m *Manager) Storage() *raftstore.DiskStorage { return m.storage }

// Register adds the manager's services to a gRPC server. Use the
// interceptors from Interceptors on that server.
func (m *Manager) Register(s *grpc.Server) {
	api.RegisterRaftServer(s, &raftServer{RaftService: m.raftSvc, m: m})
	api.RegisterControlServer(s, m.control)
	api.RegisterDispatcherServer(s, &dispatcherFront{m: m})
	api.RegisterHeartbeatRelayServer(s, &heartbeatRelayServer{m: m})
	api.RegisterLogsServer(s, m.logs)
	api.RegisterLogBrokerServer(s, m.logs)
	api.RegisterStatsServer(s, m.stats)
	api.RegisterStatsBrokerServer(s, m.stats)
	api.RegisterWatchServer(s, &watchServer{store: m.store})
	api.RegisterCAServer(s, caserver.New(m.store, m.cfg.Clock, func(nodeID string) bool { return m.node.MemberByNodeID(nodeID) != nil }))
}

// Run runs raft and, while this manager leads, the control loops, until
// ctx ends or the manager is removed from the cluster.
//
// Run owns the raft log New opened and closes it when it returns, on every
// path. It may be called once.
func (m *Manager) Run(ctx context.Context, mode raftstore.StartMode) error {
	if !m.ran.CompareAndSwap(false, true) {
		return errors.New("manager: Run called twice")
	}
	defer m.closeStorage()
	defer m.relay.stop()
	nodeErr := make(chan error, 1)
	nctx, cancelNode := context.WithCancel(ctx)
	defer cancelNode()
	go func() { nodeErr <- m.node.Run(nctx, mode) }()
	select {
	case <-m.node.Started():
	case err := <-nodeErr:
		return err
	}
	watchStarted, watchDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watchDone)
		m.watchLeadership(nctx, watchStarted)
	}()
	defer func() { cancelNode(); <-watchDone }()
	<-watchStarted
	settingsDone := make(chan struct{})
	go func() {
		defer close(settingsDone)
		m.followCluster(nctx)
	}()
	defer func() { cancelNode(); <-settingsDone }()
	if mode != raftstore.JoinExisting {
		// A new swarm, or a restarted one-manager swarm, leads at once
		// instead of after an election timeout.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if ok, err := m.node.CampaignIfAlone(wctx); ok && err == nil && mode == raftstore.Restart {
			m.log.Info("the swarm's only manager: campaigning at once instead of after an election timeout")
		}
		cancel()
	}
	sub, unsubscribe := m.node.SubscribeLeadership()
	defer unsubscribe()
	var stopLeading func()
	defer func() {
		if stopLeading != nil {
			stopLeading()
		}
	}()
	for {
		leader := m.node.IsLeader()
		switch {
		case leader && stopLeading == nil:
			stopLeading = m.lead(ctx)
		case !leader && stopLeading != nil:
			stopLeading()
			stopLeading = nil
		}
		select {
		case <-sub:
		case err := <-nodeErr:
			return err
		case <-ctx.Done():
			if stopLeading != nil {
				stopLeading()
				stopLeading = nil
			}
			cancelNode()
			return <-nodeErr
		}
	}
}

// lead starts the leader-only loops after a barrier (so they read a store
// that holds every committed entry) and returns a function that stops them
// and waits.
func (m *Manager) lead(parent context.Context) func() {
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			bctx, bcancel := context.WithTimeout(ctx, 5*time.Second)
			err := m.node.Barrier(bctx)
			bcancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil || !m.node.IsLeader() {
				return
			}
			m.log.Warn("leader barrier failed; retrying", "err", err)
		}
		m.log.Info("leading: starting control loops", "term", m.node.Term())
		m.runLeaderLoops(ctx)
	}()
	return func() {
		cancel()
		<-done
		m.log.Info("stopped control loops")
	}
}

func (m *Manager) runLeaderLoops(ctx context.Context) {
	var rootCA []byte = m.cfg.RootCAPEM
	d, err := dispatcher.New(m.store, dispatcher.Config{
		Metrics:         &m.dispatcherMetrics,
		HeartbeatPeriod: m.heartbeatPeriod(),
		Period:          m.heartbeatPeriod,
		Managers:        m.managerPeers,
		RootCA:          rootCA,
		Identify:        m.identifyAgent,
		Clock:           m.cfg.Clock,
		Logger:          m.cfg.Logger,
	})
	if err != nil {
		m.log.Error("dispatcher", "err", err)
		return
	}
	sched := schedloop.New(m.store, m.cfg.Clock, m.cfg.Logger).WithMetrics(&m.schedMetrics)
	loops := []func(context.Context) error{
		orchestrator.New(m.store, m.cfg.Clock, m.cfg.Logger).WithPlacer(sched).Run,
		allocator.New(m.store, m.cfg.Clock, m.cfg.Logger).Run,
		sched.Run,
		d.Run,
		m.logs.Run,
		m.stats.Run,
		m.manageRoles,
	}
	m.setLeading(d, true)
	var wg sync.WaitGroup
	for _, run := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.supervise(ctx, run)
		}()
	}
	wg.Wait()
	m.setLeading(nil, false)
}

// setLeading records whether the control loops run, and wakes WaitLeading.
func (m *Manager) setLeading(d *dispatcher.Dispatcher, leading bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dispatcher, m.leading = d, leading
	close(m.leadChanged)
	m.leadChanged = make(chan struct{})
}

// WaitLeading waits until this manager leads and runs its control loops,
// or ctx ends (give it a deadline).
func (m *Manager) WaitLeading(ctx context.Context) error {
	for {
		m.mu.Lock()
		leading, changed := m.leading, m.leadChanged
		m.mu.Unlock()
		if leading {
			return nil
		}
		select {
		case <-ctx.Done():
			return errdefs.DeadlineExceeded("this manager did not become the leader in time: %v", ctx.Err())
		case <-changed:
		}
	}
}

// Close releases what New opened (the raft log) for a manager whose Run
// was never called, e.g. when starting it failed half-way. Once Run has
// started, Run owns the raft log and Close does nothing. Safe to call more
// than once.
func (m *Manager) Close() error {
	if m.ran.Load() {
		return nil
	}
	return m.closeStorage()
}

func (m *Manager) closeStorage() error {
	m.relay.stop()
	m.closeOnce.Do(func() { m.closeErr = m.storage.Close() })
	return m.closeErr
}

// heartbeatPeriod is the agents' heartbeat period: the daemon's override
// (tests), else the cluster's setting, else the default.
func (m *Manager) heartbeatPeriod() time.Duration {
	if m.cfg.HeartbeatPeriod != 0 {
		return m.cfg.HeartbeatPeriod
	}
	period := api.DefaultHeartbeatPeriod
	m.store.View(func(tx raftstore.ReadTx) {
		if cs := tx.Clusters(); len(cs) > 0 {
			period = api.Dur(cs[0].GetSpec().GetDispatcher().GetHeartbeatPeriod(), period)
		}
	})
	return period
}

// managerPeers lists managers for agents, from the raft membership.
func (m *Manager) managerPeers() []*api.WeightedPeer {
	var out []*api.WeightedPeer
	for _, mem := range m.node.Members() {
		out = append(out, &api.WeightedPeer{Peer: &api.Peer{NodeId: mem.NodeID, Addr: mem.Addr}, Weight: 1})
	}
	return out
}

// identifyAgent names the agent behind a Dispatcher call: the caller
// itself, or — when a manager forwards for an agent — the agent it names.
func (m *Manager) identifyAgent(ctx context.Context) (string, error) {
	id, ok := fwdmeta.Caller(ctx)
	if !ok {
		return "", errdefs.New(errdefs.ErrUnauthenticated, "no verified node certificate")
	}
	return id, nil
}

// currentDispatcher is the leader's dispatcher, nil on followers.
func (m *Manager) currentDispatcher() *dispatcher.Dispatcher {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dispatcher
}

// Leading reports whether this manager leads and runs the control loops.
func (m *Manager) Leading() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leading
}

// IsRemovedNode reports whether a node was removed from the cluster; its
// certificate is then refused. Called on every authenticated call: it reads
// sets kept in memory, never staler than the store (nodeAuth).
func (m *Manager) IsRemovedNode(nodeID string) bool {
	return m.auth.isRemoved(nodeID)
}

// IsDemotedNode reports whether a node the cluster has made a worker has
// left raft: from then on a manager certificate it still holds carries a
// worker's rights only. (While it is a member it must keep speaking raft,
// to hand off leadership and be removed.)
func (m *Manager) IsDemotedNode(nodeID string) bool {
	return m.auth.isWorker(nodeID) && m.node.MemberByNodeID(nodeID) == nil
}

// Members is the raft membership as seen here.
func (m *Manager) Members() []raftstore.MemberStatus { return m.node.Members() }

// NodesMarkedDown is how many times this manager's dispatchers (one per
// term it led) marked a node down for missed heartbeats since it started
// (shoal_dispatcher_heartbeat_failures_total).
func (m *Manager) NodesMarkedDown() uint64 { return m.dispatcherMetrics.Expired() }

// loopRestartDelay is how long a control loop that failed or panicked
// waits before it runs again.
const loopRestartDelay = time.Second

// supervise runs a control loop until ctx ends. A loop that returns early
// or panics is logged (with the stack) and restarted after a pause: every
// loop starts from a full snapshot of the store, so nothing is missed, and
// no bug in one loop takes the manager down.
func (m *Manager) supervise(ctx context.Context, run func(context.Context) error) {
	for ctx.Err() == nil {
		err := runRecovered(ctx, run)
		if ctx.Err() != nil {
			return
		}
		m.log.Error("control loop stopped; restarting it", "err", err)
		select {
		case <-ctx.Done():
		case <-m.cfg.Clock.After(loopRestartDelay):
		}
	}
}

func runRecovered(ctx context.Context, run func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	if err := run(ctx); err != nil {
		return err
	}
	return errors.New("returned before the end of leadership")
}

// TicketKeys seals and opens the TLS session tickets of this manager's
// gRPC server: pass it to pki.ServerConfig. Once the manager has read the
// cluster object (Run), the key is derived from the cluster's root CA key,
// the same on every manager, so that an agent resumes its TLS session on
// any manager after a failover, and on a restarted one.
func (m *Manager) TicketKeys() *pki.TicketKeys { return m.tickets }

// followCluster applies the cluster's settings that may change at run time
// to this member, until ctx ends: the raft settings (snapshot interval,
// entries kept for slow followers) and the session tickets' key.
func (m *Manager) followCluster(ctx context.Context) {
	for ctx.Err() == nil {
		var cluster *api.Cluster
		w := m.store.ViewAndWatch(raftstore.WatchOptions{Kinds: []string{raftstore.KindCluster}}, func(tx raftstore.ReadTx) {
			if cs := tx.Clusters(); len(cs) > 0 {
				cluster = cs[0]
			}
		})
		m.applyCluster(cluster)
		for open := true; open; {
			select {
			case <-ctx.Done():
				w.Close()
				return
			case ev, ok := <-w.C:
				if !ok {
					open = false // cut off or reset: read again
					break
				}
				if c, isCluster := ev.Object.(*api.Cluster); isCluster && ev.Action != raftstore.ActionDelete {
					m.applyCluster(c)
				}
			}
		}
	}
}

// applyCluster applies one read of the cluster object (nil: none yet).
func (m *Manager) applyCluster(c *api.Cluster) {
	raft := c.GetSpec().GetRaft()
	m.node.SetSnapshotPolicy(raft.GetSnapshotInterval(), raft.GetLogEntriesForSlowFollowers())
	if key := c.GetRootCa().GetCaKey(); len(key) > 0 {
		if err := m.tickets.SetSecret(key); err != nil {
			m.log.Warn("TLS session tickets: keep this manager's own key", "err", err)
		}
	}
}
