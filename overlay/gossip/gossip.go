package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Gossip is one node's member of the cluster-wide gossip and its copy of the
// replicated table. All methods are safe for concurrent use.
type Gossip struct {
	cfg Config
	log *slog.Logger
	ml  *memberlist.Memberlist
	q   *memberlist.TransmitLimitedQueue
	// mlp is ml for numNodes, which memberlist may call before Create returns.
	mlp atomic.Pointer[memberlist.Memberlist]

	mu      sync.Mutex
	t       *table
	pending map[string]struct{} // networks to report to OnChange
	closed  bool

	wake   chan struct{} // OnChange work (capacity 1: coalescing)
	repair chan string   // addresses to push-pull with (bounded, lossy)
	fresh  []Entry       // own writes not yet sent (direct.go), under mu
	flushc chan struct{} // pokes flushLoop (capacity 1)
	// inflight bounds the direct sends running (direct.go).
	inflight chan struct{}
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New starts memberlist on the configured address (or Transport) and the
// goroutines of Gossip. The node is alone until Join.
func New(cfg Config) (*Gossip, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	g := &Gossip{
		cfg:      cfg,
		log:      cfg.Log.With("component", "gossip", "node", cfg.NodeID),
		t:        newTable(cfg.NodeID, cfg.Generation).withGrace(cfg.RestartGrace, cfg.Clock.Now()),
		pending:  make(map[string]struct{}),
		wake:     make(chan struct{}, 1),
		repair:   make(chan string, 64),
		flushc:   make(chan struct{}, 1),
		inflight: make(chan struct{}, directInflight),
	}
	mc := cfg.memberlistConfig()
	mc.Delegate = (*delegate)(g)
	mc.Events = (*events)(g)
	mc.Logger = newMemberlistLogger(g.log)
	g.q = &memberlist.TransmitLimitedQueue{RetransmitMult: cfg.RetransmitMult, NumNodes: g.numNodes}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip: start memberlist on %s port %d: %w (is the port in use? set Config.Port)", cfg.BindAddr, cfg.Port, err)
	}
	g.ml = ml
	g.mlp.Store(ml)
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.wg.Add(3)
	go g.notifyLoop(ctx)
	go g.maintainLoop(ctx)
	go g.flushLoop(ctx)
	return g, nil
}

func (g *Gossip) numNodes() int {
	ml := g.mlp.Load()
	if ml == nil {
		return 1
	}
	return ml.NumMembers()
}

// Join contacts the seeds ("host" or "host:port"; the default port is
// Config.Port) and exchanges full state with each one reached. It returns how
// many were reached; the error lists those that were not and is nil when at
// least one was reached.
func (g *Gossip) Join(seeds []string) (int, error) {
	if len(seeds) == 0 {
		return 0, errors.New("gossip: Join with no seeds: pass at least one address of another node")
	}
	n, err := g.ml.Join(seeds)
	if n > 0 {
		if err != nil {
			g.log.Debug("some gossip seeds not reached", "err", err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("gossip: join %s: no seed reached (check the addresses, port and that all nodes share the cluster's network key): %w", strings.Join(seeds, ","), err)
}

// Publish writes e as this node's entry (Network, Key), replacing the
// previous one: Owner, Generation, Version and Deleted are set by Publish.
func (g *Gossip) Publish(e Entry) {
	if e.Network == "" || e.Key == "" {
		g.log.Error("gossip: Publish of an entry without network or key ignored", "network", e.Network, "key", e.Key)
		return
	}
	g.mu.Lock()
	f := g.t.publish(e, g.cfg.Clock.Now())
	g.mu.Unlock()
	g.doLocal(f)
}

// Withdraw deletes this node's entry (network, key): a tombstone replaces it
// everywhere and is forgotten after TombstoneTTL.
func (g *Gossip) Withdraw(network, key string) {
	g.mu.Lock()
	f := g.t.withdraw(network, key, g.cfg.Clock.Now())
	g.mu.Unlock()
	g.doLocal(f)
}

// Entries returns the live entries of a network, this node's included,
// sorted by Key then Owner. The slice and entries are the caller's.
func (g *Gossip) Entries(network string) []Entry {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.t.live(network)
}

// Networks returns the networks holding at least one live entry.
func (g *Gossip) Networks() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for n := range g.t.nets {
		if len(g.t.live(n)) > 0 {
			out = append(out, n)
		}
	}
	return out
}

// DropNode removes nodeID's entries at once (the managers say the node is
// down). Until one of these happens, entries of nodeID are ignored when their
// Generation is not above the highest one seen from it before the drop (all
// of them if none was seen):
//   - an entry with a higher Generation arrives (the node restarted);
//   - RestoreNode(nodeID) is called (the managers say it is up again).
//
// memberlist seeing the node alive again does not lift it: after a
// partition the managers may have replaced its tasks while its containers
// still run, and only the managers know.
//
// DropNode of this node is ignored.
func (g *Gossip) DropNode(nodeID string) {
	g.mu.Lock()
	f := g.t.dropNode(nodeID, g.cfg.Clock.Now())
	g.mu.Unlock()
	g.do(f)
}

// RestoreNode lifts DropNode(nodeID) and pulls the node's state if memberlist
// knows it alive.
func (g *Gossip) RestoreNode(nodeID string) {
	g.mu.Lock()
	ok := g.t.restoreNode(nodeID, g.cfg.Clock.Now())
	g.mu.Unlock()
	if !ok {
		return
	}
	for _, m := range g.ml.Members() {
		if m.Name == nodeID && m.State == memberlist.StateAlive {
			g.pull(m.Address())
		}
	}
}

// Members returns the names of the nodes memberlist sees alive, this one included.
func (g *Gossip) Members() []string {
	var out []string
	for _, m := range g.ml.Members() {
		if m.State == memberlist.StateAlive {
			out = append(out, m.Name)
		}
	}
	return out
}

// Close shuts memberlist down without a Leave message (a restarted node
// returns with a new generation; others drop its entries when memberlist
// declares it dead) and stops the goroutines. Use Leave first for a
// graceful exit. Close waits for direct sends in flight, at most
// memberlist's TCP timeout (5 s). Close is idempotent.
func (g *Gossip) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()
	err := g.ml.Shutdown()
	g.cancel()
	g.wg.Wait()
	if err != nil {
		return fmt.Errorf("gossip: shut down memberlist: %w", err)
	}
	return nil
}

// Leave tells the other members this node is leaving (they drop its
// entries at once), waiting at most timeout. Call Close afterwards.
func (g *Gossip) Leave(timeout time.Duration) error {
	if err := g.ml.Leave(timeout); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// do carries out a table operation's effects; never called under g.mu.
func (g *Gossip) do(f effects) {
	var own, others []Entry
	for _, e := range f.broadcast {
		if e.Owner == g.cfg.NodeID {
			own = append(own, e) // corrections of stale copies: like local writes
		} else {
			others = append(others, e)
		}
	}
	g.queue(others)
	if len(own) > 0 {
		g.doLocal(effects{broadcast: own})
	}
	g.changed(f)
}

// queue queues entries for gossip.
func (g *Gossip) queue(entries []Entry) {
	for _, e := range entries {
		g.q.QueueBroadcast(&broadcast{name: e.Network + "\x00" + e.Key + "\x00" + e.Owner, msg: encodeEntry(&e)})
	}
	if len(entries) > 0 {
		g.q.Prune(g.cfg.MaxQueuedBroadcasts)
	}
}

// changed records networks for OnChange and wakes notifyLoop.
func (g *Gossip) changed(f effects) {
	if len(f.changed) == 0 || g.cfg.OnChange == nil {
		return
	}
	g.mu.Lock()
	for n := range f.changed {
		g.pending[n] = struct{}{}
	}
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// pull asks the maintenance goroutine for a full-state exchange with addr.
func (g *Gossip) pull(addr string) {
	select {
	case g.repair <- addr:
	default: // the periodic push-pull repairs it
	}
}

// notifyLoop calls OnChange outside any lock.
func (g *Gossip) notifyLoop(ctx context.Context) {
	defer g.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.wake:
		}
		g.mu.Lock()
		nets := make([]string, 0, len(g.pending))
		for n := range g.pending {
			nets = append(nets, n)
		}
		clear(g.pending)
		g.mu.Unlock()
		for _, n := range nets {
			if ctx.Err() != nil {
				return
			}
			g.cfg.OnChange(n)
		}
	}
}

// maintainLoop reaps tombstones and runs requested push-pulls.
func (g *Gossip) maintainLoop(ctx context.Context) {
	defer g.wg.Done()
	every := min(g.cfg.TombstoneTTL/4, time.Minute)
	tick := g.cfg.Clock.NewTicker(every)
	defer tick.Stop()
	var graceC <-chan time.Time // the previous generations' entries expire
	if g.cfg.RestartGrace > 0 {
		gt := g.cfg.Clock.NewTicker(max(g.cfg.RestartGrace/10, 100*time.Millisecond))
		defer gt.Stop()
		graceC = gt.Chan()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-graceC:
			g.mu.Lock()
			f := g.t.expire(g.cfg.Clock.Now())
			g.mu.Unlock()
			g.do(f)
		case <-tick.Chan():
			g.mu.Lock()
			g.t.reap(g.cfg.Clock.Now(), g.cfg.TombstoneTTL, g.cfg.OwnerRetention)
			g.mu.Unlock()
		case addr := <-g.repair:
			// memberlist's Join is a push-pull with one address, bounded by TCPTimeout.
			if _, err := g.ml.Join([]string{addr}); err != nil {
				g.log.Debug("gossip: state pull failed; the periodic push-pull will repair", "addr", addr, "err", err)
			}
		}
	}
}

// broadcast is a queued entry; a newer one with the same name replaces it.
type broadcast struct {
	name string
	msg  []byte
}

func (b *broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b *broadcast) Name() string                          { return b.name }
func (b *broadcast) Message() []byte                       { return b.msg }
func (b *broadcast) Finished()                             {}
