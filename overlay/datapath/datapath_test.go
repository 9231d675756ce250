package datapath

import (
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/shoal-project/shoal/internal/testutil"
)

// lab is two simulated hosts (namespaces) on an underlay veth with MTU
// 1400, a Datapath in each, one overlay network and one task per host.
type lab struct {
	hostA, hostB   string
	cfgA, cfgB     Config
	dA, dB         *Datapath
	net            Network
	taskA, taskB   string
	ipA, ipB       netip.Prefix
	macA, macB     net.HardwareAddr
	vtepA, vtepB   netip.Addr
	echoA, echoB   netip.AddrPort
	underlayMTU    int
	wantOverlayMTU int
}

func newLab(t *testing.T) *lab {
	t.Helper()
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	l := &lab{
		net:         Network{ID: "net-" + strings.ToLower(t.Name()), VNI: 4242, Subnet: netip.MustParsePrefix("10.200.0.0/24"), Gateway: netip.MustParseAddr("10.200.0.1")},
		ipA:         netip.MustParsePrefix("10.200.0.11/24"),
		ipB:         netip.MustParsePrefix("10.200.0.12/24"),
		macA:        net.HardwareAddr{0x02, 0x42, 0x0a, 0xc8, 0x00, 0x0b},
		macB:        net.HardwareAddr{0x02, 0x42, 0x0a, 0xc8, 0x00, 0x0c},
		vtepA:       netip.MustParseAddr("10.99.0.1"),
		vtepB:       netip.MustParseAddr("10.99.0.2"),
		underlayMTU: 1400,
	}
	l.wantOverlayMTU = l.underlayMTU - 50
	l.echoA = netip.AddrPortFrom(l.ipA.Addr(), 8080)
	l.echoB = netip.AddrPortFrom(l.ipB.Addr(), 8080)
	l.hostA = testNS(t, dir, "hostA")
	l.hostB = testNS(t, dir, "hostB")
	underlay(t, l.hostA, l.hostB, netip.PrefixFrom(l.vtepA, 24), netip.PrefixFrom(l.vtepB, 24), l.underlayMTU)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	l.cfgA = Config{StateDir: dir + "/stateA", VTEP: l.vtepA, Log: log.With("host", "A")}
	l.cfgB = Config{StateDir: dir + "/stateB", VTEP: l.vtepB, Log: log.With("host", "B")}
	l.dA = newIn(t, l.hostA, l.cfgA)
	l.dB = newIn(t, l.hostB, l.cfgB)
	// Registered after the namespaces, so it runs before they go: a failed
	// test leaves nothing behind either.
	t.Cleanup(func() {
		_ = l.dA.RemoveNetwork(l.net.ID)
		_ = l.dB.RemoveNetwork(l.net.ID)
	})
	l.taskA = testNS(t, dir, "taskA")
	l.taskB = testNS(t, dir, "taskB")
	return l
}

func (l *lab) peerA() Peer { return Peer{IP: l.ipA.Addr(), MAC: l.macA, VTEP: l.vtepA} }
func (l *lab) peerB() Peer { return Peer{IP: l.ipB.Addr(), MAC: l.macB, VTEP: l.vtepB} }

// up builds the network on both hosts, attaches a task on each and
// programs each host with the other's task.
func (l *lab) up(t *testing.T) {
	t.Helper()
	for _, d := range []*Datapath{l.dA, l.dB} {
		if err := d.EnsureNetwork(l.net); err != nil {
			t.Fatalf("EnsureNetwork: %v", err)
		}
	}
	if err := l.dA.AttachTask(l.net.ID, l.taskA, "eth1", l.ipA, l.macA); err != nil {
		t.Fatalf("AttachTask A: %v", err)
	}
	if err := l.dB.AttachTask(l.net.ID, l.taskB, "eth1", l.ipB, l.macB); err != nil {
		t.Fatalf("AttachTask B: %v", err)
	}
	// Each host's peer list holds every endpoint; SetPeers skips its own.
	all := []Peer{l.peerA(), l.peerB()}
	for _, d := range []*Datapath{l.dA, l.dB} {
		if err := d.SetPeers(l.net.ID, all); err != nil {
			t.Fatalf("SetPeers: %v", err)
		}
	}
}

func (l *lab) reachable(t *testing.T) {
	t.Helper()
	testutil.EventuallyErr(t, 5*time.Second, 100*time.Millisecond, func() error {
		got, err := tcpExchange(l.taskA, l.echoB, "a", time.Second)
		if err == nil && got != "pong:a" {
			t.Fatalf("A -> B answered %q", got)
		}
		return err
	}, "TCP from task A to task B across the overlay")
	got, err := tcpExchange(l.taskB, l.echoA, "b", 2*time.Second)
	if err != nil || got != "pong:b" {
		t.Fatalf("TCP from task B to task A: %q, %v", got, err)
	}
}

func linkIndex(t *testing.T, path, name string) int {
	t.Helper()
	l, err := handle(t, path).LinkByName(name)
	if err != nil {
		t.Fatalf("%s in %s: %v", name, path, err)
	}
	return l.Attrs().Index
}

func TestOverlayAcrossHosts(t *testing.T) {
	l := newLab(t)
	l.up(t)
	tcpEcho(t, l.taskA, l.echoA)
	tcpEcho(t, l.taskB, l.echoB)

	// Devices as lab.sh builds them, with the MTU from the underlay.
	if got := l.dA.MTU(l.net.ID); got != l.wantOverlayMTU {
		t.Fatalf("MTU = %d, want underlay %d - 50", got, l.underlayMTU)
	}
	h := handle(t, l.dA.NetnsPath(l.net.ID))
	vxl, err := h.LinkByName(vxlanName)
	if err != nil {
		t.Fatal(err)
	}
	vx, ok := vxl.(*netlink.Vxlan)
	if !ok {
		t.Fatalf("vx0 is a %s", vxl.Type())
	}
	if vx.VxlanId != 4242 || vx.Port != DefaultPort || !vx.SrcAddr.Equal(net.IP(l.vtepA.AsSlice())) ||
		vx.Learning || !vx.Proxy || !vx.L2miss || !vx.L3miss || vx.MTU != l.wantOverlayMTU {
		t.Fatalf("vx0 = %+v", vx)
	}
	br, err := h.LinkByName(bridgeName)
	if err != nil || vx.MasterIndex != br.Attrs().Index || br.Attrs().MTU != l.wantOverlayMTU {
		t.Fatalf("br0 %v (err %v), vx0 master %d", br, err, vx.MasterIndex)
	}
	tl, err := handle(t, l.taskA).LinkByName("eth1")
	if err != nil || tl.Attrs().MTU != l.wantOverlayMTU || tl.Attrs().HardwareAddr.String() != l.macA.String() {
		t.Fatalf("task eth1 = %+v, %v", tl, err)
	}
	if routes, _ := handle(t, l.taskA).RouteList(nil, netlink.FAMILY_V4); slices.ContainsFunc(routes, func(r netlink.Route) bool { return r.Dst == nil }) {
		t.Fatalf("AttachTask added a default route: %v", routes)
	}
	// The daemon's namespace keeps no link of ours.
	if names := linkNames(t, l.hostA); !slices.Equal(names, []string{"eth0", "lo"}) {
		t.Fatalf("host A links = %v, want only lo and eth0", names)
	}

	l.reachable(t)
	if ok, err := icmpPing(l.taskA, l.ipB.Addr()); ok && err != nil {
		t.Fatal(err)
	}

	// DF: MTU-28 passes, MTU-27 does not leave the task.
	sink := udpSink(t, l.taskB, netip.AddrPortFrom(l.ipB.Addr(), 9000))
	snd := dfSender(t, l.taskA)
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.ipB.Addr(), 9000))
	big := l.wantOverlayMTU - 28
	if _, err := snd.WriteToUDP(make([]byte, big), dst); err != nil {
		t.Fatalf("DF datagram of %d bytes (packet = MTU): %v", big, err)
	}
	select {
	case n := <-sink:
		if n != big {
			t.Fatalf("received %d bytes, want %d", n, big)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("DF datagram of %d bytes (packet = MTU %d) did not cross the overlay", big, l.wantOverlayMTU)
	}
	if _, err := snd.WriteToUDP(make([]byte, big+1), dst); !isMsgSize(err) {
		t.Fatalf("DF datagram of %d bytes (packet = MTU+1): err %v, want EMSGSIZE", big+1, err)
	}

	// Idempotency: a second EnsureNetwork/AttachTask keeps every device.
	vxIdx, vethIdx := linkIndex(t, l.dA.NetnsPath(l.net.ID), vxlanName), linkIndex(t, l.taskA, "eth1")
	if err := l.dA.EnsureNetwork(l.net); err != nil {
		t.Fatal(err)
	}
	if err := l.dA.AttachTask(l.net.ID, l.taskA, "eth1", l.ipA, l.macA); err != nil {
		t.Fatal(err)
	}
	if linkIndex(t, l.dA.NetnsPath(l.net.ID), vxlanName) != vxIdx || linkIndex(t, l.taskA, "eth1") != vethIdx {
		t.Fatal("a repeated EnsureNetwork/AttachTask recreated a device")
	}
	l.reachable(t)

	// Peer removal: the kernel loses the entries, the peer is unreachable.
	if err := l.dA.SetPeers(l.net.ID, nil); err != nil {
		t.Fatal(err)
	}
	if neigh, fdb := peerState(t, l.dA, l.net.ID); len(neigh)+len(fdb) != 0 {
		t.Fatalf("after SetPeers(nil): neigh %v fdb %v", neigh, fdb)
	}
	if _, err := tcpExchange(l.taskA, l.echoB, "x", 700*time.Millisecond); err == nil {
		t.Fatal("task B still reachable from A after its peer entry was removed")
	}
	// A changed VTEP is replaced in place; restoring brings B back.
	moved := l.peerB()
	moved.VTEP = netip.MustParseAddr("10.99.0.3")
	if err := l.dA.SetPeers(l.net.ID, []Peer{moved}); err != nil {
		t.Fatal(err)
	}
	if _, fdb := peerState(t, l.dA, l.net.ID); fdb[l.macB.String()] != "10.99.0.3" || len(fdb) != 1 {
		t.Fatalf("fdb after a VTEP change = %v", fdb)
	}
	if err := l.dA.SetPeers(l.net.ID, []Peer{l.peerB()}); err != nil {
		t.Fatal(err)
	}
	neigh, fdb := peerState(t, l.dA, l.net.ID)
	if len(neigh) != 1 || neigh[l.ipB.Addr().String()] != l.macB.String() || len(fdb) != 1 || fdb[l.macB.String()] != l.vtepB.String() {
		t.Fatalf("after restoring: neigh %v fdb %v", neigh, fdb)
	}
	l.reachable(t)

	// Adoption: a new Datapath on the same StateDir finds and keeps it all.
	if err := l.dA.Close(); err != nil {
		t.Fatal(err)
	}
	l.dA = newIn(t, l.hostA, l.cfgA)
	if ids, err := l.dA.Networks(); err != nil || !slices.Equal(ids, []string{l.net.ID}) {
		t.Fatalf("Networks() = %v, %v", ids, err)
	}
	if got := l.dA.MTU(l.net.ID); got != l.wantOverlayMTU {
		t.Fatalf("MTU after restart = %d", got)
	}
	if err := l.dA.EnsureNetwork(l.net); err != nil {
		t.Fatal(err)
	}
	if err := l.dA.AttachTask(l.net.ID, l.taskA, "eth1", l.ipA, l.macA); err != nil {
		t.Fatal(err)
	}
	if linkIndex(t, l.dA.NetnsPath(l.net.ID), vxlanName) != vxIdx || linkIndex(t, l.taskA, "eth1") != vethIdx {
		t.Fatal("adoption recreated a device")
	}
	if neigh, fdb := peerState(t, l.dA, l.net.ID); len(neigh) != 1 || len(fdb) != 1 {
		t.Fatalf("adoption lost peers: neigh %v fdb %v", neigh, fdb)
	}
	l.reachable(t)

	// Detach, then remove: nothing is left.
	if err := l.dA.DetachTask(l.net.ID, l.taskA, "eth1"); err != nil {
		t.Fatal(err)
	}
	if err := l.dA.DetachTask(l.net.ID, l.taskA, "eth1"); err != nil {
		t.Fatalf("second DetachTask: %v", err)
	}
	if names := linkNames(t, l.taskA); !slices.Equal(names, []string{"lo"}) {
		t.Fatalf("task A links after detach = %v", names)
	}
	for _, x := range []struct {
		d    *Datapath
		host string
		task string
	}{{l.dA, l.hostA, l.taskA}, {l.dB, l.hostB, l.taskB}} {
		p := x.d.NetnsPath(l.net.ID)
		for i := 0; i < 2; i++ {
			if err := x.d.RemoveNetwork(l.net.ID); err != nil {
				t.Fatalf("RemoveNetwork #%d: %v", i+1, err)
			}
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) || mounted(t, p) {
			t.Fatalf("namespace file %s still there (stat err %v, mounted %v)", p, err, mounted(t, p))
		}
		if names := linkNames(t, x.host); !slices.Equal(names, []string{"eth0", "lo"}) {
			t.Fatalf("host links after RemoveNetwork = %v", names)
		}
		if names := linkNames(t, x.task); !slices.Equal(names, []string{"lo"}) {
			t.Fatalf("task links after RemoveNetwork = %v", names)
		}
		if ids, err := x.d.Networks(); err != nil || len(ids) != 0 {
			t.Fatalf("Networks() after removal = %v, %v", ids, err)
		}
		if x.d.MTU(l.net.ID) != 0 {
			t.Fatal("MTU of a removed network is not 0")
		}
	}
}
