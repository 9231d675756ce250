package allocator

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/shoal-project/shoal/internal/specs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Keys of the reconcile driver, and holder keys of addresses.
const (
	keyCluster = "c"
	preNode    = "n/"
	preService = "s/"
	preTask    = "t/"
	// preNetwork keys a network pending delete: deleted once no task
	// holds an address on it.
	preNetwork = "w/"
)

// holding is what one object (task, node, service) holds: an address and
// a MAC per network, as last seen in the store or reserved by a pass.
type holding struct {
	version uint64
	addrs   map[string]netip.Addr // network ID -> address
	macs    map[string]bool
	node    string // tasks: the node the task is on
}

func (h *holding) setAddr(netID string, a netip.Addr) {
	if h.addrs == nil {
		h.addrs = map[string]netip.Addr{}
	}
	h.addrs[netID] = a
}

// empty reports whether h holds nothing.
func (h *holding) empty() bool { return len(h.addrs) == 0 && len(h.macs) == 0 }

// state mirrors the store's address holdings. It is owned by the driver's
// goroutine (no locking).
type state struct {
	log      *slog.Logger
	nets     map[string]*api.Network // by ID
	pools    map[string]*pool        // by network ID
	poolErr  map[string]string       // networks without a usable pool
	holdings map[string]*holding     // by key (t/ID, n/ID, s/ID)
	macs     map[string]string       // MAC -> holder key
	nodeNets map[string]map[string]int
	// waiting: network ID (or "?"+reference for a missing network) ->
	// keys waiting for an address there.
	waiting map[string]map[string]bool
	// ingressID is the ingress network's ID ("" when there is none).
	ingressID string
	// publishers are the services whose allocated ports hold an ingress
	// port; while there is one, every node serves the mesh.
	publishers map[string]bool
	// nodes are the IDs of the store's nodes.
	nodes map[string]bool
	// portWait are services whose spec has a port another service holds
	// (after a rollback by the orchestrator): looked at again when any
	// service changes.
	portWait map[string]bool
}

func newState(log *slog.Logger) *state {
	return &state{log: log, nets: map[string]*api.Network{}, pools: map[string]*pool{}, poolErr: map[string]string{},
		holdings: map[string]*holding{}, macs: map[string]string{}, nodeNets: map[string]map[string]int{},
		waiting: map[string]map[string]bool{}, publishers: map[string]bool{}, nodes: map[string]bool{}, portWait: map[string]bool{}}
}

// meshActive reports whether a service publishes an ingress port.
func (s *state) meshActive() bool { return len(s.publishers) > 0 }

// setPublisher records whether service id publishes an ingress port; when
// the mesh turns on or off, every node is marked (its ingress attachment).
func (s *state) setPublisher(id string, on bool, mark func(string)) {
	was := s.meshActive()
	if on {
		s.publishers[id] = true
	} else {
		delete(s.publishers, id)
	}
	if was != s.meshActive() {
		s.markNodes(mark)
	}
}

// wakePorts marks the services waiting for a port.
func (s *state) wakePorts(mark func(string)) {
	for id := range s.portWait {
		mark(preService + id)
	}
}

// markNodes marks every node.
func (s *state) markNodes(mark func(string)) {
	for id := range s.nodes {
		mark(preNode + id)
	}
}

// forget drops what the state knows of a deleted object beyond its
// holding.
func (s *state) forget(o raftstore.Object, mark func(string)) {
	switch v := o.(type) {
	case *api.Service:
		s.setPublisher(v.Id, false, mark)
		delete(s.portWait, v.Id)
		s.wakePorts(mark)
	case *api.Node:
		delete(s.nodes, v.Id)
	}
}

// liveTask reports whether a task's addresses are held: not both past
// RUNNING and desired past RUNNING.
func liveTask(t *api.Task) bool {
	return t.GetStatus().GetState() <= api.TaskState_RUNNING || t.GetDesiredState() <= api.TaskState_RUNNING
}

// holdingOf reads what an object holds.
func holdingOf(o raftstore.Object) (string, *holding) {
	// Maps are made on first need: most tasks have no networks.
	h := &holding{version: o.GetMeta().GetVersion()}
	add := func(a *api.NetworkAttachment) {
		for _, s := range a.GetAddresses() {
			if addr, ok := parseAddr(s); ok {
				h.setAddr(a.GetNetworkId(), addr)
			}
		}
		if a.GetMac() != "" {
			if h.macs == nil {
				h.macs = map[string]bool{}
			}
			h.macs[a.GetMac()] = true
		}
	}
	switch v := o.(type) {
	case *api.Task:
		h.node = v.GetNodeId()
		if liveTask(v) {
			for _, a := range v.GetNetworks() {
				add(a)
			}
		}
		return preTask + v.Id, h
	case *api.Node:
		for _, a := range v.GetAttachments() {
			add(a)
		}
		return preNode + v.Id, h
	case *api.Service:
		for _, vip := range v.GetEndpoint().GetVirtualIps() {
			if addr, ok := parseAddr(vip.GetAddr()); ok {
				h.setAddr(vip.GetNetworkId(), addr)
			}
		}
		return preService + v.Id, h
	}
	return "", nil
}

// set replaces key's holding with h (nil: the object is gone), releasing
// what it no longer holds (quarantined from now) and claiming the rest.
// mark is told the keys to look at again: waiters on networks where an
// address was freed, nodes whose tasks' networks changed.
func (s *state) set(key string, h *holding, now time.Time, mark func(string)) {
	old := s.holdings[key]
	if old == nil {
		if h == nil || h.empty() {
			return // nothing held before or after: the common case
		}
		old = &holding{}
	}
	nh := h
	if nh == nil {
		nh = &holding{}
	}
	for netID, a := range old.addrs {
		if na, ok := nh.addrs[netID]; ok && na == a {
			continue
		}
		if p := s.pools[netID]; p != nil && p.release(a, key, now) {
			s.wake(netID, mark)
			if key[:2] == preTask && s.nets[netID].GetPendingDelete() {
				mark(preNetwork + netID)
			}
		}
	}
	for netID, a := range nh.addrs {
		if p := s.pools[netID]; p != nil {
			if other := p.claim(a, key); other != "" {
				s.log.Error("address held twice in the store", "network", p.name, "addr", a, "holder", key, "other", other)
			}
		}
	}
	for mac := range old.macs {
		if !nh.macs[mac] && s.macs[mac] == key {
			delete(s.macs, mac)
		}
	}
	for mac := range nh.macs {
		s.macs[mac] = key
	}
	if key[:2] == preTask {
		s.countNode(old, -1, mark)
		s.countNode(nh, +1, mark)
	}
	if h == nil || h.empty() {
		// Holdings that hold nothing are not kept (memory: most tasks
		// have no networks, or ended); the version check then does not
		// apply, and a stale event can at worst hold an address until
		// the object's next event.
		delete(s.holdings, key)
	} else {
		s.holdings[key] = h
	}
}

// countNode adds d to the per-node network counts of a task's holding.
func (s *state) countNode(h *holding, d int, mark func(string)) {
	if h.node == "" || len(h.addrs) == 0 {
		return
	}
	nets := s.nodeNets[h.node]
	if nets == nil {
		nets = map[string]int{}
		s.nodeNets[h.node] = nets
	}
	for netID := range h.addrs {
		nets[netID] += d
		if nets[netID] <= 0 {
			delete(nets, netID)
			mark(preNode + h.node)
		} else if nets[netID] == 1 && d > 0 {
			mark(preNode + h.node)
		}
	}
	if len(nets) == 0 {
		delete(s.nodeNets, h.node)
	}
}

// wake marks and forgets the keys waiting on a network.
func (s *state) wake(netID string, mark func(string)) {
	for key := range s.waiting[netID] {
		mark(key)
	}
	delete(s.waiting, netID)
}

// wait records that key waits for an address (or the network) netID.
func (s *state) wait(netID, key string) {
	if s.waiting[netID] == nil {
		s.waiting[netID] = map[string]bool{}
	}
	s.waiting[netID][key] = true
}

// observe applies one store object's current version; stale versions (a
// rebuilt mirror already saw later ones) are ignored.
func (s *state) observe(o raftstore.Object, now time.Time, mark func(string)) {
	key, h := holdingOf(o)
	if h == nil {
		return
	}
	if old := s.holdings[key]; old != nil && h.version != 0 && h.version <= old.version {
		return
	}
	switch v := o.(type) {
	case *api.Service:
		s.setPublisher(v.Id, specs.PublishesIngress(v.GetEndpoint().GetPorts()), mark)
		s.wakePorts(mark)
	case *api.Node:
		s.nodes[v.Id] = true
	}
	s.set(key, h, now, mark)
}

// addNetwork builds (or keeps) a network's pool.
func (s *state) addNetwork(n *api.Network, mark func(string)) {
	s.nets[n.Id] = n
	if n.GetPendingDelete() {
		mark(preNetwork + n.Id)
	}
	if n.GetSpec().GetIngress() && s.ingressID != n.Id {
		s.ingressID = n.Id
		s.markNodes(mark)
	}
	if s.pools[n.Id] == nil {
		p, err := newPool(n)
		if err != nil {
			s.poolErr[n.Id] = err.Error()
		} else {
			s.pools[n.Id] = p
			delete(s.poolErr, n.Id)
		}
	}
	s.wake("?"+n.Id, mark)
	s.wake("?"+netName(n), mark)
	if n.GetSpec().GetIngress() {
		s.wake("?"+IngressName, mark)
	}
}

// taskHolds reports whether a task holds an address on network netID.
func (s *state) taskHolds(netID string) bool {
	p := s.pools[netID]
	if p == nil {
		return false
	}
	for _, holder := range p.used {
		if holder[:2] == preTask {
			return true
		}
	}
	return false
}

// removeNetwork forgets a network; holders that still name it are marked
// (nodes and services drop it).
func (s *state) removeNetwork(id string, mark func(string)) {
	if s.ingressID == id {
		s.ingressID = ""
	}
	delete(s.nets, id)
	delete(s.pools, id)
	delete(s.poolErr, id)
	for key, h := range s.holdings {
		if _, ok := h.addrs[id]; ok && key[:2] != preTask {
			mark(key)
		}
	}
	s.wake(id, mark)
}

// rebuild resets the mirror from a full snapshot, keeping the quarantine
// of addresses still free.
func (s *state) rebuild(tx raftstore.ReadTx, now time.Time, mark func(string)) {
	oldPools := s.pools
	fresh := newState(s.log)
	for _, n := range tx.Networks() {
		fresh.addNetwork(n, mark)
	}
	for id, p := range fresh.pools {
		if op := oldPools[id]; op != nil && op.subnet == p.subnet {
			for a, at := range op.freed {
				p.freed[a] = at
			}
			p.queue = append(p.queue, op.queue...)
		}
	}
	for _, t := range tx.Tasks() {
		fresh.observe(t, now, mark)
	}
	for _, n := range tx.Nodes() {
		fresh.observe(n, now, mark)
	}

	for _, svc := range tx.Services() {
		fresh.observe(svc, now, mark)
	}
	if fresh.meshActive() {
		fresh.markNodes(mark)
	}
	fresh.waiting = s.waiting
	fresh.portWait = s.portWait
	*s = *fresh
}
