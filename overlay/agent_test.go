package overlay

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
)

// node is one Agent with its fakes.
type node struct {
	a   *Agent
	dp  *fakeDP
	dns *fakeDNS
	vip *fakeVIP
	clk *clockwork.FakeClock
	ev  *events
}

func newNode(t *testing.T, tab *table, id, vtep string, opts ...func(*Config)) *node {
	t.Helper()
	ev := &events{}
	n := &node{ev: ev, clk: clockwork.NewFakeClock(),
		dp:  &fakeDP{ev: ev, nets: map[string]Network{}, peers: map[string][]Peer{}},
		dns: &fakeDNS{ev: ev, tasks: map[string]string{}},
		vip: &fakeVIP{ev: ev, tables: map[string][]Service{}}}
	cfg := Config{
		NodeID: id, DataPathAddr: netip.MustParseAddr(vtep), StateDir: t.TempDir(),
		Clock: n.clk, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		NewDatapath: func(c DatapathConfig) (Datapath, error) { n.dp.port = c.Port; return n.dp, nil },
		NewGossip:   tab.newGossip(ev),
		NewDNS:      func(DNSConfig) (DNS, error) { return n.dns, nil },
		VIP:         n.vip,
	}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.netnsExists = func(string) bool { return true } // the fakes' paths are names only
	if err := a.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	n.a = a
	return n
}

// task builds an allocated task of service svc on the given networks
// ("netA" gets 10.0.1.0/24, "netB" 10.0.2.0/24), host number ip.
func task(id, svc string, slot uint64, ip int, dnsrr bool, nets ...string) *api.Task {
	t := &api.Task{Id: id, ServiceId: "id-" + svc, Slot: slot, NodeId: "n",
		ServiceAnnotations: &api.Annotations{Name: svc},
		Endpoint:           &api.Endpoint{Spec: &api.EndpointSpec{}}}
	if dnsrr {
		t.Endpoint.Spec.Mode = api.EndpointSpec_DNSRR
	}
	for _, n := range nets {
		third := map[string]int{"netA": 1, "netB": 2}[n]
		t.Networks = append(t.Networks, &api.NetworkAttachment{
			NetworkId: n, NetworkName: n, Vni: uint32(4096 + third),
			Addresses: []string{fmt.Sprintf("10.0.%d.%d/24", third, ip)},
			Mac:       fmt.Sprintf("02:42:0a:00:%02x:%02x", third, ip),
			Subnet:    fmt.Sprintf("10.0.%d.0/24", third), Gateway: fmt.Sprintf("10.0.%d.1", third),
			Aliases: []string{svc + "-alias"},
		})
		if !dnsrr {
			t.Endpoint.VirtualIps = append(t.Endpoint.VirtualIps, &api.Endpoint_VirtualIP{
				NetworkId: n, Addr: fmt.Sprintf("10.0.%d.%d/24", third, vipHost(svc))})
		}
	}
	return t
}

// vipHost is the host number of a service's VIP: 200 + a hash of its name
// (web 222, cli 216, rr 206, other 228).
func vipHost(svc string) int {
	h := 0
	for _, c := range svc {
		h += int(c)
	}
	return 200 + h%37
}

func addrs(s ...string) []netip.Addr {
	out := []netip.Addr{}
	for _, x := range s {
		out = append(out, netip.MustParseAddr(x))
	}
	return out
}

func resolve(t *testing.T, a *Agent, taskID, name string) []netip.Addr {
	t.Helper()
	got, _ := a.Resolve(taskID, name)
	if got == nil {
		got = []netip.Addr{}
	}
	return got
}

func wantResolve(t *testing.T, a *Agent, taskID, name string, want ...string) {
	t.Helper()
	if got := resolve(t, a, taskID, name); !slices.Equal(got, addrs(want...)) {
		t.Errorf("Resolve(%s, %s) = %v, want %v", taskID, name, got, want)
	}
}

func session(n *node, key string, down []string, seeds ...string) {
	n.a.Session(&api.SessionMessage{NetworkKey: []byte(key), DownNodes: down, GossipSeeds: seeds})
}

func TestAttachOrderAndAddresses(t *testing.T) {
	n := newNode(t, newTable(), "n1", "192.0.2.1")
	tk := task("t1", "web", 1, 5, false, "netA", "netB")
	got, err := n.a.Attach(context.Background(), tk, "/ns/t1")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.1.5/24"), netip.MustParsePrefix("10.0.2.5/24")}
	if !slices.Equal(got, want) || !slices.Equal(n.a.Addresses("t1"), want) {
		t.Fatalf("addresses %v / %v, want %v", got, n.a.Addresses("t1"), want)
	}
	ev := n.ev.all()
	order := []string{"ensure netA vni 4097", "attach netA /ns/t1 eth1 10.0.1.5/24 02:42:0a:00:01:05",
		"ensure netB vni 4098", "attach netB /ns/t1 eth2 10.0.2.5/24 02:42:0a:00:02:05", "dns-add t1"}
	last := -1
	for _, o := range order {
		i := slices.Index(ev, o)
		if i <= last {
			t.Fatalf("event %q missing or out of order in %v", o, ev)
		}
		last = i
	}
	// The service's own VIPs are programmed at once, with no backend yet
	// (an immediate reset rather than a timeout).
	if got := n.vip.table("/ns/t1"); got != "[10.0.1.222=[] 10.0.2.222=[]]" {
		t.Fatalf("vip table %s", got)
	}
	if _, err := n.a.Attach(context.Background(), &api.Task{Id: "bad", Networks: []*api.NetworkAttachment{{NetworkId: "x"}}}, "/ns/bad"); err == nil || !strings.Contains(err.Error(), "no address") {
		t.Fatalf("attach of an unallocated task: %v", err)
	}
}

func TestServingPublishesAndResolves(t *testing.T) {
	tab := newTable()
	n1 := newNode(t, tab, "n1", "192.0.2.1")
	n2 := newNode(t, tab, "n2", "192.0.2.2")
	session(n1, "k", nil)
	session(n2, "k", nil)
	ctx := context.Background()
	web1 := task("w1", "web", 1, 5, false, "netA")
	web2 := task("w2", "web", 2, 6, false, "netA")
	cli := task("c1", "cli", 1, 9, false, "netA")
	other := task("o1", "other", 1, 9, false, "netB")
	rr := task("r1", "rr", 1, 7, true, "netA")
	mustAttach(t, n1, web1)
	mustAttach(t, n2, web2)
	mustAttach(t, n2, cli)
	mustAttach(t, n2, other)
	mustAttach(t, n1, rr)
	// Not serving yet: no task address resolves (the VIP does, as the
	// service exists, and resets), no VIP backend, but the other node has
	// it as a peer already (a starting task gets its replies).
	wantResolve(t, n2.a, "c1", "tasks.web")
	wantResolve(t, n2.a, "c1", "web.1.w1")
	wantResolve(t, n2.a, "c1", "web", "10.0.1.222")
	n2.a.program(false)
	if p := n2.dp.peersOf("netA"); !slices.ContainsFunc(p, func(p Peer) bool { return p.IP == netip.MustParseAddr("10.0.1.5") }) {
		t.Fatalf("a starting task is no peer: %v", p)
	}
	if got := n2.vip.table("/ns/c1"); strings.Contains(got, "10.0.1.5") {
		t.Fatalf("a starting task is a VIP backend: %s", got)
	}
	n1.a.Serving(web1)
	n2.a.Serving(web2)
	n1.a.Serving(rr)

	wantResolve(t, n2.a, "c1", "web", "10.0.1.222")
	wantResolve(t, n2.a, "c1", "WEB.", "10.0.1.222")
	wantResolve(t, n2.a, "c1", "web-alias", "10.0.1.222")
	wantResolve(t, n2.a, "c1", "tasks.web", "10.0.1.5", "10.0.1.6")
	wantResolve(t, n2.a, "c1", "web.1.w1", "10.0.1.5")
	wantResolve(t, n2.a, "c1", "rr", "10.0.1.7")
	wantResolve(t, n2.a, "c1", "tasks.rr", "10.0.1.7")
	if _, known := n2.a.Resolve("c1", "example.com"); known {
		t.Error("an outside name is known")
	}
	// Scoped to the asking task's networks: o1 is on netB only.
	wantResolve(t, n2.a, "o1", "web")
	wantResolve(t, n2.a, "o1", "tasks.web")
	// An unknown task asks nothing.
	wantResolve(t, n2.a, "nope", "web")

	// Peers: n2's netA holds n1's tasks only, with n1's VTEP.
	n2.a.program(false)
	peers := n2.dp.peersOf("netA")
	if len(peers) != 2 || peers[0].VTEP != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("n2 peers on netA: %v", peers)
	}
	// VIPs: the client's table has web's VIP with both backends.
	if got := n2.vip.table(cli.Id); got != "" {
		_ = got
	}
	if got := n2.vip.table("/ns/c1"); !strings.Contains(got, "10.0.1.222=[10.0.1.5 10.0.1.6]") {
		t.Fatalf("client vip table %s", got)
	}
	_ = ctx
}

func mustAttach(t *testing.T, n *node, tk *api.Task) {
	t.Helper()
	if _, err := n.a.Attach(context.Background(), tk, "/ns/"+tk.Id); err != nil {
		t.Fatal(err)
	}
}

func TestDrainingLeavesBeforeStop(t *testing.T) {
	tab := newTable()
	n := newNode(t, tab, "n1", "192.0.2.1")
	session(n, "k", nil)
	web := task("w1", "web", 1, 5, false, "netA")
	cli := task("c1", "cli", 1, 9, false, "netA")
	mustAttach(t, n, web)
	mustAttach(t, n, cli)
	n.a.Serving(web)
	n.a.program(false)
	if got := n.vip.table("/ns/c1"); !strings.Contains(got, "10.0.1.222=[10.0.1.5]") {
		t.Fatalf("before drain: %s", got)
	}
	done := make(chan error, 1)
	go func() { done <- n.a.Draining(context.Background(), web) }()
	// Before the delay has passed, the task is already out of DNS and of
	// the local VIP, but Draining has not returned (no stop signal yet).
	testutil.Eventually(t, 2*time.Second, 5*time.Millisecond, func() bool {
		return strings.Contains(n.vip.table("/ns/c1"), "10.0.1.222=[]")
	}, "the draining task is still a VIP backend: %s", n.vip.table("/ns/c1"))
	wantResolve(t, n.a, "c1", "tasks.web")
	wantResolve(t, n.a, "c1", "web", "10.0.1.222") // the VIP stays
	select {
	case err := <-done:
		t.Fatalf("Draining returned before the drain delay: %v", err)
	default:
	}
	// Three waiters: the resync and member-check tickers, the drain wait.
	if err := n.clk.BlockUntilContext(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	n.clk.Advance(DefaultDrainDelay)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Peers keep the draining entry (open flows finish); Detach withdraws.
	if i := n.ev.index("publish netA w1 draining=true"); i < 0 {
		t.Fatalf("no draining publish in %v", n.ev.all())
	}
	if err := n.a.Detach(context.Background(), web, "/ns/w1"); err != nil {
		t.Fatal(err)
	}
	ev := n.ev.all()
	for _, want := range []string{"withdraw netA w1", "vip-remove /ns/w1", "dns-remove w1", "detach netA /ns/w1 eth1"} {
		if !slices.Contains(ev, want) {
			t.Errorf("Detach: no %q in %v", want, ev)
		}
	}
	if slices.Contains(ev, "remove-net netA") {
		t.Error("netA removed while c1 still uses it")
	}
	if err := n.a.Detach(context.Background(), cli, "/ns/c1"); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(n.ev.all(), "remove-net netA") {
		t.Error("netA not removed with its last task")
	}

	// A draining wait is bounded by its context.
	mustAttach(t, n, web)
	n.a.Serving(web)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.a.Draining(ctx, web); err == nil {
		t.Error("Draining ignored its context")
	}
}

// remoteBackend: web's task w1 (10.0.1.5) serving on n1, in the VIP
// (10.0.1.222) of cli's task c1 on n2; n1 is made with opts.
func remoteBackend(t *testing.T, opts ...func(*Config)) (n1, n2 *node, web *api.Task) {
	t.Helper()
	tab := newTable()
	n1 = newNode(t, tab, "n1", "192.0.2.1", opts...)
	n2 = newNode(t, tab, "n2", "192.0.2.2")
	session(n1, "k", nil)
	session(n2, "k", nil)
	web = task("w1", "web", 1, 5, false, "netA")
	mustAttach(t, n1, web)
	mustAttach(t, n2, task("c1", "cli", 1, 9, false, "netA"))
	n1.a.Serving(web)
	testutil.Eventually(t, 2*time.Second, 5*time.Millisecond, func() bool {
		return strings.Contains(n2.vip.table("/ns/c1"), "10.0.1.222=[10.0.1.5]")
	}, "the remote backend never reached the client: %s", n2.vip.table("/ns/c1"))
	return n1, n2, web
}

func TestGoneWithdrawsAndFlushes(t *testing.T) {
	n1, n2, web := remoteBackend(t)
	n1.a.Gone(web)
	wantResolve(t, n2.a, "c1", "tasks.web")
	testutil.Eventually(t, 2*time.Second, 5*time.Millisecond, func() bool {
		return n2.ev.index("flush /ns/c1 10.0.1.5") >= 0
	}, "no conntrack flush of the dead backend: %v", n2.ev.all())
	if !strings.Contains(n2.vip.table("/ns/c1"), "10.0.1.222=[]") {
		t.Fatalf("dead backend kept: %s", n2.vip.table("/ns/c1"))
	}
	if len(n2.dp.peersOf("netA")) != 0 {
		t.Fatalf("dead task kept as a peer: %v", n2.dp.peersOf("netA"))
	}
}

// TestDrainingKeepsFlowsUntilGone: a backend leaving a VIP because its task
// drains (a planned stop) keeps its open flows, which finish within the
// drain delay (a flush would cut them: the next packet would be NATed
// afresh, to another backend that resets it); its flows are flushed once it
// is gone.
func TestDrainingKeepsFlowsUntilGone(t *testing.T) {
	n1, n2, web := remoteBackend(t, func(c *Config) { c.DrainDelay = -1 })
	if err := n1.a.Draining(context.Background(), web); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, 5*time.Millisecond, func() bool {
		return strings.Contains(n2.vip.table("/ns/c1"), "10.0.1.222=[]")
	}, "the draining backend stayed in the VIP: %s", n2.vip.table("/ns/c1"))
	n2.a.program(true) // a resync meanwhile changes nothing
	testutil.Consistently(t, 100*time.Millisecond, 10*time.Millisecond, func() bool {
		return n2.ev.index("flush /ns/c1 10.0.1.5") < 0
	}, "the flows of a draining backend were flushed: %v", n2.ev.all())
	n1.a.Gone(web)
	testutil.Eventually(t, 2*time.Second, 5*time.Millisecond, func() bool {
		return n2.ev.index("flush /ns/c1 10.0.1.5") >= 0
	}, "no conntrack flush of the gone backend: %v", n2.ev.all())
}

func TestSessionKeyDownNodesSeeds(t *testing.T) {
	tab := newTable()
	n1 := newNode(t, tab, "n1", "192.0.2.1")
	n2 := newNode(t, tab, "n2", "192.0.2.2")
	session(n1, "k1", nil, "192.0.2.1", "192.0.2.2")
	session(n2, "k1", nil)
	if got := n1.ev.all(); !slices.Contains(got, "gossip-start n1 key 6b31") || !slices.Contains(got, "join [192.0.2.2:7946]") {
		t.Fatalf("first session: %v", got)
	}
	web := task("w1", "web", 1, 5, false, "netA")
	cli := task("c1", "cli", 1, 9, false, "netB", "netA")
	mustAttach(t, n1, web)
	mustAttach(t, n2, cli)
	n1.a.Serving(web)
	wantResolve(t, n2.a, "c1", "tasks.web", "10.0.1.5")

	// The same key and seeds: nothing restarts, nobody rejoins.
	before := len(n1.ev.all())
	session(n1, "k1", nil, "192.0.2.2", "192.0.2.1")
	for _, e := range n1.ev.all()[before:] {
		if strings.HasPrefix(e, "gossip-") || strings.HasPrefix(e, "join") {
			t.Fatalf("unchanged session restarted or rejoined: %s", e)
		}
	}
	// A new key restarts the gossip and republishes the node's entries.
	session(n1, "k2", nil, "192.0.2.2")
	ev := n1.ev.all()[before:]
	i, j, k := slices.Index(ev, "gossip-close n1"), slices.Index(ev, "gossip-start n1 key 6b32"), slices.Index(ev, "publish netA w1 draining=false")
	if i < 0 || j < i || k < j {
		t.Fatalf("key change: %v", ev)
	}
	// n1 is down for the managers: n2 drops and ignores its entries at once.
	session(n2, "", []string{"n1"})
	if !slices.Contains(n2.ev.all(), "drop n1") {
		t.Fatalf("no DropNode: %v", n2.ev.all())
	}
	wantResolve(t, n2.a, "c1", "tasks.web")
	wantResolve(t, n2.a, "c1", "web")
	n2.a.program(false)
	if len(n2.dp.peersOf("netA")) != 0 {
		t.Fatalf("peers of a down node kept: %v", n2.dp.peersOf("netA"))
	}
	// Back up: its entries count again.
	session(n2, "", nil)
	if !slices.Contains(n2.ev.all(), "restore n1") {
		t.Fatalf("no RestoreNode: %v", n2.ev.all())
	}
	wantResolve(t, n2.a, "c1", "tasks.web", "10.0.1.5")
	// A data path port from the cluster reaches the datapath.
	n2.a.Session(&api.SessionMessage{DataPathPort: 4790})
	if n2.dp.port != 4790 {
		t.Fatalf("data path port %d", n2.dp.port)
	}
}

// Without a network key from the managers, the gossip waits for one.
func TestNoGossipWithoutKey(t *testing.T) {
	n := newNode(t, newTable(), "n1", "192.0.2.1")
	session(n, "", nil, "192.0.2.2")
	for _, e := range n.ev.all() {
		if strings.HasPrefix(e, "gossip-start") {
			t.Fatalf("gossip started without a key: %v", n.ev.all())
		}
	}
	session(n, "k", nil, "192.0.2.2")
	if !slices.Contains(n.ev.all(), "join [192.0.2.2:7946]") {
		t.Fatalf("no join once the key came: %v", n.ev.all())
	}
}

func TestResyncReappliesPeriodically(t *testing.T) {
	n := newNode(t, newTable(), "n1", "192.0.2.1")
	session(n, "k", nil)
	mustAttach(t, n, task("c1", "cli", 1, 9, false, "netA"))
	n.a.program(false)
	c := n.vip.count()
	n.a.program(false)
	if n.vip.count() != c {
		t.Fatal("an unchanged table was reapplied outside a resync")
	}
	// Someone flushed the kernel state behind our back: the periodic
	// resync puts it back.
	n.vip.Remove("/ns/c1")
	testutil.EventuallyClock(t, n.clk, time.Second, 10*time.Second, 20*time.Millisecond, func() bool {
		return n.vip.table("/ns/c1") != "[]" && n.vip.count() > c
	}, "no resync after %s", DefaultResyncPeriod)
}

// A resync reapplies resyncTasks tasks' tables, in turn: every task is
// reapplied within ceil(tasks/resyncTasks) resyncs, and no resync holds
// the programming loop for all of a busy node's tasks.
func TestResyncTakesTasksInTurn(t *testing.T) {
	n := newNode(t, newTable(), "n1", "192.0.2.1")
	session(n, "k", nil)
	const tasks = 2*resyncTasks + 5
	for i := range tasks {
		mustAttach(t, n, task(fmt.Sprintf("c%02d", i), "cli", uint64(i+1), 10+i, false, "netA"))
	}
	n.a.program(false)
	vipApplies := func() map[string]int {
		out := map[string]int{}
		for _, e := range n.ev.all() {
			if f := strings.Fields(e); len(f) >= 2 && f[0] == "vip-apply" {
				out[f[1]]++
			}
		}
		return out
	}
	base := vipApplies()
	if len(base) != tasks {
		t.Fatalf("%d tasks programmed, want %d", len(base), tasks)
	}
	for round := 1; round <= 3; round++ {
		n.a.program(true)
		got := vipApplies()
		again, total := 0, 0
		for ns, c := range got {
			total += c - base[ns]
			if c > base[ns] {
				again++
			}
		}
		if want := min(round*resyncTasks, tasks); again != want || total != round*resyncTasks {
			t.Fatalf("after %d resyncs: %d tasks reapplied (%d applies), want %d (%d)", round, again, total, want, round*resyncTasks)
		}
	}
}

func TestStartRemovesStaleNetworks(t *testing.T) {
	tab := newTable()
	ev := &events{}
	dp := &fakeDP{ev: ev, nets: map[string]Network{"netA": {}, "netB": {}, "netC": {}}, peers: map[string][]Peer{}}
	dir := t.TempDir()
	mk := func() *Agent {
		a, err := New(Config{NodeID: "n1", DataPathAddr: netip.MustParseAddr("192.0.2.1"), StateDir: dir,
			Clock: clockwork.NewFakeClock(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			NewDatapath: func(DatapathConfig) (Datapath, error) { return dp, nil }, NewGossip: tab.newGossip(ev),
			NewDNS: func(DNSConfig) (DNS, error) { return &fakeDNS{ev: ev, tasks: map[string]string{}}, nil },
			VIP:    &fakeVIP{ev: ev, tables: map[string][]Service{}}})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := mk()
	if err := a.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Attach(context.Background(), task("live", "web", 1, 5, false, "netA"), "/ns/live"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Attach(context.Background(), task("dead", "web", 2, 6, false, "netB"), "/ns/dead"); err != nil {
		t.Fatal(err)
	}
	_ = a.Close()
	// Restart: only "live" still runs.
	b := mk()
	defer b.Close()
	if err := b.Start(context.Background(), []string{"live"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := dp.Networks(); !slices.Equal(got, []string{"netA"}) {
		t.Fatalf("networks after adoption: %v", got)
	}
	if err := b.Start(context.Background(), nil); err == nil {
		t.Fatal("a second Start was accepted")
	}
	// Another task of netA leaves before "live" is re-attached: its record
	// keeps netA.
	if err := b.Detach(context.Background(), task("other", "web", 3, 7, false, "netA"), "/ns/other"); err != nil {
		t.Fatal(err)
	}
	if got, _ := dp.Networks(); !slices.Equal(got, []string{"netA"}) {
		t.Fatalf("networks after a detach: %v", got)
	}
	if err := b.Detach(context.Background(), task("live", "web", 1, 5, false, "netA"), "/ns/live"); err != nil {
		t.Fatal(err)
	}
	if got, _ := dp.Networks(); len(got) != 0 {
		t.Fatalf("networks after the last task: %v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{}
	err := c.validate()
	if err == nil || !strings.Contains(err.Error(), "NodeID") || !strings.Contains(err.Error(), "data path address") {
		t.Fatalf("empty config: %v", err)
	}
	c = Config{NodeID: "n", DataPathAddr: netip.MustParseAddr("192.0.2.1"), StateDir: "x"}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if c.DataPathPort != 4789 || c.GossipPort != 7946 || c.DrainDelay != time.Second {
		t.Fatalf("defaults: %+v", c)
	}
}

// A service on two of a task's networks has a VIP on each: the task's VIP
// table holds both, under IDs that differ (ingress/vip refuses an ID twice;
// the lab found such a task left with no VIPs at all).
func TestServiceOnTwoNetworksHasTwoVIPs(t *testing.T) {
	tab := newTable()
	n1 := newNode(t, tab, "n1", "192.0.2.1")
	session(n1, "k", nil)
	web := task("w1", "web", 1, 5, false, "netA", "netB")
	cli := task("c1", "cli", 1, 9, false, "netA", "netB")
	mustAttach(t, n1, web)
	mustAttach(t, n1, cli)
	n1.a.Serving(web)
	n1.a.Serving(cli)
	n1.a.program(false)
	n1.vip.mu.Lock()
	svcs := slices.Clone(n1.vip.tables["/ns/c1"])
	n1.vip.mu.Unlock()
	ids := map[string]bool{}
	var webVIPs []string
	for _, s := range svcs {
		if ids[s.ID] {
			t.Fatalf("ID %s twice in the VIP table %v", s.ID, svcs)
		}
		ids[s.ID] = true
		if len(s.ID) > 16 {
			t.Errorf("ID %q longer than the 16 characters ingress/vip keeps", s.ID)
		}
		if strings.HasPrefix(s.ID, "id-web") {
			webVIPs = append(webVIPs, fmt.Sprintf("%s=%v", s.VIP, s.Backends))
		}
	}
	want := []string{"10.0.1.222=[10.0.1.5]", "10.0.2.222=[10.0.2.5]"}
	if !slices.Equal(webVIPs, want) {
		t.Fatalf("web's VIPs in the client's table: %v, want %v (table %s)", webVIPs, want, fmtServices(svcs))
	}
}

// A node cut off from the other members (a long partition: memberlist
// stops gossiping to the dead after 30 s) rejoins its seeds at the next
// resync, without waiting for a session message; a node that sees all its
// seeds does not.
func TestRejoinWhenMembersAreMissing(t *testing.T) {
	tab := newTable()
	var peersBack atomic.Int32
	n1 := newNode(t, tab, "n1", "192.0.2.1", func(c *Config) { c.OnPeersBack = func() { peersBack.Add(1) } })
	n2 := newNode(t, tab, "n2", "192.0.2.2")
	session(n2, "k", nil)
	session(n1, "k", nil, "192.0.2.2")
	joins := func() int {
		c := 0
		for _, e := range n1.ev.all() {
			if strings.HasPrefix(e, "join ") {
				c++
			}
		}
		return c
	}
	first := joins()
	if first != 1 {
		t.Fatalf("joins after the first session: %d, want 1", first)
	}
	for i := 0; i < 3; i++ { // both members alive: no rejoin
		n1.clk.Advance(memberCheckPeriod)
	}
	time.Sleep(50 * time.Millisecond)
	if j := joins(); j != first {
		t.Fatalf("%d rejoins while every seed was a member", j-first)
	}
	tab.mu.Lock()
	for _, m := range tab.members {
		if m.cfg.NodeID == "n1" {
			m.alone = true
		}
	}
	tab.mu.Unlock()
	testutil.EventuallyClock(t, n1.clk, memberCheckPeriod, 10*time.Second, 20*time.Millisecond, func() bool {
		return joins() > first
	}, "no rejoin after the other members were lost")
	// The rejoin brought the members back: the node is told (node/ then
	// has the agent retry its session with the managers at once).
	testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool { return peersBack.Load() > 0 },
		"OnPeersBack not called after the rejoin brought members back")
}

// Rejoin attempts run beside the programming loop: while the network is
// cut (every Join hangs) the loop still programs, a new attempt starts each
// member check, through the seeds in turn, at most maxRejoins at a time; and
// once an attempt gets through, the node has its members back.
func TestRejoinAttemptsDoNotHoldTheLoop(t *testing.T) {
	tab := newTable()
	n1 := newNode(t, tab, "n1", "192.0.2.1")
	n2 := newNode(t, tab, "n2", "192.0.2.2")
	n3 := newNode(t, tab, "n3", "192.0.2.3")
	for _, n := range []*node{n2, n3} {
		session(n, "k", nil)
	}
	session(n1, "k", nil, "192.0.2.2", "192.0.2.3")
	var g1 *fakeGossip
	block := make(chan struct{})
	tab.mu.Lock()
	for _, m := range tab.members {
		if m.cfg.NodeID == "n1" {
			g1, m.alone, m.block = m, true, block
		}
	}
	tab.mu.Unlock()
	joins := func() []string {
		var out []string
		for _, e := range n1.ev.all() {
			if strings.HasPrefix(e, "join ") {
				out = append(out, e)
			}
		}
		return out
	}
	first := len(joins())
	testutil.EventuallyClock(t, n1.clk, memberCheckPeriod, 20*time.Second, 20*time.Millisecond, func() bool {
		return len(joins()) >= first+maxRejoins
	}, "rejoin attempts did not keep starting while the earlier ones hung: %v", joins())
	for i := 0; i < 3; i++ { // no more than maxRejoins at a time
		n1.clk.Advance(memberCheckPeriod)
	}
	time.Sleep(50 * time.Millisecond)
	got := joins()[first:]
	if len(got) != maxRejoins {
		t.Fatalf("%d attempts in flight, want at most %d: %v", len(got), maxRejoins, got)
	}
	if !slices.Contains(got, "join [192.0.2.2:7946]") || !slices.Contains(got, "join [192.0.2.3:7946]") {
		t.Fatalf("the attempts do not take the seeds in turn: %v", got)
	}
	// The loop still programs meanwhile.
	mustAttach(t, n1, task("c1", "cli", 1, 9, false, "netA"))
	before := n1.vip.count()
	n1.a.kick()
	testutil.Eventually(t, 2*time.Second, 5*time.Millisecond, func() bool { return n1.vip.count() > before || n1.vip.table("/ns/c1") != "" },
		"the loop did not program while rejoins hung")
	close(block) // the network is back
	testutil.Eventually(t, 2*time.Second, 5*time.Millisecond, func() bool { return len(g1.Members()) == 3 },
		"members not back after the rejoin got through: %v", g1.Members())
}
