package datapath

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/shoal-project/shoal/internal/testutil"
)

// peerAddrServer answers each connection inside ns with the client address
// it sees.
func peerAddrServer(t *testing.T, ns string, addr netip.AddrPort) {
	t.Helper()
	var ln net.Listener
	inNS(t, ns, func() (err error) { ln, err = net.Listen("tcp4", addr.String()); return err })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ra := c.RemoteAddr().(*net.TCPAddr)
			_, _ = c.Write([]byte(ra.IP.String()))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
}

func nftList(ns, table string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+ns, "nft", "list", "table", "ip", table).CombinedOutput()
	return string(out), err
}

// TestEgress builds a node namespace with a task bridge and an "outside"
// namespace reachable only from the node (it has no route back to the
// task subnet): tasks get out only once EnsureEgress masquerades them.
func TestEgress(t *testing.T) {
	testutil.RequiresRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft CLI missing; it only reads the table back")
	}
	dir := t.TempDir()
	node, task, outside := testNS(t, dir, "node"), testNS(t, dir, "task"), testNS(t, dir, "outside")
	nh, th := handle(t, node), handle(t, task)
	underlay(t, node, outside, netip.MustParsePrefix("10.98.0.1/24"), netip.MustParsePrefix("10.98.0.2/24"), 1500)

	const bridge = "brx"
	subnet := netip.MustParsePrefix("10.1.2.0/24")
	if err := nh.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridge}}); err != nil {
		t.Fatal(err)
	}
	br, _ := nh.LinkByName(bridge)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(nh.AddrAdd(br, &netlink.Addr{IPNet: ipNet(netip.MustParseAddr("10.1.2.1"), 24)}))
	must(nh.LinkSetUp(br))
	tns, err := netns.GetFromPath(task)
	must(err)
	defer tns.Close()
	must(nh.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vtask", MasterIndex: br.Attrs().Index},
		PeerName: "eth0", PeerNamespace: netlink.NsFd(int(tns))}))
	vt, _ := nh.LinkByName("vtask")
	must(nh.LinkSetUp(vt))
	e0, err := th.LinkByName("eth0")
	must(err)
	must(th.AddrAdd(e0, &netlink.Addr{IPNet: ipNet(netip.MustParseAddr("10.1.2.5"), 24)}))
	must(th.LinkSetUp(e0))
	must(th.RouteAdd(&netlink.Route{LinkIndex: e0.Attrs().Index, Gw: net.ParseIP("10.1.2.1")}))

	srv := netip.MustParseAddrPort("10.98.0.2:7000")
	peerAddrServer(t, outside, srv)
	dial := func() (string, error) {
		var c net.Conn
		if err := runIn(task, func() (err error) {
			c, err = (&net.Dialer{Timeout: 700 * time.Millisecond}).Dial("tcp4", srv.String())
			return err
		}); err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 64)
		n, err := c.Read(b)
		return string(b[:n]), err
	}
	if got, err := dial(); err == nil {
		t.Fatalf("the outside answered (%q) before egress was set up", got)
	}

	for i := 0; i < 2; i++ { // idempotent
		inNS(t, node, func() error { return EnsureEgress(bridge, subnet) })
	}
	t.Cleanup(func() { _ = runIn(node, func() error { return RemoveEgress(bridge) }) })
	var fwd []byte
	inNS(t, node, func() (err error) { fwd, err = os.ReadFile(ipForwardPath); return err })
	if strings.TrimSpace(string(fwd)) != "1" {
		t.Fatalf("ip_forward in the node namespace = %q", fwd)
	}
	out, err := nftList(node, EgressTable(bridge))
	if err != nil || !strings.Contains(out, `ip saddr 10.1.2.0/24 oifname != "brx" masquerade`) ||
		!strings.Contains(out, "type nat hook postrouting priority srcnat") || strings.Count(out, "masquerade") != 1 {
		t.Fatalf("nft table:\n%s\n%v", out, err)
	}
	testutil.EventuallyErr(t, 5*time.Second, 100*time.Millisecond, func() error {
		got, err := dial()
		if err == nil && got != "10.98.0.1" {
			t.Fatalf("the outside saw %s, want the node's address 10.98.0.1 (masquerade)", got)
		}
		return err
	}, "a task reaching the outside through the masquerade")

	for i := 0; i < 2; i++ {
		inNS(t, node, func() error { return RemoveEgress(bridge) })
	}
	if out, err := nftList(node, EgressTable(bridge)); err == nil {
		t.Fatalf("table still there after RemoveEgress:\n%s", out)
	}
	if got, err := dial(); err == nil {
		t.Fatalf("the outside answered (%q) after RemoveEgress", got)
	}
}

func TestSweepEgress(t *testing.T) {
	testutil.RequiresRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft CLI missing; it only reads the tables back")
	}
	node := testNS(t, t.TempDir(), "node")
	nh := handle(t, node)
	if err := nh.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "brlive"}}); err != nil {
		t.Fatal(err)
	}
	subnet := netip.MustParsePrefix("10.1.3.0/24")
	inNS(t, node, func() error { return EnsureEgress("brlive", subnet) })
	inNS(t, node, func() error { return EnsureEgress("brgone", subnet) }) // a bridge that never existed
	var gone []string
	inNS(t, node, func() (err error) { gone, err = SweepEgress(); return err })
	if len(gone) != 1 || gone[0] != EgressTable("brgone") {
		t.Fatalf("SweepEgress removed %v, want only %s", gone, EgressTable("brgone"))
	}
	if _, err := nftList(node, EgressTable("brlive")); err != nil {
		t.Fatalf("the live bridge's table went: %v", err)
	}
	if out, err := nftList(node, EgressTable("brgone")); err == nil {
		t.Fatalf("the table of a missing bridge is still there:\n%s", out)
	}
	inNS(t, node, func() (err error) { gone, err = SweepEgress(); return err })
	if len(gone) != 0 {
		t.Fatalf("a second sweep removed %v", gone)
	}
}
