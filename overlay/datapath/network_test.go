package datapath

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/testutil"
)

func TestConfigValidate(t *testing.T) {
	vtep := netip.MustParseAddr("10.0.0.1")
	c := Config{StateDir: "/x", VTEP: vtep}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if c.Port != DefaultPort || c.LinkPrefix != DefaultLinkPrefix || c.Log == nil {
		t.Fatalf("defaults not filled: %+v", c)
	}
	for name, bad := range map[string]Config{
		"no state dir":  {VTEP: vtep},
		"no vtep":       {StateDir: "/x"},
		"ipv6 vtep":     {StateDir: "/x", VTEP: netip.MustParseAddr("fd00::1")},
		"zero vtep":     {StateDir: "/x", VTEP: netip.IPv4Unspecified()},
		"long prefix":   {StateDir: "/x", VTEP: vtep, LinkPrefix: "shoal"},
		"prefix chars":  {StateDir: "/x", VTEP: vtep, LinkPrefix: "a/b"},
		"prefix upcase": {StateDir: "/x", VTEP: vtep, LinkPrefix: "AB"},
	} {
		if err := bad.validate(); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: validate() = %v, want an invalid-argument error", name, err)
		}
	}
}

func TestNetworkValidate(t *testing.T) {
	good := Network{ID: "n1", VNI: 4096, Subnet: netip.MustParsePrefix("10.0.1.0/24"), Gateway: netip.MustParseAddr("10.0.1.1")}
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	mut := func(f func(*Network)) Network { n := good; f(&n); return n }
	for name, bad := range map[string]Network{
		"empty id":        mut(func(n *Network) { n.ID = "" }),
		"slash id":        mut(func(n *Network) { n.ID = "a/b" }),
		"dotdot id":       mut(func(n *Network) { n.ID = ".." }),
		"vni 0":           mut(func(n *Network) { n.VNI = 0 }),
		"vni too big":     mut(func(n *Network) { n.VNI = 1 << 24 }),
		"no subnet":       mut(func(n *Network) { n.Subnet = netip.Prefix{} }),
		"v6 subnet":       mut(func(n *Network) { n.Subnet = netip.MustParsePrefix("fd00::/64") }),
		"gateway outside": mut(func(n *Network) { n.Gateway = netip.MustParseAddr("10.0.2.1") }),
		"mtu too small":   mut(func(n *Network) { n.MTU = 100 }),
	} {
		if err := bad.validate(); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: validate() = %v, want an invalid-argument error", name, err)
		}
	}
}

func TestLinkNames(t *testing.T) {
	c := Config{LinkPrefix: "abcd"}
	long := strings.Repeat("x", 200)
	names := []string{
		c.tmpVxlanName(long),
		c.hostVethName(long, "/run/ns/"+long, "eth1"),
		c.hostVethName(long, "/run/ns/"+long, "eth2"),
		c.tmpPeerName(long, "/run/ns/"+long, "eth1"),
	}
	for _, n := range names {
		if len(n) > 15 || !strings.HasPrefix(n, "abcd") {
			t.Errorf("link name %q: longer than 15 bytes or without the prefix", n)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(names)))) != len(names) {
		t.Errorf("link names collide: %v", names)
	}
	if c.hostVethName("n", "/a", "eth1") != c.hostVethName("n", "/a", "eth1") {
		t.Error("veth names are not stable")
	}
}

// oneHost is one simulated host: a namespace whose "ul0" (with the given
// MTU) holds the VTEP.
func oneHost(t *testing.T, mtu int) (host string, d *Datapath, dir string) {
	t.Helper()
	testutil.RequiresRoot(t)
	dir = t.TempDir()
	host = testNS(t, dir, "host")
	h := handle(t, host)
	// No dummy driver in this kernel: a veth pair stands in for the NIC.
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ul0", MTU: mtu}, PeerName: "ul1", PeerMTU: uint32(mtu)}); err != nil {
		t.Fatal(err)
	}
	ul, err := h.LinkByName("ul0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(ul, &netlink.Addr{IPNet: ipNet(netip.MustParseAddr("10.98.1.1"), 24)}); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(ul); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	d = newIn(t, host, Config{StateDir: filepath.Join(dir, "state"), VTEP: netip.MustParseAddr("10.98.1.1"), Port: 4799, LinkPrefix: "t", Log: log})
	return host, d, dir
}

func TestEnsureNetworkRepairsAndRecreates(t *testing.T) {
	host, d, dir := oneHost(t, 9000)
	n := Network{ID: "n1", VNI: 100, Subnet: netip.MustParsePrefix("10.201.0.0/24"), Gateway: netip.MustParseAddr("10.201.0.1")}
	t.Cleanup(func() { _ = d.RemoveNetwork(n.ID) })

	// Nothing exists yet: attach and peers say what to do.
	task := testNS(t, dir, "task")
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 5}
	addr := netip.MustParsePrefix("10.201.0.5/24")
	if err := d.AttachTask(n.ID, task, "eth1", addr, mac); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "EnsureNetwork") {
		t.Fatalf("AttachTask before EnsureNetwork = %v", err)
	}
	if err := d.SetPeers(n.ID, nil); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("SetPeers before EnsureNetwork = %v", err)
	}

	// A leftover temporary VXLAN with the same VNI (a crash between create
	// and move) does not block creation.
	hh := handle(t, host)
	tmp := d.cfg.tmpVxlanName(n.ID)
	if err := hh.LinkAdd(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: tmp}, VxlanId: 100, Port: 4799,
		SrcAddr: net.ParseIP("10.98.1.1")}); err != nil {
		t.Fatal(err)
	}
	if err := d.EnsureNetwork(n); err != nil {
		t.Fatal(err)
	}
	if names := linkNames(t, host); !slices.Equal(names, []string{"lo", "ul0", "ul1"}) {
		t.Fatalf("daemon namespace links = %v", names)
	}
	if got := d.MTU(n.ID); got != 8950 {
		t.Fatalf("MTU on a 9000 underlay = %d, want 8950", got)
	}
	nh := handle(t, d.NetnsPath(n.ID))
	vx, _ := nh.LinkByName(vxlanName)
	if v := vx.(*netlink.Vxlan); v.Port != 4799 {
		t.Fatalf("vx0 port %d, want Config.Port 4799", v.Port)
	}

	// A half-made attachment (an unpaired veth named eth1 in the task) is
	// replaced; a non-veth eth1 is refused.
	th := handle(t, task)
	if err := th.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth1"}, PeerName: "junk"}); err != nil {
		t.Fatal(err)
	}
	if err := d.AttachTask(n.ID, task, "eth1", addr, mac); err != nil {
		t.Fatal(err)
	}
	if names := linkNames(t, task); !slices.Equal(names, []string{"eth1", "lo"}) {
		t.Fatalf("task links = %v", names)
	}
	if err := th.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "eth2"}}); err != nil {
		t.Fatal(err)
	}
	if err := d.AttachTask(n.ID, task, "eth2", netip.MustParsePrefix("10.201.0.6/24"), mac); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("AttachTask over a bridge named eth2 = %v", err)
	}
	if l, err := th.LinkByName("eth2"); err == nil {
		_ = th.LinkDel(l)
	}
	// A changed address is replaced, not added.
	addr2 := netip.MustParsePrefix("10.201.0.7/24")
	if err := d.AttachTask(n.ID, task, "eth1", addr2, mac); err != nil {
		t.Fatal(err)
	}
	eth1, _ := th.LinkByName("eth1")
	if as, _ := th.AddrList(eth1, netlink.FAMILY_V4); len(as) != 1 || as[0].IPNet.String() != addr2.String() {
		t.Fatalf("eth1 addresses = %v, want only %s", as, addr2)
	}

	// The network's MTU option wins, and is applied in place.
	n.MTU = 1400
	if err := d.EnsureNetwork(n); err != nil {
		t.Fatal(err)
	}
	if l, err := nh.LinkByName(d.cfg.hostVethName(n.ID, task, "eth1")); err != nil || l.Attrs().MTU != 1400 {
		t.Fatalf("host veth end after an MTU change: %v %v", l, err)
	}
	if err := d.AttachTask(n.ID, task, "eth1", addr2, mac); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		h    *netlink.Handle
		name string
	}{{nh, bridgeName}, {nh, vxlanName}, {nh, d.cfg.hostVethName(n.ID, task, "eth1")}, {th, "eth1"}} {
		if l, err := x.h.LinkByName(x.name); err != nil || l.Attrs().MTU != 1400 {
			t.Fatalf("%s mtu: %v %v, want 1400", x.name, l, err)
		}
	}

	// Another VNI for the same network: vx0 is recreated, the task stays.
	vethIdx := linkIndex(t, task, "eth1")
	n.VNI = 200
	if err := d.EnsureNetwork(n); err != nil {
		t.Fatal(err)
	}
	vx, _ = nh.LinkByName(vxlanName)
	br, _ := nh.LinkByName(bridgeName)
	if v := vx.(*netlink.Vxlan); v.VxlanId != 200 || v.MasterIndex != br.Attrs().Index || v.Attrs().OperState == netlink.OperDown {
		t.Fatalf("vx0 after a VNI change = %+v", v)
	}
	if linkIndex(t, task, "eth1") != vethIdx {
		t.Fatal("a VNI change recreated the task's veth")
	}

	// The task namespace vanished before DetachTask: fine.
	if err := removeNetns(task); err != nil {
		t.Fatal(err)
	}
	if err := d.DetachTask(n.ID, task, "eth1"); err != nil {
		t.Fatalf("DetachTask with the task namespace gone: %v", err)
	}
	if names := linkNames(t, d.NetnsPath(n.ID)); !slices.Equal(names, []string{bridgeName, "lo", vxlanName}) {
		t.Fatalf("network namespace links after detach = %v", names)
	}
}

func TestVTEPMustBeLocal(t *testing.T) {
	_, d, _ := oneHost(t, 1500)
	d.cfg.VTEP = netip.MustParseAddr("10.98.1.99")
	err := d.EnsureNetwork(Network{ID: "n", VNI: 1, Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "10.98.1.99") {
		t.Fatalf("EnsureNetwork with a foreign VTEP = %v", err)
	}
	if ids, _ := d.Networks(); len(ids) != 0 {
		t.Fatalf("a refused network left %v", ids)
	}
}

func TestStaleNamespaceFileIsListedAndRemoved(t *testing.T) {
	_, d, _ := oneHost(t, 1500)
	// An unmounted file (a reboot cleared the mounts) is still a network
	// the daemon must clean up.
	p := d.NetnsPath("gone")
	if err := os.WriteFile(p, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if ids, err := d.Networks(); err != nil || !slices.Equal(ids, []string{"gone"}) {
		t.Fatalf("Networks() = %v, %v", ids, err)
	}
	if err := d.RemoveNetwork("gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("stale file stays: %v", err)
	}
	// A network whose namespace exists but devices were deleted by hand is
	// repaired by EnsureNetwork.
	n := Network{ID: "n2", VNI: 7, Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")}
	t.Cleanup(func() { _ = d.RemoveNetwork(n.ID) })
	if err := d.EnsureNetwork(n); err != nil {
		t.Fatal(err)
	}
	nh := handle(t, d.NetnsPath(n.ID))
	for _, name := range []string{vxlanName, bridgeName} {
		l, _ := nh.LinkByName(name)
		if err := nh.LinkDel(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.EnsureNetwork(n); err != nil {
		t.Fatal(err)
	}
	if names := linkNames(t, d.NetnsPath(n.ID)); !slices.Equal(names, []string{bridgeName, "lo", vxlanName}) {
		t.Fatalf("after repair: %v", names)
	}
}

// TestFailedFirstEnsureLeavesNothing: a VNI already used in the daemon's
// namespace is refused with a clear error, and the half-made network is
// gone.
func TestFailedFirstEnsureLeavesNothing(t *testing.T) {
	_, d, _ := oneHost(t, 1500)
	n1 := Network{ID: "n1", VNI: 300, Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")}
	n2 := Network{ID: "n2", VNI: 300, Subnet: netip.MustParsePrefix("10.2.0.0/24"), Gateway: netip.MustParseAddr("10.2.0.1")}
	t.Cleanup(func() { _ = d.RemoveNetwork(n1.ID); _ = d.RemoveNetwork(n2.ID) })
	if err := d.EnsureNetwork(n1); err != nil {
		t.Fatal(err)
	}
	err := d.EnsureNetwork(n2)
	if !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), "VNI 300") {
		t.Fatalf("EnsureNetwork with a VNI in use = %v", err)
	}
	if ids, _ := d.Networks(); !slices.Equal(ids, []string{"n1"}) {
		t.Fatalf("Networks() after the failure = %v", ids)
	}
	if _, err := os.Stat(d.NetnsPath(n2.ID)); !os.IsNotExist(err) {
		t.Fatalf("namespace file of the failed network: %v", err)
	}
}

// TestConcurrentAttach attaches and detaches tasks from several goroutines.
func TestConcurrentAttach(t *testing.T) {
	_, d, dir := oneHost(t, 1500)
	n := Network{ID: "n", VNI: 9, Subnet: netip.MustParsePrefix("10.3.0.0/24"), Gateway: netip.MustParseAddr("10.3.0.1")}
	t.Cleanup(func() { _ = d.RemoveNetwork(n.ID) })
	if err := d.EnsureNetwork(n); err != nil {
		t.Fatal(err)
	}
	const tasks = 8
	paths := make([]string, tasks)
	for i := range paths {
		paths[i] = testNS(t, dir, fmt.Sprintf("task%d", i))
	}
	run := func(f func(i int) error) {
		t.Helper()
		errs := make(chan error, tasks)
		for i := 0; i < tasks; i++ {
			go func() { errs <- f(i) }()
		}
		for i := 0; i < tasks; i++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	run(func(i int) error {
		return d.AttachTask(n.ID, paths[i], "eth1", netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 3, 0, byte(10 + i)}), 24),
			net.HardwareAddr{2, 0, 0, 0, 1, byte(i)})
	})
	if got := len(linkNames(t, d.NetnsPath(n.ID))); got != 3+tasks {
		t.Fatalf("%d links in the network namespace, want lo, br0, vx0 and %d veths", got, tasks)
	}
	run(func(i int) error { return d.DetachTask(n.ID, paths[i], "eth1") })
	if names := linkNames(t, d.NetnsPath(n.ID)); !slices.Equal(names, []string{bridgeName, "lo", vxlanName}) {
		t.Fatalf("after detaching all: %v", names)
	}
}
