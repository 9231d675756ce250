package dispatcher

import (
	"bytes"
	"context"
	"slices"
	"sort"
	"sync"

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
// when the overlay view changes: one change, one message per session.
type overlayState struct {
	mu      sync.Mutex
	view    overlayView
	changed chan struct{} // closed (and replaced) on each change
	down    map[string]bool
	// atts holds each node's overlay attachments as last seen, nodeCh the
	// channel its session waits on: closed (and replaced) when they change,
	// so a node hears of its new ingress address at once, not at the next
	// heartbeat tick (the routing mesh waits for it).
	atts   map[string][]*api.NetworkAttachment
	nodeCh map[string]chan struct{}
	// seeds holds every gossip seed candidate (a ready node with an
	// address) and the first maxGossipSeeds+1 of them in seed order, so a
	// session message takes its seeds without a scan of the nodes.
	seeds seedSet
}

func newOverlayState() *overlayState {
	return &overlayState{changed: make(chan struct{}), down: map[string]bool{},
		atts: map[string][]*api.NetworkAttachment{}, nodeCh: map[string]chan struct{}{}, seeds: newSeedSet()}
}

// nodeChanged returns the channel closed when node id's attachments next
// change.
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

// attachmentsLocked records n's attachments and wakes its session when they
// changed.
func (o *overlayState) attachmentsLocked(n *api.Node, deleted bool) {
	prev, known := o.atts[n.Id]
	if deleted {
		delete(o.atts, n.Id)
	} else {
		o.atts[n.Id] = n.GetAttachments()
	}
	if known && !deleted && sameAttachments(&api.Node{Attachments: prev}, n) {
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
	for _, n := range tx.Nodes() {
		if n.GetStatus().GetState() == api.NodeStatus_DOWN {
			o.down[n.Id] = true
		}
		o.attachmentsLocked(n, false)
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
	switch v := ev.Object.(type) {
	case *api.Node:
		o.attachmentsLocked(v, ev.Action == raftstore.ActionDelete)
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

func (o *overlayState) publishLocked(next overlayView) {
	next.down = make([]string, 0, len(o.down))
	for id := range o.down {
		next.down = append(next.down, id)
	}
	sort.Strings(next.down)
	if next.equal(o.view) {
		return
	}
	o.view = next
	close(o.changed)
	o.changed = make(chan struct{})
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
