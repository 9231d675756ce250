package simagent

import (
	"context"
	"errors"
	"log/slog"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/internal/remotes"
)

// DialFunc opens a new connection from one node to a manager address; the
// node owns it and closes it when its session ends.
type DialFunc func(ctx context.Context, addr string) (*grpc.ClientConn, error)

// Config configures a Fleet.
type Config struct {
	// Managers lists the manager addresses a node may connect to; it is
	// called at every connection attempt.
	Managers func() []string
	// Reporters sizes the shared pool that sends status reports (default
	// 32); it also grows by one worker per 50 nodes. Heartbeats have no
	// pool: each due heartbeat is a call of its own, as every real agent
	// beats on its own, so slow answers delay no other node's heartbeat.
	Reporters int
	// CallTimeout bounds each unary call (default 15s).
	CallTimeout time.Duration
	// MaxConns bounds the connections the whole fleet keeps open (0: no
	// bound). A node keeps its connection to each manager it has had a
	// session with, as a real agent does, but every real agent has a
	// process and file descriptors of its own: 10,000 nodes of one process
	// with 3 managers would need 30,000 sockets. Past the bound, a node
	// that opens a connection first closes its others.
	MaxConns int
	// ReconnectSpread is the longest random wait before a node's first
	// attempt after an established session ended, as the real agent's
	// (worker: a fifth of the heartbeat period, 1 s at the default); 0:
	// none, only the backoff's 50-100 ms.
	ReconnectSpread time.Duration
	// BackoffMin and BackoffMax bound the pause between a node's session
	// attempts, which doubles from the one to the other while they fail
	// (defaults 100ms and 8s, as the real agent's).
	BackoffMin, BackoffMax time.Duration
	Logger                 *slog.Logger
}

// Fleet runs simulated nodes. Create it with New, add nodes with Add, stop
// it with Close.
type Fleet struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	nodes     []*Node
	closed    bool
	ends      map[string]int // sessions ended, by cause
	openFails map[string]int // sessions not opened, by manager address

	reports *queue

	stats counters
}

type counters struct {
	sessionsOpened, sessionsEnded         atomic.Int64
	dials, connsClosed                    atomic.Int64
	slowBeats                             [len(slowBeatBounds)]atomic.Int64
	beatMax                               atomic.Int64 // nanoseconds
	conns                                 atomic.Int64 // open now
	liveSessions                          atomic.Int64
	heartbeats, heartbeatErrors           atomic.Int64
	reportCalls, reportErrors             atomic.Int64
	reportedRunning, reportedShutdown     atomic.Int64
	assignmentMessages, assignmentChanges atomic.Int64
	handshakes, handshakesResumed         atomic.Int64
	handshakesFailed                      atomic.Int64
}

// Stats are a Fleet's counters since New.
type Stats struct {
	Nodes                         int
	LiveSessions                  int64
	SessionsOpened, SessionsEnded int64
	// Dials counts the connections the nodes made (a node keeps one per
	// manager across its sessions).
	Dials int64
	// ConnsClosed counts the connections nodes closed to stay within
	// Config.MaxConns (each may cost a new handshake later).
	ConnsClosed int64
	// Handshakes counts the TLS handshakes the nodes' connections
	// completed (HandshakesResumed of them resumed a session) and
	// HandshakesFailed those that did not complete, with the credentials
	// wrapped by CountHandshakes (zero without).
	Handshakes, HandshakesResumed, HandshakesFailed int64
	Heartbeats, HeartbeatErrors                     int64
	// SlowHeartbeats counts the heartbeat calls (answered or not) that
	// took longer than each of slowBeatBounds, by its name ("1s"...);
	// HeartbeatMax is the longest. A manager that hears a heartbeat late
	// counts the node silent, though the node saw no error.
	SlowHeartbeats                        map[string]int64
	HeartbeatMax                          time.Duration
	ReportCalls, ReportErrors             int64
	ReportedRunning, ReportedShutdown     int64
	AssignmentMessages, AssignmentChanges int64
	// Ends counts the sessions that ended, by cause: where it was seen
	// first, the gRPC code and the start of the message.
	Ends map[string]int
	// OpenFailures counts the sessions that could not be opened (no first
	// session message), by manager address: which manager a storm of
	// failed handshakes hit.
	OpenFailures map[string]int
}

// ended counts the end of a node's session with the manager at addr.
func (f *Fleet) ended(addr string, out sessionOutcome) {
	f.mu.Lock()
	f.ends[out.cause]++
	if !out.established {
		f.openFails[addr]++
	}
	f.mu.Unlock()
}

// New starts a fleet with no nodes.
func New(cfg Config) *Fleet {
	if cfg.Reporters <= 0 {
		cfg.Reporters = 32
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 15 * time.Second
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 100 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = maxBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Fleet{cfg: cfg, log: cfg.Logger.With("component", "simagent"), ctx: ctx, cancel: cancel,
		reports: newQueue(), ends: map[string]int{}, openFails: map[string]int{}}
	for i := 0; i < cfg.Reporters; i++ {
		f.goWork(f.reports, (*Node).report)
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		pprof.SetGoroutineLabels(labels)
		f.schedule()
	}()
	return f
}

// Add starts a simulated node with the given ID and hostname; dial opens
// its connections (with its own certificate). The node's Node object must
// already be in the store, as after a join.
func (f *Fleet) Add(id, hostname string, dial DialFunc) (*Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, errors.New("simagent: fleet closed")
	}
	// Each node's contexts descend from a root of its own, not from the
	// fleet's: thousands of sessions and calls deriving from one parent
	// would all take its lock to register and unregister (at 10,000 nodes
	// under load, 2,000 goroutines queued on it and the join stalled).
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{ID: id, Hostname: hostname, f: f, dial: dial, remotes: remotes.New(nil, remotes.SeedFor(id)), cancel: cancel}
	f.nodes = append(f.nodes, n)
	if len(f.nodes)%perWorker == 0 {
		f.goWork(f.reports, (*Node).report)
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		pprof.SetGoroutineLabels(labels) // gRPC's goroutines for the node inherit it
		n.run(ctx)
	}()
	return n, nil
}

// Nodes lists the fleet's nodes in the order they were added.
func (f *Fleet) Nodes() []*Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*Node(nil), f.nodes...)
}

// NodeIDs lists the IDs of the fleet's nodes in the order they were added.
func (f *Fleet) NodeIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, len(f.nodes))
	for i, n := range f.nodes {
		ids[i] = n.ID
	}
	return ids
}

// Stats returns the fleet's counters.
func (f *Fleet) Stats() Stats {
	s := &f.stats
	f.mu.Lock()
	ends, openFails := addCounts(nil, f.ends), addCounts(nil, f.openFails)
	f.mu.Unlock()
	slow := make(map[string]int64, len(slowBeatBounds))
	for i, b := range slowBeatBounds {
		slow[b.String()] = s.slowBeats[i].Load()
	}
	return Stats{
		Nodes: len(f.Nodes()), Ends: ends, OpenFailures: openFails,
		SlowHeartbeats: slow, HeartbeatMax: time.Duration(s.beatMax.Load()),
		LiveSessions: s.liveSessions.Load(), SessionsOpened: s.sessionsOpened.Load(), SessionsEnded: s.sessionsEnded.Load(),
		Dials:       s.dials.Load(),
		ConnsClosed: s.connsClosed.Load(),
		Handshakes:  s.handshakes.Load(), HandshakesResumed: s.handshakesResumed.Load(), HandshakesFailed: s.handshakesFailed.Load(),
		Heartbeats: s.heartbeats.Load(), HeartbeatErrors: s.heartbeatErrors.Load(),
		ReportCalls: s.reportCalls.Load(), ReportErrors: s.reportErrors.Load(),
		ReportedRunning: s.reportedRunning.Load(), ReportedShutdown: s.reportedShutdown.Load(),
		AssignmentMessages: s.assignmentMessages.Load(), AssignmentChanges: s.assignmentChanges.Load(),
	}
}

// Add adds o's counters to s (the fleets of several processes summed):
// sums, except HeartbeatMax, the larger of the two.
func (s *Stats) Add(o Stats) {
	s.Nodes += o.Nodes
	s.LiveSessions += o.LiveSessions
	s.SessionsOpened += o.SessionsOpened
	s.SessionsEnded += o.SessionsEnded
	s.Dials += o.Dials
	s.ConnsClosed += o.ConnsClosed
	s.Handshakes += o.Handshakes
	s.HandshakesResumed += o.HandshakesResumed
	s.HandshakesFailed += o.HandshakesFailed
	s.Heartbeats += o.Heartbeats
	s.HeartbeatErrors += o.HeartbeatErrors
	s.HeartbeatMax = max(s.HeartbeatMax, o.HeartbeatMax)
	s.ReportCalls += o.ReportCalls
	s.ReportErrors += o.ReportErrors
	s.ReportedRunning += o.ReportedRunning
	s.ReportedShutdown += o.ReportedShutdown
	s.AssignmentMessages += o.AssignmentMessages
	s.AssignmentChanges += o.AssignmentChanges
	s.SlowHeartbeats = addCounts(s.SlowHeartbeats, o.SlowHeartbeats)
	s.Ends = addCounts(s.Ends, o.Ends)
	s.OpenFailures = addCounts(s.OpenFailures, o.OpenFailures)
}

// addCounts adds o's counts to m (made when nil and o has any) and
// returns it.
func addCounts[N int | int64](m, o map[string]N) map[string]N {
	for k, v := range o {
		if m == nil {
			m = map[string]N{}
		}
		m[k] += v
	}
	return m
}

// Close stops every node and pool and waits for them; each node closes
// its connection. Safe to call more than once.
func (f *Fleet) Close() {
	f.mu.Lock()
	f.closed = true
	nodes := f.nodes
	f.mu.Unlock()
	f.cancel()
	for _, n := range nodes {
		n.cancel()
	}
	f.wg.Wait()
}

// labels mark every goroutine of a fleet (and those they start, gRPC's
// for the nodes' connections) with the pprof label shoal=fleet, so that a
// CPU profile tells the fleet's work from the managers' in one process.
var labels = pprof.WithLabels(context.Background(), pprof.Labels("shoal", "fleet"))

// perWorker is the nodes per extra pool worker.
const perWorker = 50

// goWork starts a pool worker that runs do for each node taken from q.
func (f *Fleet) goWork(q *queue, do func(*Node, context.Context)) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		pprof.SetGoroutineLabels(labels)
		for {
			n := q.pop(f.ctx)
			if n == nil {
				return
			}
			do(n, f.ctx)
		}
	}()
}

// schedule starts the heartbeats that are due, every 100ms: one goroutine
// per heartbeat in flight, at most one per node (beatQueued). A shared
// pool made every heartbeat wait for the slowest calls ahead of it: at
// 1,000 nodes on a loaded machine, 28 workers sent 58 heartbeats/s of the
// 200/s due, and 931 nodes were marked down.
func (f *Fleet) schedule() {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now().UnixNano()
		for _, n := range f.Nodes() {
			s := n.sess.Load()
			if s == nil {
				continue
			}
			if at := s.retryReport.Load(); at != 0 && at <= now && s.retryReport.CompareAndSwap(at, 0) {
				f.reports.push(n) // reports that timed out, due again
			}
			if s.nextBeat.Load() > now || !s.beatQueued.CompareAndSwap(false, true) {
				continue
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				pprof.SetGoroutineLabels(labels)
				n.beat(f.ctx)
			}()
		}
	}
}

// queue is an unbounded FIFO of nodes; a node is in it at most once (its
// callers guard with a flag), so it holds at most one entry per node.
type queue struct {
	mu    sync.Mutex
	items []*Node
	ready chan struct{} // a token while items is not empty
}

func newQueue() *queue { return &queue{ready: make(chan struct{}, 1)} }

func (q *queue) push(n *Node) {
	q.mu.Lock()
	q.items = append(q.items, n)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop waits for a node; nil once ctx ends.
func (q *queue) pop(ctx context.Context) *Node {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			n := q.items[0]
			q.items[0] = nil
			q.items = q.items[1:]
			more := len(q.items) > 0
			q.mu.Unlock()
			if more { // pass the token on to another worker
				select {
				case q.ready <- struct{}{}:
				default:
				}
			}
			return n
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-q.ready:
		}
	}
}
