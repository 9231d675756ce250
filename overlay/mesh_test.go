package overlay

import (
	"context"
	"fmt"
	"google.golang.org/protobuf/proto"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
)

// fakeMesh records what the Agent asks of ingress/mesh.
type fakeMesh struct {
	ev      *events
	mu      sync.Mutex
	ports   []MeshPort // nil: no table
	returns map[string]MeshReturn
}

func (m *fakeMesh) Apply(ns string, ports []MeshPort) error {
	m.mu.Lock()
	m.ports = slices.Clone(ports)
	m.mu.Unlock()
	m.ev.add("mesh-apply %s %s", ns, fmtPorts(ports))
	return nil
}
func (m *fakeMesh) Remove(ns string) error {
	m.mu.Lock()
	m.ports = nil
	m.mu.Unlock()
	m.ev.add("mesh-remove %s", ns)
	return nil
}
func (m *fakeMesh) EnableLocalhost(ns string, ifs ...string) error {
	m.ev.add("localhost %s %v", ns, ifs)
	return nil
}
func (m *fakeMesh) FlushConntrack(ns string, b netip.Addr) error {
	m.ev.add("mesh-flush %s %s", ns, b)
	return nil
}
func (m *fakeMesh) ApplyReturn(ns string, r MeshReturn) error {
	m.mu.Lock()
	m.returns[ns] = r
	m.mu.Unlock()
	m.ev.add("return %s %s", ns, fmtReturn(r))
	return nil
}
func (m *fakeMesh) RemoveReturn(ns string) error {
	m.mu.Lock()
	delete(m.returns, ns)
	m.mu.Unlock()
	m.ev.add("return-remove %s", ns)
	return nil
}

func (m *fakeMesh) table() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ports == nil {
		return "none"
	}
	return fmtPorts(m.ports)
}

func (m *fakeMesh) ret(ns string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.returns[ns]
	if !ok {
		return "none"
	}
	return fmtReturn(r)
}

func fmtPorts(ps []MeshPort) string {
	var b []string
	for _, p := range ps {
		s := fmt.Sprintf("%s/%d->%d%v", p.Proto, p.Published, p.Target, p.Backends)
		if p.Masquerade {
			s += "m"
		}
		if p.HostMode {
			s += "h"
		}
		b = append(b, s)
	}
	return "[" + strings.Join(b, " ") + "]"
}

func fmtReturn(r MeshReturn) string {
	var ns []string
	for _, n := range r.Nodes {
		ns = append(ns, n.Addr.String()+"@"+n.MAC.String())
	}
	return fmt.Sprintf("%s %s nodes=%v udp=%v", r.Interface, r.Subnet, ns, r.UDPPorts)
}

type meshNode struct {
	*node
	mesh *fakeMesh
}

func newMeshNode(t *testing.T, tab *table, id, vtep string) *meshNode {
	t.Helper()
	m := restartMeshNode(t, tab, id, vtep, t.TempDir(), nil, nil)
	m.a.Session(&api.SessionMessage{NetworkKey: []byte("k")})
	return m
}

// restartMeshNode starts an agent on stateDir (a restart when a previous
// one used it) with the previous node's fakes (nil: new ones) and the live
// task IDs live; no session message yet.
func restartMeshNode(t *testing.T, tab *table, id, vtep, stateDir string, prev *meshNode, live []string) *meshNode {
	t.Helper()
	ev := &events{}
	n := &node{ev: ev, clk: clockwork.NewFakeClock(),
		dp:  &fakeDP{ev: ev, nets: map[string]Network{}, peers: map[string][]Peer{}},
		dns: &fakeDNS{ev: ev, tasks: map[string]string{}},
		vip: &fakeVIP{ev: ev, tables: map[string][]Service{}}}
	m := &fakeMesh{ev: ev, returns: map[string]MeshReturn{}}
	if prev != nil {
		prev.ev.mu.Lock()
		prev.ev.log = nil
		prev.ev.mu.Unlock()
		n.ev, n.dp, n.dns, n.vip, m = prev.ev, prev.dp, prev.dns, prev.vip, prev.mesh
	}
	a, err := New(Config{
		NodeID: id, DataPathAddr: netip.MustParseAddr(vtep), StateDir: stateDir, LinkPrefix: id,
		Clock: n.clk, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), HostNetns: "host-" + id, DrainDelay: -1,
		NewDatapath: func(c DatapathConfig) (Datapath, error) { n.dp.port = c.Port; return n.dp, nil },
		NewGossip:   tab.newGossip(ev),
		NewDNS:      func(DNSConfig) (DNS, error) { return n.dns, nil },
		VIP:         n.vip,
		Mesh:        m,
	})
	if err != nil {
		t.Fatal(err)
	}
	a.netnsExists = func(string) bool { return true }
	if err := a.Start(context.Background(), live); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	n.a = a
	return &meshNode{node: n, mesh: m}
}

// ingressAtt is an attachment on the ingress network "ing" (10.255.0.0/16)
// with host number ip.
func ingressAtt(ip int) *api.NetworkAttachment {
	return &api.NetworkAttachment{NetworkId: "ing", NetworkName: "ingress", Vni: 4352, Ingress: true,
		Addresses: []string{fmt.Sprintf("10.255.0.%d/16", ip)}, Mac: fmt.Sprintf("02:42:0a:ff:00:%02x", ip),
		Subnet: "10.255.0.0/16", Gateway: "10.255.0.1"}
}

func nodeWith(id string, ip int) *api.Node {
	return &api.Node{Id: id, Attachments: []*api.NetworkAttachment{ingressAtt(ip)}}
}

// pubTask is a task of svc on the ingress network (host number ip) and
// netA, publishing ports.
func pubTask(id, svc string, ip int, ports ...*api.PortConfig) *api.Task {
	t := task(id, svc, 1, ip, false, "netA")
	t.Networks = append([]*api.NetworkAttachment{ingressAtt(ip)}, t.Networks...)
	t.Endpoint.Ports = ports
	return t
}

func port(proto api.PortConfig_Protocol, pub, target uint32, mode api.PortConfig_PublishMode, masq bool) *api.PortConfig {
	return &api.PortConfig{Protocol: proto, PublishedPort: pub, TargetPort: target, PublishMode: mode, Masquerade: masq}
}

func waitTable(t *testing.T, m *meshNode, want string) {
	t.Helper()
	testutil.EventuallyErr(t, 2*time.Second, 5*time.Millisecond, func() error {
		if got := m.mesh.table(); got != want {
			return fmt.Errorf("mesh table of %s = %s, want %s", m.a.cfg.NodeID, got, want)
		}
		return nil
	}, "mesh table")
}

func waitReturn(t *testing.T, m *meshNode, ns, want string) {
	t.Helper()
	testutil.EventuallyErr(t, 2*time.Second, 5*time.Millisecond, func() error {
		if got := m.mesh.ret(ns); got != want {
			return fmt.Errorf("return path of %s = %s, want %s", ns, got, want)
		}
		return nil
	}, "return path")
}

func TestMeshIngressPorts(t *testing.T) {
	tab := newTable()
	na, nb := newMeshNode(t, tab, "na", "192.168.0.1"), newMeshNode(t, tab, "nb", "192.168.0.2")
	na.a.SetNode(nodeWith("na", 2))
	nb.a.SetNode(nodeWith("nb", 3))

	// The node's own interface on the ingress network, localhost on it.
	if na.ev.index("attach ing host-na na-ing 10.255.0.2/16 02:42:0a:ff:00:02") < 0 || na.ev.index("localhost host-na [na-ing]") < 0 {
		t.Fatalf("node attachment: %v", na.ev.all())
	}
	ctx := context.Background()
	web := pubTask("web1", "web", 5,
		port(api.PortConfig_TCP, 8080, 80, api.PortConfig_INGRESS, false),
		port(api.PortConfig_UDP, 5353, 53, api.PortConfig_INGRESS, false),
		port(api.PortConfig_UDP, 6000, 60, api.PortConfig_INGRESS, true))
	if _, err := nb.a.Attach(ctx, web, "ns-web1"); err != nil {
		t.Fatal(err)
	}
	// Attached, not serving: the ports exist, with no backend (refused).
	waitTable(t, na, "[tcp/8080->80[] udp/5353->53[] udp/6000->60[]m]")
	nb.a.Serving(web)
	want := "[tcp/8080->80[10.255.0.5] udp/5353->53[10.255.0.5] udp/6000->60[10.255.0.5]m]"
	waitTable(t, na, want)
	waitTable(t, nb, want)
	// Every node programs the other nodes' ingress addresses and the task
	// as peers on the ingress network.
	testutil.EventuallyErr(t, 2*time.Second, 5*time.Millisecond, func() error {
		var got []string
		for _, p := range na.dp.peersOf("ing") {
			got = append(got, p.IP.String()+"@"+p.VTEP.String())
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"10.255.0.3@192.168.0.2", "10.255.0.5@192.168.0.2"}) {
			return fmt.Errorf("peers of na on ing: %v", got)
		}
		return nil
	}, "peers")
	// The task's return path: both nodes; the UDP port kept unmasqueraded.
	waitReturn(t, nb, "ns-web1", "eth1 10.255.0.0/16 nodes=[10.255.0.2@02:42:0a:ff:00:02 10.255.0.3@02:42:0a:ff:00:03] udp=[53]")

	// A third node: every return path learns it.
	nc := newMeshNode(t, tab, "nc", "192.168.0.3")
	nc.a.SetNode(nodeWith("nc", 4))
	waitTable(t, nc, want)
	nb.a.kick() // the fake gossip wakes only its members' OnChange; nb is one
	waitReturn(t, nb, "ns-web1", "eth1 10.255.0.0/16 nodes=[10.255.0.2@02:42:0a:ff:00:02 10.255.0.3@02:42:0a:ff:00:03 10.255.0.4@02:42:0a:ff:00:04] udp=[53]")

	// Draining: out of the mesh at once on its node, soon on the others;
	// the port stays, refused. The flows already open to the draining
	// backend are kept: they finish within the drain delay.
	if err := nb.a.Draining(ctx, web); err != nil {
		t.Fatal(err)
	}
	if got := nb.mesh.table(); got != "[tcp/8080->80[] udp/5353->53[] udp/6000->60[]m]" {
		t.Fatalf("after Draining, nb serves %s", got)
	}
	waitTable(t, na, "[tcp/8080->80[] udp/5353->53[] udp/6000->60[]m]")
	testutil.Consistently(t, 100*time.Millisecond, 10*time.Millisecond, func() bool {
		return na.ev.index("mesh-flush host-na 10.255.0.5") < 0 && nb.ev.index("mesh-flush host-nb 10.255.0.5") < 0
	}, "the flows of a draining backend were flushed: %v %v", na.ev.all(), nb.ev.all())

	// Gone and detached: its flows are flushed on every node, the last port
	// goes, the table is removed, the task's return path removed.
	nb.a.Gone(web)
	waitTable(t, na, "none")
	if na.ev.index("mesh-remove host-na") < 0 {
		t.Fatalf("no Remove: %v", na.ev.all())
	}
	for name, n := range map[string]*meshNode{"na": na, "nb": nb} {
		testutil.Eventually(t, 2*time.Second, 5*time.Millisecond, func() bool {
			return n.ev.index("mesh-flush host-"+name+" 10.255.0.5") >= 0
		}, "no flush of the gone backend on %s: %v", name, n.ev.all())
	}
	if err := nb.a.Detach(ctx, web, "ns-web1"); err != nil {
		t.Fatal(err)
	}
	if got := nb.mesh.ret("ns-web1"); got != "none" {
		t.Fatalf("return path after Detach: %s", got)
	}
	// The ingress network stays for the node's own interface.
	if nb.ev.index("remove-net ing") >= 0 {
		t.Fatalf("the ingress network was removed under the node's interface: %v", nb.ev.all())
	}

	// The node loses its attachment: interface and network go, and the
	// node entry leaves the others' return paths.
	na.a.SetNode(&api.Node{Id: "na"})
	if na.ev.index("detach ing host-na na-ing") < 0 || na.ev.index("remove-net ing") < 0 {
		t.Fatalf("node detachment: %v", na.ev.all())
	}
	if na.ev.index("withdraw ing node:na") < 0 {
		t.Fatalf("node entry not withdrawn: %v", na.ev.all())
	}
}

func TestMeshHostModeLocalOnly(t *testing.T) {
	tab := newTable()
	na, nb := newMeshNode(t, tab, "na", "192.168.0.1"), newMeshNode(t, tab, "nb", "192.168.0.2")
	ctx := context.Background()
	// A task with a host-mode port and no network at all.
	h := &api.Task{Id: "h1", ServiceId: "id-h", Slot: 1, Endpoint: &api.Endpoint{
		Ports: []*api.PortConfig{port(api.PortConfig_TCP, 9000, 80, api.PortConfig_HOST, false)}}}
	if _, err := na.a.Attach(ctx, h, "ns-h1"); err != nil {
		t.Fatal(err)
	}
	na.a.SetHostAddr("h1", netip.MustParseAddr("172.18.0.5"))
	na.a.Serving(h)
	waitTable(t, na, "[tcp/9000->80[172.18.0.5]h]")
	// Not gossiped: the other node serves nothing.
	testutil.Consistently(t, 100*time.Millisecond, 10*time.Millisecond, func() bool { return nb.mesh.table() == "none" },
		"host-mode port served on another node: %s", nb.mesh.table())
	if na.ev.index("dns-add h1") >= 0 || slices.ContainsFunc(na.ev.all(), func(s string) bool { return strings.HasPrefix(s, "vip-apply ns-h1") }) {
		t.Fatalf("a task with no network got DNS or a VIP table: %v", na.ev.all())
	}
	// Draining: the port is no longer served here (host mode: not refused).
	if err := na.a.Draining(ctx, h); err != nil {
		t.Fatal(err)
	}
	if got := na.mesh.table(); got != "none" {
		t.Fatalf("after Draining: %s", got)
	}
	if na.ev.index("mesh-flush host-na 172.18.0.5") >= 0 {
		t.Fatalf("the flows of a draining task were flushed: %v", na.ev.all())
	}
	// Detached (stopped): its flows go.
	if err := na.a.Detach(ctx, h, "ns-h1"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, 5*time.Millisecond, func() bool {
		return na.ev.index("mesh-flush host-na 172.18.0.5") >= 0
	}, "no flush after Detach: %v", na.ev.all())
}

func TestMeshNeedsNodeAttachment(t *testing.T) {
	// Ingress ports need the node's own interface on the ingress network
	// (the route to the backends): none before SetNode.
	tab := newTable()
	na := newMeshNode(t, tab, "na", "192.168.0.1")
	web := pubTask("web1", "web", 5, port(api.PortConfig_TCP, 8080, 80, api.PortConfig_INGRESS, false))
	if _, err := na.a.Attach(context.Background(), web, "ns-web1"); err != nil {
		t.Fatal(err)
	}
	na.a.Serving(web)
	testutil.Consistently(t, 100*time.Millisecond, 10*time.Millisecond, func() bool { return na.mesh.table() == "none" },
		"served without a node attachment: %s", na.mesh.table())
	na.a.SetNode(nodeWith("na", 2))
	waitTable(t, na, "[tcp/8080->80[10.255.0.5]]")
	waitReturn(t, na, "ns-web1", "eth1 10.255.0.0/16 nodes=[10.255.0.2@02:42:0a:ff:00:02] udp=[]")
}

// `service update --publish-add` keeps the tasks: the new endpoint reaches
// a serving task through UpdateEndpoint and every node serves the new port;
// a removed port goes the same way.
func TestMeshUpdateEndpoint(t *testing.T) {
	tab := newTable()
	na, nb := newMeshNode(t, tab, "na", "192.168.0.1"), newMeshNode(t, tab, "nb", "192.168.0.2")
	na.a.SetNode(nodeWith("na", 2))
	nb.a.SetNode(nodeWith("nb", 3))
	web := pubTask("web1", "web", 5, port(api.PortConfig_TCP, 8080, 80, api.PortConfig_INGRESS, false))
	if _, err := nb.a.Attach(context.Background(), web, "ns-web1"); err != nil {
		t.Fatal(err)
	}
	nb.a.Serving(web)
	waitTable(t, na, "[tcp/8080->80[10.255.0.5]]")
	added := proto.Clone(web).(*api.Task)
	added.Endpoint.Ports = append(added.Endpoint.Ports, port(api.PortConfig_TCP, 8082, 80, api.PortConfig_INGRESS, false))
	nb.a.UpdateEndpoint(added)
	waitTable(t, na, "[tcp/8080->80[10.255.0.5] tcp/8082->80[10.255.0.5]]")
	waitTable(t, nb, "[tcp/8080->80[10.255.0.5] tcp/8082->80[10.255.0.5]]")
	nb.a.UpdateEndpoint(web)
	waitTable(t, na, "[tcp/8080->80[10.255.0.5]]")
	// An unknown task is ignored.
	nb.a.UpdateEndpoint(pubTask("nope", "x", 9))
}

// A removed service's task (worker: Task.service_removed) takes its ports
// out of the mesh at once on every node, before it drains: no port kept
// refused, and with no port left the table goes.
func TestMeshServiceRemoved(t *testing.T) {
	tab := newTable()
	na, nb := newMeshNode(t, tab, "na", "192.168.0.1"), newMeshNode(t, tab, "nb", "192.168.0.2")
	na.a.SetNode(nodeWith("na", 2))
	nb.a.SetNode(nodeWith("nb", 3))
	ctx := context.Background()
	web := pubTask("web1", "web", 5, port(api.PortConfig_TCP, 8080, 80, api.PortConfig_INGRESS, false))
	if _, err := nb.a.Attach(ctx, web, "ns-web1"); err != nil {
		t.Fatal(err)
	}
	nb.a.Serving(web)
	waitTable(t, na, "[tcp/8080->80[10.255.0.5]]")
	nb.a.ServiceRemoved(web)
	if got := nb.mesh.table(); got != "none" {
		t.Fatalf("after ServiceRemoved, nb serves %s", got)
	}
	waitTable(t, na, "none")
	// Draining afterwards brings no port back.
	if err := nb.a.Draining(ctx, web); err != nil {
		t.Fatal(err)
	}
	nb.a.kick()
	waitTable(t, nb, "none")
	if got := na.mesh.table(); got != "none" {
		t.Fatalf("after Draining, na serves %s", got)
	}
}

// A restarted agent adopts the node's ingress interface and the table in
// place: the ingress network is kept although no live task uses it, the
// interface is re-attached (idempotent) before any session message, and
// neither Remove nor an Apply of fewer ports happens before the view is
// whole; then the table follows the gossip again.
func TestMeshRestartAdopts(t *testing.T) {
	tab := newTable()
	dir := t.TempDir()
	na := restartMeshNode(t, tab, "na", "192.168.0.1", dir, nil, nil)
	na.a.Session(&api.SessionMessage{NetworkKey: []byte("k")})
	nb := newMeshNode(t, tab, "nb", "192.168.0.2")
	na.a.SetNode(nodeWith("na", 2))
	nb.a.SetNode(nodeWith("nb", 3))
	web := pubTask("web1", "web", 5, port(api.PortConfig_TCP, 8080, 80, api.PortConfig_INGRESS, false))
	if _, err := nb.a.Attach(context.Background(), web, "ns-web1"); err != nil {
		t.Fatal(err)
	}
	nb.a.Serving(web)
	want := "[tcp/8080->80[10.255.0.5]]"
	waitTable(t, na, want)

	if err := na.a.Close(); err != nil {
		t.Fatal(err)
	}
	na2 := restartMeshNode(t, tab, "na", "192.168.0.1", dir, na, []string{})
	if na2.ev.index("remove-net ing") >= 0 {
		t.Fatalf("restart removed the ingress network under the node's interface: %v", na2.ev.all())
	}
	if na2.ev.index("attach ing host-na na-ing 10.255.0.2/16 02:42:0a:ff:00:02") < 0 {
		t.Fatalf("restart did not re-attach the node's interface at Start: %v", na2.ev.all())
	}
	na2.a.kick()
	na2.a.program(true)
	for _, e := range na2.ev.all() {
		if strings.HasPrefix(e, "mesh-remove") || strings.HasPrefix(e, "mesh-flush") || strings.HasPrefix(e, "mesh-apply") && !strings.Contains(e, want) {
			t.Fatalf("before the view is whole the restarted agent did %q: %v", e, na2.ev.all())
		}
	}
	if got := na2.mesh.table(); got != want {
		t.Fatalf("table after restart: %s", got)
	}
	// Once the gossip runs (no seeds here) the view is whole when it holds
	// every adopted backend, or settleGrace later: a backend that left
	// meanwhile is kept that long, then the view is followed again.
	nb.a.Gone(web) // before the gossip runs: a view holding it would be whole at once
	na2.a.Session(&api.SessionMessage{NetworkKey: []byte("k")})
	na2.a.kick()
	na2.a.program(false)
	if got := na2.mesh.table(); got != want {
		t.Fatalf("table right after the gossip joined, the adopted backend gone from the view: %s, want it kept for settleGrace", got)
	}
	na2.clk.Advance(settleGrace)
	na2.a.kick()
	waitTable(t, na2, "none")
}

// A restarted node whose gossip has joined but whose view lacks the peers'
// entries yet keeps the adopted backends: they are not flushed, and the
// view is whole as soon as it holds them again.
func TestMeshRestartWaitsForPeersEntries(t *testing.T) {
	tab := newTable()
	dir := t.TempDir()
	na := restartMeshNode(t, tab, "na", "192.168.0.1", dir, nil, nil)
	na.a.Session(&api.SessionMessage{NetworkKey: []byte("k")})
	nb := newMeshNode(t, tab, "nb", "192.168.0.2")
	na.a.SetNode(nodeWith("na", 2))
	nb.a.SetNode(nodeWith("nb", 3))
	web := pubTask("web1", "web", 5, port(api.PortConfig_TCP, 8080, 80, api.PortConfig_INGRESS, false))
	if _, err := nb.a.Attach(context.Background(), web, "ns-web1"); err != nil {
		t.Fatal(err)
	}
	nb.a.Serving(web)
	want := "[tcp/8080->80[10.255.0.5]]"
	waitTable(t, na, want)
	if err := na.a.Close(); err != nil {
		t.Fatal(err)
	}
	// nb's entry is missing from the table the restarted node sees at first.
	tab.mu.Lock()
	saved := tab.entries["ing"]["nb/web1"]
	delete(tab.entries["ing"], "nb/web1")
	tab.mu.Unlock()
	na2 := restartMeshNode(t, tab, "na", "192.168.0.1", dir, na, []string{})
	na2.a.Session(&api.SessionMessage{NetworkKey: []byte("k")})
	na2.a.program(false)
	if got := na2.mesh.table(); got != want {
		t.Fatalf("gossip joined, the peer's entry not in yet: table %s, want %s kept", got, want)
	}
	tab.mu.Lock()
	tab.entries["ing"]["nb/web1"] = saved
	tab.mu.Unlock()
	na2.a.kick()
	na2.a.program(false)
	if !na2.a.settled {
		t.Fatal("the view holds every adopted backend again, but is not whole")
	}
	if got := na2.mesh.table(); got != want {
		t.Fatalf("table once whole: %s", got)
	}
	if i := na2.ev.index("mesh-flush host-na 10.255.0.5"); i >= 0 {
		t.Fatalf("the live remote backend's flows were flushed: %v", na2.ev.all())
	}
}

// The ingress network gets no VIP table entries and no names: a task
// publishing a port has only its user networks' VIPs, as in Docker.
func TestMeshNoVIPsOnIngress(t *testing.T) {
	tab := newTable()
	nb := newMeshNode(t, tab, "nb", "192.168.0.2")
	nb.a.SetNode(nodeWith("nb", 3))
	web := pubTask("web1", "web", 5, port(api.PortConfig_TCP, 8080, 80, api.PortConfig_INGRESS, false))
	web.Endpoint.VirtualIps = append(web.Endpoint.VirtualIps, &api.Endpoint_VirtualIP{NetworkId: "ing", Addr: "10.255.0.250/16"})
	if _, err := nb.a.Attach(context.Background(), web, "ns-web1"); err != nil {
		t.Fatal(err)
	}
	nb.a.Serving(web)
	waitTable(t, nb, "[tcp/8080->80[10.255.0.5]]")
	testutil.EventuallyErr(t, 2*time.Second, 5*time.Millisecond, func() error {
		got := nb.vip.table("ns-web1")
		if !strings.Contains(got, "10.0.") {
			return fmt.Errorf("VIP table of ns-web1 = %s, want web's VIP on netA", got)
		}
		if strings.Contains(got, "10.255.") {
			return fmt.Errorf("VIP table of ns-web1 = %s: it has the ingress network's VIP", got)
		}
		return nil
	}, "VIP table")
	if addrs, _ := nb.a.Resolve("web1", "web"); slices.ContainsFunc(addrs, func(a netip.Addr) bool { return strings.HasPrefix(a.String(), "10.255.") }) {
		t.Fatalf("web resolves to an ingress address in its own task: %v", addrs)
	}
}

// The node's own entries come from what it publishes: the gossip's copy
// lagging (a restarted node publishes its tasks one by one) does not take
// a local task out of the mesh or flush its flows.
func TestMeshOwnEntriesNotFromGossip(t *testing.T) {
	tab := newTable()
	nb := newMeshNode(t, tab, "nb", "192.168.0.2")
	nb.a.SetNode(nodeWith("nb", 3))
	web := pubTask("web1", "web", 5, port(api.PortConfig_TCP, 8080, 80, api.PortConfig_INGRESS, false))
	if _, err := nb.a.Attach(context.Background(), web, "ns-web1"); err != nil {
		t.Fatal(err)
	}
	nb.a.Serving(web)
	waitTable(t, nb, "[tcp/8080->80[10.255.0.5]]")
	tab.mu.Lock()
	delete(tab.entries["ing"], "nb/web1")
	tab.mu.Unlock()
	for range 20 {
		nb.a.kick()
		time.Sleep(5 * time.Millisecond)
		if got := nb.mesh.table(); got != "[tcp/8080->80[10.255.0.5]]" {
			t.Fatalf("with the gossip's copy of its own entry missing, nb serves %s", got)
		}
	}
	if nb.ev.index("mesh-flush host-nb 10.255.0.5") >= 0 {
		t.Fatalf("the local backend's flows were flushed: %v", nb.ev.all())
	}
}
