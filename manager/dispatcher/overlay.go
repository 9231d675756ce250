package dispatcher

import (
	"bytes"
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// DefaultDataPathPort is the VXLAN port sent when the cluster sets none.
const DefaultDataPathPort = 4789

// maxGossipSeeds bounds SessionMessage.gossip_seeds.
const maxGossipSeeds = 8

// overlayView is the part of session messages that every node shares: the
// VXLAN port, the gossip key and the nodes that are down.
type overlayView struct {
	port uint32
	key  []byte
	down []string // sorted
}

func (v overlayView) equal(o overlayView) bool {
	return v.port == o.port && bytes.Equal(v.key, o.key) && slices.Equal(v.down, o.down)
}

// overlayState follows the store's nodes and cluster and wakes sessions
// when the overlay view changes. Every session then sends a message, so a
// burst of changes is published at most once per minEvery: at 10,000
// nodes each published change costs 10,000 messages carrying the list of
// down nodes, and a failover at 1,000,000 tasks, where nodes went down and
// up one by one, spent 29 % of the leader's CPU sending them.
type overlayState struct {
	clock    clockwork.Clock
	minEvery time.Duration

	mu          sync.Mutex
	view        overlayView  // as published
	pending     *overlayView // a change not published yet, waiting for timer
	timer       clockwork.Timer
	lastPublish time.Time
	stopped     bool
	changed     chan struct{} // closed (and replaced) on each publication
	down        map[string]bool
	// nodes holds each node as last seen, nodeCh the channel its session
	// waits on: closed (and replaced) when what the agent is told of its
	// node changes (role, spec: availability, labels; overlay attachments)
	// or the node is removed, so a node hears of it at once (the routing
	// mesh waits for a new ingress address) and sessions poll nothing.
	nodes  map[string]*api.Node
	nodeCh map[string]chan struct{}
	// seeds holds every gossip seed candidate (a ready node with an
	// address) and the first maxGossipSeeds+1 of them in seed order, so a
	// session message takes its seeds without a scan of the nodes.
	seeds seedSet
}

func newOverlayState(clock clockwork.Clock, minEvery time.Duration) *overlayState {
	return &overlayState{clock: clock, minEvery: minEvery, changed: make(chan struct{}), down: map[string]bool{},
		nodes: map[string]*api.Node{}, nodeCh: map[string]chan struct{}{}, seeds: newSeedSet()}
}

// nodeChanged returns the channel closed when what the agent of node id is
// told of its node next changes (tellsAgent), or the node is removed.
func (o *overlayState) nodeChanged(id string) <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	ch := o.nodeCh[id]
	if ch == nil {
		ch = make(chan struct{})
		o.nodeCh[id] = ch
	}
	return ch
}

// nodeLocked records n and wakes its session when what its agent is told
// of it changed.
func (o *overlayState) nodeLocked(n *api.Node, deleted bool) {
	prev, known := o.nodes[n.Id]
	if deleted {
		delete(o.nodes, n.Id)
	} else {
		o.nodes[n.Id] = n
	}
	if known && !deleted && !tellsAgent(prev, n) {
		return
	}
	if ch := o.nodeCh[n.Id]; ch != nil {
		close(ch)
		delete(o.nodeCh, n.Id)
	}
}

// current returns the view and the channel closed at its next change.
func (o *overlayState) current() (overlayView, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.view, o.changed
}

// gossipSeeds lists the data-path addresses of up to maxGossipSeeds other
// ready nodes, managers first, then by node ID.
func (o *overlayState) gossipSeeds(self string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seeds.list(self)
}

// reset rebuilds the state from a snapshot.
func (o *overlayState) reset(tx raftstore.ReadTx) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down = map[string]bool{}
	o.seeds = newSeedSet()
	nodes := tx.Nodes()
	present := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		present[n.Id] = true
	}
	for id, n := range o.nodes {
		if !present[id] { // removed while the watch was cut off
			o.nodeLocked(n, true)
		}
	}
	for _, n := range nodes {
		if n.GetStatus().GetState() == api.NodeStatus_DOWN {
			o.down[n.Id] = true
		}
		o.nodeLocked(n, false)
		o.seeds.add(n)
	}
	o.seeds.refill()
	next := overlayView{port: DefaultDataPathPort}
	if cs := tx.Clusters(); len(cs) > 0 {
		next.port, next.key = dataPathPort(cs[0]), cs[0].GetNetworkKey()
	}
	o.publishLocked(next)
}

func dataPathPort(c *api.Cluster) uint32 {
	if p := c.GetSpec().GetDataPathPort(); p != 0 {
		return p
	}
	return DefaultDataPathPort
}

// event applies one store event.
func (o *overlayState) event(ev raftstore.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	next := o.view
	if o.pending != nil { // a change waiting for its turn: build on it
		next = *o.pending
	}
	switch v := ev.Object.(type) {
	case *api.Node:
		o.nodeLocked(v, ev.Action == raftstore.ActionDelete)
		o.seeds.update(v, ev.Action == raftstore.ActionDelete)
		if ev.Action != raftstore.ActionDelete && v.GetStatus().GetState() == api.NodeStatus_DOWN {
			o.down[v.Id] = true
		} else {
			delete(o.down, v.Id)
		}
	case *api.Cluster:
		if ev.Action != raftstore.ActionDelete {
			next.port, next.key = dataPathPort(v), v.GetNetworkKey()
		}
	default:
		return
	}
	o.publishLocked(next)
}

// publishLocked publishes next (with the down nodes as they are now): at
// once when the last publication is minEvery old, else when it will be.
func (o *overlayState) publishLocked(next overlayView) {
	next.down = make([]string, 0, len(o.down))
	for id := range o.down {
		next.down = append(next.down, id)
	}
	sort.Strings(next.down)
	if next.equal(o.view) {
		o.pending = nil
		return
	}
	if o.stopped {
		return
	}
	now := o.clock.Now()
	if wait := o.lastPublish.Add(o.minEvery).Sub(now); wait > 0 {
		o.pending = &next
		if o.timer == nil {
			o.timer = o.clock.AfterFunc(wait, o.flush)
		}
		return
	}
	o.pending = nil
	o.lastPublish = now
	o.view = next
	close(o.changed)
	o.changed = make(chan struct{})
}

// flush publishes the change that waited for minEvery.
func (o *overlayState) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.timer = nil
	if o.pending != nil { // publishLocked does nothing once stopped
		o.publishLocked(*o.pending)
	}
}

// stop ends the pending publication (the dispatcher stopped).
func (o *overlayState) stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stopped = true
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
}

// watchOverlay keeps the overlay state in line with the store until ctx
// ends, resyncing from a snapshot when its watch is cut off.
func (d *Dispatcher) watchOverlay(ctx context.Context) {
	for ctx.Err() == nil {
		w := d.store.ViewAndWatch(raftstore.WatchOptions{Kinds: []string{raftstore.KindNode, raftstore.KindCluster}},
			func(tx raftstore.ReadTx) { d.overlay.reset(tx) })
		func() {
			defer w.Close()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-w.C:
					if !ok {
						if ctx.Err() == nil {
							d.log.Warn("overlay watch ended; resyncing", "err", w.Err())
						}
						return
					}
					d.overlay.event(ev)
				}
			}
		}()
	}
}

// sessionMessage builds a node's session message.
func (d *Dispatcher) sessionMessage(sessionID string, node *api.Node, managers []*api.WeightedPeer, view overlayView) *api.SessionMessage {
	seeds := d.overlay.gossipSeeds(node.GetId())
	return &api.SessionMessage{SessionId: sessionID, Node: node, Managers: managers, RootCa: d.cfg.RootCA,
		DataPathPort: view.port, NetworkKey: view.key, DownNodes: view.down, GossipSeeds: seeds}
}
