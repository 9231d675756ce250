package dispatcher

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/ids"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Config configures a Dispatcher.
type Config struct {
	// HeartbeatPeriod is what agents are told; a node is DOWN after
	// DownAfter periods without one. Defaults 5s and 3.
	HeartbeatPeriod time.Duration
	DownAfter       int
	// Period, when set, gives the current heartbeat period (the cluster's
	// setting, which `swarm update` can change at any time); it overrides
	// HeartbeatPeriod from the next heartbeat on.
	Period func() time.Duration
	// LeaderGrace is how long nodes known from the store get, after this
	// dispatcher starts (a new leader), to reconnect before they are
	// marked down. Default 2 x DownAfter x HeartbeatPeriod. Past it, a
	// silent node is still held while sessions keep arriving (one within
	// the last two periods: the reconnect storm goes on), for at most
	// MassDownHold more.
	LeaderGrace time.Duration
	// MassDownMin and MassDownHold guard against marking most of the
	// cluster down at once. When at least MassDownMin nodes, and more than
	// half of the nodes this dispatcher watches, are silent (due, or due
	// within a period: they missed DownAfter-1 heartbeats), the likelier
	// cause is on the managers' side (a starved leader, a partition
	// around it, a reconnect storm after a failover) than half the nodes
	// failing together, and marking them down would reschedule all their
	// tasks: a load that deepens the trouble. Such nodes (every node
	// silent at that check, due or not yet) are held (their
	// deadline moves on by DownAfter periods, with a warning) for at most
	// MassDownHold from their first hold, even if the others come back
	// meanwhile; a node that heartbeats meanwhile was never marked down.
	// Defaults 10 and 2 minutes (after which a real mass failure is
	// handled as any other).
	MassDownMin  int
	MassDownHold time.Duration
	// Managers lists the managers agents may connect to.
	Managers func() []*api.WeightedPeer
	// RootCA is sent to agents in session messages (PEM).
	RootCA []byte
	// Identify returns the calling node's ID from the call context.
	Identify func(ctx context.Context) (string, error)
	// SetupSlots bounds the assignment streams taking their first view of
	// the node's tasks at once (it holds the store's lock, and the raft
	// apply loop waits for that lock): thousands of agents reconnecting
	// after a failover queue here instead of in front of the apply loop.
	// Default DefaultSetupSlots.
	SetupSlots int
	// Metrics receives the dispatcher's counts; nil: counted but not kept.
	Metrics *Metrics
	Clock   clockwork.Clock
	Logger  *slog.Logger
}

func (c *Config) validate() error {
	if c.HeartbeatPeriod == 0 {
		c.HeartbeatPeriod = api.DefaultHeartbeatPeriod
	}
	if c.DownAfter == 0 {
		c.DownAfter = 3
	}
	if c.LeaderGrace == 0 {
		c.LeaderGrace = 2 * time.Duration(c.DownAfter) * c.HeartbeatPeriod
	}
	if c.MassDownMin == 0 {
		c.MassDownMin = DefaultMassDownMin
	}
	if c.MassDownHold == 0 {
		c.MassDownHold = DefaultMassDownHold
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	if c.Metrics == nil {
		c.Metrics = &Metrics{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.SetupSlots <= 0 {
		c.SetupSlots = DefaultSetupSlots
	}
	if c.Managers == nil {
		c.Managers = func() []*api.WeightedPeer { return nil }
	}
	if c.Identify == nil {
		return errdefs.InvalidArgument("dispatcher: Identify is required")
	}
	return nil
}

// DefaultSetupSlots is Config.SetupSlots's default.
const DefaultSetupSlots = 8

// Config.MassDownMin's and MassDownHold's defaults.
const (
	DefaultMassDownMin  = 10
	DefaultMassDownHold = 2 * time.Minute
)

// Dispatcher serves agents on the leader. It is created when a manager wins
// leadership and stopped (Run returns) when it loses it; every session is
// then cut and agents reconnect to the next leader.
type Dispatcher struct {
	api.UnimplementedDispatcherServer
	cfg   Config
	store *raftstore.Store
	log   *slog.Logger

	ctx     context.Context // Run's context: ends every session
	started chan struct{}

	mu       sync.Mutex
	sessions map[string]*session // by node ID
	expiry   map[string]time.Time
	held     map[string]time.Time // nodes held from a mass down (MassDownMin): when first held
	// startedAt is when Run started, lastSession when the last session
	// opened (a reconnect storm in progress).
	startedAt   time.Time
	lastSession time.Time
	stormLogged time.Time // when the storm hold was last logged
	massLogged  time.Time // when the mass hold was last logged
	massHeld    int       // holds of the mass hold since it was last logged

	// managers is the manager list sessions last sent; managersCh is
	// closed (and replaced) when Run sees it change (under mu).
	managers   []*api.WeightedPeer
	managersCh chan struct{}

	status  *statusWriter
	nodes   *nodeWriter
	overlay *overlayState
	setup   chan struct{} // one token per set-up in progress (SetupSlots)
}

type session struct {
	id     string
	nodeID string
	ctx    context.Context
	cancel context.CancelFunc
}

// New returns a dispatcher over the store.
func New(store *raftstore.Store, cfg Config) (*Dispatcher, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d := &Dispatcher{
		cfg: cfg, store: store, log: cfg.Logger.With("component", "dispatcher"),
		started: make(chan struct{}), sessions: map[string]*session{}, expiry: map[string]time.Time{}, held: map[string]time.Time{},
		overlay: newOverlayState(cfg.Clock, cfg.HeartbeatPeriod), setup: make(chan struct{}, cfg.SetupSlots),
		managersCh: make(chan struct{}),
	}
	d.status = newStatusWriter(store, cfg.Clock, d.log)
	d.nodes = newNodeWriter(store)
	return d, nil
}

var _ api.DispatcherServer = (*Dispatcher)(nil)

// Run serves until ctx ends: it watches heartbeats and marks silent nodes
// down, and writes task statuses in batches.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.ctx = ctx
	now := d.cfg.Clock.Now()
	d.store.View(func(tx raftstore.ReadTx) {
		d.mu.Lock()
		d.startedAt = now
		for _, n := range tx.Nodes() {
			if n.GetStatus().GetState() != api.NodeStatus_DOWN {
				d.expiry[n.Id] = now.Add(d.cfg.LeaderGrace)
			}
		}
		d.mu.Unlock()
	})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		d.status.run(ctx)
	}()
	go func() {
		defer wg.Done()
		d.nodes.run(ctx)
	}()
	ovReady := make(chan struct{})
	go func() {
		defer wg.Done()
		d.store.View(func(tx raftstore.ReadTx) { d.overlay.reset(tx) })
		close(ovReady)
		d.watchOverlay(ctx)
	}()
	<-ovReady
	// The ticker exists before started is closed: time that passes after
	// the start (a fake clock advanced by a test) is seen by the checks.
	tick := d.cfg.Clock.NewTicker(min(d.cfg.HeartbeatPeriod/4, 250*time.Millisecond))
	defer tick.Stop()
	close(d.started)
	for {
		select {
		case <-ctx.Done():
			d.overlay.stop()
			d.mu.Lock()
			for _, s := range d.sessions {
				s.cancel()
			}
			d.mu.Unlock()
			wg.Wait()
			return nil
		case <-tick.Chan():
			d.expire(ctx)
			d.checkManagers()
		}
	}
}

// stormSessionGap is, in heartbeat periods, how long after the last new
// session a new leader still counts its agents as reconnecting. One
// straggler's attempt can take longer than two periods: an agent waits up to
// RPCTimeout (5 s) for a session's first message and then backs off for up to
// two periods (8 s at the default 5 s period), and when only a few are left
// the gaps between their sessions are that long. With two periods, seven
// nodes still reconnecting 50 s after a CheckQuorum step-down were marked down
// and 200 tasks moved (a 1M failover, session 24). The hold still ends at
// LeaderGrace+MassDownHold. Only with at least MassDownMin nodes watched:
// stragglers are a storm's, and in a small cluster a node killed just after
// another one reconnected must still go down within about three periods
// (smallStormSessionGap there, as before).
const stormSessionGap, smallStormSessionGap = 4, 2

// expire marks nodes whose heartbeats stopped as down, unless they are
// most of the cluster (Config.MassDownMin): those it holds for a while.
func (d *Dispatcher) expire(ctx context.Context) {
	if ctx.Err() != nil {
		return // no longer the leader: marking nodes down is the next one's call
	}
	now := d.cfg.Clock.Now()
	period := d.period()
	var due, down []string
	d.mu.Lock()
	// A silent node is due, or will be within a period (it missed at
	// least DownAfter-1 heartbeats), or held. Nodes that fall silent
	// together come due one check after another (their last heartbeats were spread over
	// a period), so the mass test counts the silent, not the due.
	soon := now.Add(period)
	var silent []string
	for id, at := range d.expiry {
		if now.After(at) {
			due = append(due, id)
		}
		if _, held := d.held[id]; held || at.Before(soon) {
			silent = append(silent, id)
		}
	}
	watched := len(d.expiry)
	mass := len(due) > 0 && len(silent) >= d.cfg.MassDownMin && 2*len(silent) > watched
	if mass {
		// Every node silent now is part of the same trouble, not only
		// those already due: the others come due in the next checks,
		// when the silent may no longer be most (some came back), and
		// would go down one check later than the held ones (585 of
		// 5,500 silent nodes 6 s after a hold, in a 1M create).
		for _, id := range silent {
			if _, ok := d.held[id]; !ok {
				d.held[id] = now
			}
		}
	}
	// After a leader change every node reconnects: while sessions still
	// arrive (one within the last stormSessionGap periods; two in a
	// cluster smaller than MassDownMin), a silent node
	// is queued behind the others rather than gone, however few remain:
	// not yet reconnected, or reconnected and cut again (a relayed
	// heartbeat or a forwarded stream that failed under the load); for at
	// most MassDownHold past the grace.
	gap := time.Duration(smallStormSessionGap)
	if watched >= d.cfg.MassDownMin {
		gap = stormSessionGap
	}
	storm := now.Sub(d.lastSession) <= gap*period && now.Sub(d.startedAt) < d.cfg.LeaderGrace+d.cfg.MassDownHold
	held, stormHeld := 0, 0
	for _, id := range due {
		// A node once held stays held for the whole hold, even when the
		// others come back and the silent are no longer most: they return
		// over a minute or more after a failover at 10,000 nodes, and the
		// last ones are as much part of the storm as the first.
		first, ok := d.held[id]
		if mass || ok {
			if !ok {
				first = now
				d.held[id] = now
			}
			if now.Sub(first) < d.cfg.MassDownHold {
				d.expiry[id] = now.Add(time.Duration(d.cfg.DownAfter) * period)
				held++
				continue
			}
		} else if storm {
			// Looked at again each period: once sessions stop
			// arriving, those still silent go down.
			d.expiry[id] = now.Add(period)
			stormHeld++
			continue
		}
		delete(d.held, id)
		down = append(down, id)
		delete(d.expiry, id)
		if s := d.sessions[id]; s != nil {
			s.cancel()
			delete(d.sessions, id)
		}
	}
	d.mu.Unlock()
	if held+stormHeld > 0 {
		d.cfg.Metrics.held.Add(uint64(held + stormHeld))
	}
	if stormHeld > 0 && now.Sub(d.stormLogged) >= period {
		d.stormLogged = now
		d.log.Warn("nodes silent while others are still reconnecting to this new leader: holding them instead of marking them down",
			"held", stormHeld, "leader_for", now.Sub(d.startedAt).Round(time.Second),
			"hold_until_leader_for", d.cfg.LeaderGrace+d.cfg.MassDownHold)
	}
	// Logged at most once a period, with the holds since the last line:
	// the check runs several times a period, and one 1M failover logged
	// this 1,528 times.
	if held > 0 && mass {
		d.massHeld += held
	}
	if d.massHeld > 0 && now.Sub(d.massLogged) >= period {
		d.log.Warn("most nodes missed their heartbeats at once: more likely trouble on the managers' side (overload, a partition, a reconnect storm) than that many nodes failing; holding them instead of marking them down and rescheduling their tasks",
			"held", d.massHeld, "silent", len(silent), "watched", watched, "hold_at_most", d.cfg.MassDownHold)
		d.massLogged, d.massHeld = now, 0
	}
	if len(down) == 0 {
		return
	}
	// All in one go: the writer batches them (one at a time, 4,000
	// nodes took 4,000 raft rounds, with this loop stopped meanwhile).
	// Only what committed counts and is logged: a leader deposed
	// meanwhile writes nothing.
	errs := d.nodes.submitAll(ctx, down, func(n *api.Node) {
		n.Status = &api.NodeStatus{State: api.NodeStatus_DOWN, Message: "heartbeat failure", Addr: n.GetStatus().GetAddr()}
	})
	marked := 0
	var failed []string
	var failure error
	for i, id := range down {
		if errs[i] == nil {
			marked++
			d.log.Info("node missed its heartbeats; marked it down", "node", id)
		} else if !errdefs.IsNotFound(errs[i]) {
			failed = append(failed, id)
			failure = errs[i]
		}
	}
	d.cfg.Metrics.expired.Add(uint64(marked))
	if len(failed) > 0 && ctx.Err() == nil {
		// Tried again a period from now, unless a heartbeat comes first.
		d.log.Warn("marking nodes down failed; trying again", "nodes", len(failed), "err", failure)
		d.mu.Lock()
		for _, id := range failed {
			if _, back := d.expiry[id]; !back {
				d.expiry[id] = d.cfg.Clock.Now().Add(period)
			}
		}
		d.mu.Unlock()
	}
}

// setNodeStatus changes a node through the batching node writer. A change
// that leaves the node as it is writes nothing: an agent reconnecting to a
// new leader with the same description and address (every agent after a
// failover) costs no raft write.
func (d *Dispatcher) setNodeStatus(ctx context.Context, nodeID string, change func(*api.Node)) error {
	return d.nodes.submit(ctx, nodeID, change)
}

// Started is closed when Run starts serving (it may have stopped since).
func (d *Dispatcher) Started() <-chan struct{} { return d.started }

func (d *Dispatcher) ready() error {
	select {
	case <-d.started:
		if d.ctx.Err() != nil {
			return errdefs.Unavailable("dispatcher stopped: this manager is no longer the leader")
		}
		return nil
	default:
		return errdefs.Unavailable("dispatcher is starting")
	}
}

// beginSetup waits for a set-up slot; call the returned function to free
// it. It fails when ctx ends or the dispatcher stops first.
func (d *Dispatcher) beginSetup(ctx context.Context) (func(), error) {
	select {
	case d.setup <- struct{}{}:
		return func() { <-d.setup }, nil
	case <-ctx.Done():
		return nil, errdefs.Unavailable("session set-up abandoned: %v", ctx.Err())
	case <-d.ctx.Done():
		return nil, errdefs.Unavailable("dispatcher stopped: this manager is no longer the leader")
	}
}

// session returns the caller's live session with the given ID.
func (d *Dispatcher) session(ctx context.Context, id string) (*session, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	nodeID, err := d.cfg.Identify(ctx)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sessionLocked(nodeID, id)
}

// sessionLocked returns node nodeID's session if its ID is id.
func (d *Dispatcher) sessionLocked(nodeID, id string) (*session, error) {
	s := d.sessions[nodeID]
	if nodeID == "" || s == nil || s.id != id {
		return nil, errdefs.NotFound("session invalid: open a new session")
	}
	return s, nil
}

// aliveLocked records that node id was heard from at now: it is due again
// DownAfter periods later, and no longer held from a mass down.
func (d *Dispatcher) aliveLocked(id string, now time.Time, period time.Duration) {
	d.expiry[id] = now.Add(time.Duration(d.cfg.DownAfter) * period)
	delete(d.held, id)
}

// Session opens an agent's session: it marks the node ready, sends the
// session message and keeps the manager list current until the session
// ends.
func (d *Dispatcher) Session(req *api.SessionRequest, stream api.Dispatcher_SessionServer) error {
	if err := d.ready(); err != nil {
		return err
	}
	ctx := stream.Context()
	nodeID, err := d.cfg.Identify(ctx)
	if err != nil {
		return err
	}
	var node *api.Node
	d.store.View(func(tx raftstore.ReadTx) { node = tx.Node(nodeID) })
	if node == nil {
		return errdefs.NotFound("node %s is not part of this swarm (removed?)", nodeID)
	}
	sctx, cancel := context.WithCancel(d.ctx)
	defer cancel()
	s := &session{id: ids.New(), nodeID: nodeID, ctx: sctx, cancel: cancel}
	period := d.period()
	d.mu.Lock()
	if old := d.sessions[nodeID]; old != nil {
		old.cancel()
	}
	d.sessions[nodeID] = s
	d.lastSession = d.cfg.Clock.Now()
	d.aliveLocked(nodeID, d.lastSession, period)
	d.mu.Unlock()
	d.cfg.Metrics.sessions.Add(1)
	defer func() {
		d.mu.Lock()
		if d.sessions[nodeID] == s {
			delete(d.sessions, nodeID)
		}
		d.mu.Unlock()
	}()
	addr := peerHost(ctx)
	err = d.setNodeStatus(ctx, nodeID, func(n *api.Node) {
		if req.GetDescription() != nil {
			n.Description = req.GetDescription()
			if ls := n.Description.GetLocalSubnet(); ls != "" {
				n.LocalSubnet = ls
			}
		}
		n.Status = &api.NodeStatus{State: api.NodeStatus_READY, Addr: addr}
	})
	if err != nil {
		return err
	}
	// Follow the node's changes from before it is read: a change between
	// the read and the subscription would reach the agent only with the
	// next one (a drain right after the session opened, lost until then).
	nodeCh := d.overlay.nodeChanged(nodeID)
	d.store.View(func(tx raftstore.ReadTx) { node = tx.Node(nodeID) })
	view, changed := d.overlay.current()
	managers, managersCh := d.currentManagers()
	if err := stream.Send(d.sessionMessage(s.id, node, managers, view)); err != nil {
		return err
	}
	d.log.Debug("agent session opened", "node", nodeID, "session", s.id)
	for {
		select {
		case <-sctx.Done():
			return errdefs.Unavailable("session ended: reconnect")
		case <-ctx.Done():
			return nil
		case <-nodeCh:
			// What the agent knows of its node changed (role, availability,
			// labels, an ingress address given or taken): tell it now.
			nodeCh = d.overlay.nodeChanged(nodeID)
			var cur *api.Node
			d.store.View(func(tx raftstore.ReadTx) { cur = tx.Node(nodeID) })
			if cur == nil {
				return errdefs.NotFound("node %s was removed from the swarm", nodeID)
			}
			if tellsAgent(node, cur) {
				node = cur
				if err := stream.Send(d.sessionMessage(s.id, node, managers, view)); err != nil {
					return err
				}
			}
		case <-managersCh:
			managers, managersCh = d.currentManagers()
			if err := stream.Send(d.sessionMessage(s.id, node, managers, view)); err != nil {
				return err
			}
		case <-changed:
			// The down nodes, the gossip key or the data path port
			// changed: one message per change.
			view, changed = d.overlay.current()
			var cur *api.Node
			d.store.View(func(tx raftstore.ReadTx) { cur = tx.Node(nodeID) })
			if cur == nil {
				return errdefs.NotFound("node %s was removed from the swarm", nodeID)
			}
			node = cur
			if err := stream.Send(d.sessionMessage(s.id, node, managers, view)); err != nil {
				return err
			}
		}
	}
}

// tellsAgent reports whether a node's agent must hear of the change from
// prev to cur: its role, spec (availability, labels, desired role) or
// overlay attachments.
func tellsAgent(prev, cur *api.Node) bool {
	return prev.Role != cur.Role || !proto.Equal(prev.Spec, cur.Spec) || !sameAttachments(prev, cur)
}

// currentManagers returns the manager list and the channel closed when it
// next changes: one check for all sessions (Run's tick), not one a session.
func (d *Dispatcher) currentManagers() ([]*api.WeightedPeer, <-chan struct{}) {
	d.mu.Lock()
	m, ch := d.managers, d.managersCh
	d.mu.Unlock()
	if m == nil { // before Run's first check
		d.checkManagers()
		return d.currentManagers()
	}
	return m, ch
}

// checkManagers wakes every session when the manager list changed. The
// list is read outside the dispatcher's lock.
func (d *Dispatcher) checkManagers() {
	m := d.cfg.Managers()
	if m == nil {
		m = []*api.WeightedPeer{}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.managers != nil && samePeers(m, d.managers) {
		return
	}
	d.managers = m
	close(d.managersCh)
	d.managersCh = make(chan struct{})
}

// sameAttachments compares nodes' overlay attachments (the allocator's).
func sameAttachments(a, b *api.Node) bool {
	if len(a.GetAttachments()) != len(b.GetAttachments()) {
		return false
	}
	for i := range a.GetAttachments() {
		if !proto.Equal(a.Attachments[i], b.Attachments[i]) {
			return false
		}
	}
	return true
}

func samePeers(a, b []*api.WeightedPeer) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// period is the heartbeat period in force now.
func (d *Dispatcher) period() time.Duration {
	if d.cfg.Period != nil {
		if p := d.cfg.Period(); p > 0 {
			return p
		}
	}
	return d.cfg.HeartbeatPeriod
}

// Heartbeat extends the session's life by DownAfter periods.
func (d *Dispatcher) Heartbeat(ctx context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	s, err := d.session(ctx, req.GetSessionId())
	if err != nil {
		return nil, err
	}
	period := d.period()
	d.mu.Lock()
	d.aliveLocked(s.nodeID, d.cfg.Clock.Now(), period)
	d.mu.Unlock()
	d.cfg.Metrics.heartbeats.Add(1)
	return &api.HeartbeatResponse{Period: durationpb.New(period)}, nil
}

// RelayedHeartbeats records heartbeats that another manager relays for the
// agents connected to it (it has authenticated each one). It returns one
// error per beat, nil where the beat was accepted, and the period to
// answer with; the error is for the whole call (the dispatcher is not
// running). One lock for the whole batch: this is what relaying saves.
func (d *Dispatcher) RelayedHeartbeats(beats []*api.RelayedHeartbeat) ([]error, time.Duration, error) {
	if err := d.ready(); err != nil {
		return nil, 0, err
	}
	errs := make([]error, len(beats))
	accepted := 0
	period := d.period()
	d.mu.Lock()
	now := d.cfg.Clock.Now()
	for i, b := range beats {
		s, err := d.sessionLocked(b.GetNodeId(), b.GetSessionId())
		if err != nil {
			errs[i] = err
			continue
		}
		d.aliveLocked(s.nodeID, now, period)
		accepted++
	}
	d.mu.Unlock()
	d.cfg.Metrics.heartbeats.Add(uint64(accepted))
	return errs, period, nil
}

// UpdateTaskStatus records status reports of the caller's tasks. It returns
// once they are committed, so an agent never drops a report the store did
// not take.
func (d *Dispatcher) UpdateTaskStatus(ctx context.Context, req *api.UpdateTaskStatusRequest) (*api.UpdateTaskStatusResponse, error) {
	s, err := d.session(ctx, req.GetSessionId())
	if err != nil {
		return nil, err
	}
	for _, u := range req.GetUpdates() {
		if u.GetStatus() == nil || u.GetTaskId() == "" {
			return nil, errdefs.InvalidArgument("status update without a task or status")
		}
		if u.Status.Timestamp == nil {
			u.Status.Timestamp = timestamppb.New(d.cfg.Clock.Now())
		}
	}
	if err := d.status.submit(ctx, s.nodeID, req.GetUpdates()); err != nil {
		return nil, err
	}
	return &api.UpdateTaskStatusResponse{}, nil
}
