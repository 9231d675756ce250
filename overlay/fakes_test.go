package overlay

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
)

// events is a shared, ordered log of what the fakes were asked to do.
type events struct {
	mu  sync.Mutex
	log []string
}

func (ev *events) add(format string, args ...any) {
	ev.mu.Lock()
	ev.log = append(ev.log, fmt.Sprintf(format, args...))
	ev.mu.Unlock()
}

func (ev *events) all() []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return slices.Clone(ev.log)
}

func (ev *events) index(s string) int {
	return slices.Index(ev.all(), s)
}

type fakeDP struct {
	ev    *events
	mu    sync.Mutex
	nets  map[string]Network
	peers map[string][]Peer
	port  uint16
}

func (d *fakeDP) EnsureNetwork(n Network) error {
	d.mu.Lock()
	d.nets[n.ID] = n
	d.mu.Unlock()
	d.ev.add("ensure %s vni %d", n.ID, n.VNI)
	return nil
}
func (d *fakeDP) AttachTask(netID, ns, ifName string, addr netip.Prefix, mac net.HardwareAddr) error {
	d.ev.add("attach %s %s %s %s %s", netID, ns, ifName, addr, mac)
	return nil
}
func (d *fakeDP) DetachTask(netID, ns, ifName string) error {
	d.ev.add("detach %s %s %s", netID, ns, ifName)
	return nil
}
func (d *fakeDP) SetPeers(netID string, peers []Peer) error {
	d.mu.Lock()
	d.peers[netID] = slices.Clone(peers)
	d.mu.Unlock()
	return nil
}
func (d *fakeDP) RemoveNetwork(netID string) error {
	d.mu.Lock()
	delete(d.nets, netID)
	d.mu.Unlock()
	d.ev.add("remove-net %s", netID)
	return nil
}
func (d *fakeDP) Networks() ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for n := range d.nets {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}
func (d *fakeDP) Close() error { return nil }
func (d *fakeDP) peersOf(netID string) []Peer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.peers[netID])
}

// table is a fake gossip cluster: one table every member sees at once.
type table struct {
	mu      sync.Mutex
	entries map[string]map[string]Entry // network -> owner/key -> entry
	members []*fakeGossip
}

func newTable() *table { return &table{entries: map[string]map[string]Entry{}} }

type fakeGossip struct {
	t      *table
	cfg    GossipConfig
	ev     *events
	closed bool
	alone  bool
	joins  [][]string
	// block, when set, holds every Join until it is closed (a cut network:
	// memberlist's dial waits its TCPTimeout)
	block chan struct{}
}

func (t *table) newGossip(ev *events) func(GossipConfig) (Gossip, error) {
	return func(c GossipConfig) (Gossip, error) {
		g := &fakeGossip{t: t, cfg: c, ev: ev}
		t.mu.Lock()
		t.members = append(t.members, g)
		t.mu.Unlock()
		ev.add("gossip-start %s key %x", c.NodeID, c.Key)
		return g, nil
	}
}

func (t *table) changed(network string) {
	t.mu.Lock()
	var open []*fakeGossip
	for _, m := range t.members {
		if !m.closed && m.cfg.OnChange != nil {
			open = append(open, m)
		}
	}
	t.mu.Unlock()
	for _, m := range open {
		m.cfg.OnChange(network)
	}
}

func (g *fakeGossip) Join(seeds []string) (int, error) {
	g.t.mu.Lock()
	g.joins = append(g.joins, slices.Clone(seeds))
	block := g.block
	g.t.mu.Unlock()
	g.ev.add("join %v", seeds)
	if block != nil {
		<-block
	}
	g.t.mu.Lock()
	g.alone = false // the partition healed: the join reaches them
	g.t.mu.Unlock()
	return len(seeds), nil
}
func (g *fakeGossip) Publish(e Entry) {
	g.t.mu.Lock()
	m := g.t.entries[e.Network]
	if m == nil {
		m = map[string]Entry{}
		g.t.entries[e.Network] = m
	}
	e.Owner = g.cfg.NodeID
	m[e.Owner+"/"+e.Key] = e
	g.t.mu.Unlock()
	g.ev.add("publish %s %s draining=%v", e.Network, e.Key, e.Draining)
	g.t.changed(e.Network)
}
func (g *fakeGossip) Withdraw(network, key string) {
	g.t.mu.Lock()
	delete(g.t.entries[network], g.cfg.NodeID+"/"+key)
	g.t.mu.Unlock()
	g.ev.add("withdraw %s %s", network, key)
	g.t.changed(network)
}
func (g *fakeGossip) Entries(network string) []Entry {
	g.t.mu.Lock()
	defer g.t.mu.Unlock()
	var out []Entry
	for _, e := range g.t.entries[network] {
		out = append(out, e)
	}
	return out
}
func (g *fakeGossip) DropNode(nodeID string) {
	g.ev.add("drop %s", nodeID)
}
func (g *fakeGossip) RestoreNode(nodeID string) {
	g.ev.add("restore %s", nodeID)
}

// Members are the table's open members; a test may cut the member off
// (alone) to see the agent rejoin.
func (g *fakeGossip) Members() []string {
	g.t.mu.Lock()
	defer g.t.mu.Unlock()
	if g.alone {
		return []string{g.cfg.NodeID}
	}
	var out []string
	for _, m := range g.t.members {
		if !m.closed {
			out = append(out, m.cfg.NodeID)
		}
	}
	return out
}
func (g *fakeGossip) Close() error {
	g.t.mu.Lock()
	g.closed = true
	g.t.mu.Unlock()
	g.ev.add("gossip-close %s", g.cfg.NodeID)
	return nil
}

type fakeDNS struct {
	ev    *events
	mu    sync.Mutex
	tasks map[string]string
}

func (d *fakeDNS) AddTask(id, ns string) error {
	d.mu.Lock()
	d.tasks[id] = ns
	d.mu.Unlock()
	d.ev.add("dns-add %s", id)
	return nil
}
func (d *fakeDNS) RemoveTask(id string) error {
	d.mu.Lock()
	delete(d.tasks, id)
	d.mu.Unlock()
	d.ev.add("dns-remove %s", id)
	return nil
}
func (d *fakeDNS) Close() error { return nil }

type fakeVIP struct {
	ev      *events
	mu      sync.Mutex
	tables  map[string][]Service
	applies int
}

func (v *fakeVIP) Apply(ns string, svcs []Service) error {
	v.mu.Lock()
	v.tables[ns] = slices.Clone(svcs)
	v.applies++
	v.mu.Unlock()
	v.ev.add("vip-apply %s %s", ns, fmtServices(svcs))
	return nil
}
func (v *fakeVIP) Remove(ns string) error {
	v.mu.Lock()
	delete(v.tables, ns)
	v.mu.Unlock()
	v.ev.add("vip-remove %s", ns)
	return nil
}
func (v *fakeVIP) FlushConntrack(ns string, b netip.Addr) error {
	v.ev.add("flush %s %s", ns, b)
	return nil
}
func (v *fakeVIP) table(ns string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return fmtServices(v.tables[ns])
}
func (v *fakeVIP) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.applies
}

func fmtServices(svcs []Service) string {
	s := "["
	for i, x := range svcs {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s=%v", x.VIP, x.Backends)
	}
	return s + "]"
}
