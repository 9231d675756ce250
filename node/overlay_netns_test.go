package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/overlay"
	"github.com/shoal-project/shoal/overlay/gossip"
	api "github.com/shoal-project/shoal/proto"
)

// The overlay agent with the real libraries, in two network namespaces
// standing for two hosts joined by an underlay link, each with a task
// namespace: the client task on host 2 resolves the service on host 1 by
// name through 127.0.0.11, reaches it through its VIP and directly across
// the VXLAN, and loses it within a second of its death.

// runInNS runs fn on an OS thread switched into the namespace at path.
func runInNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err) // the thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// newNS makes a named namespace (unique name), with lo up, removed at
// cleanup; it returns its path.
func newNS(t *testing.T, what string) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "ovit-" + what + "-" + hex.EncodeToString(b)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if err == nil {
			if lo, lerr := netlink.LinkByName("lo"); lerr == nil {
				err = netlink.LinkSetUp(lo)
			}
			h.Close()
		}
		if serr := netns.Set(orig); serr != nil {
			errc <- errors.Join(err, serr)
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
	t.Cleanup(func() { _ = netns.DeleteNamed(name) })
	return filepath.Join("/var/run/netns", name)
}

// linkHosts joins two host namespaces by a veth "ul0" with the addresses.
func linkHosts(t *testing.T, a, b string, aAddr, bAddr string) {
	t.Helper()
	bns, err := netns.GetFromPath(b)
	if err != nil {
		t.Fatal(err)
	}
	defer bns.Close()
	if err := runInNS(a, func() error {
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ul0", MTU: 1500}, PeerName: "ul0",
			PeerNamespace: netlink.NsFd(int(bns))})
	}); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct{ ns, addr string }{{a, aAddr}, {b, bAddr}} {
		if err := runInNS(x.ns, func() error {
			l, err := netlink.LinkByName("ul0")
			if err != nil {
				return err
			}
			ad, _ := netlink.ParseAddr(x.addr)
			if err := netlink.AddrAdd(l, ad); err != nil {
				return err
			}
			return netlink.LinkSetUp(l)
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func overlayTask(id, svc string, slot uint64, ip string, vipAddr string) *api.Task {
	t := &api.Task{Id: id, ServiceId: "id-" + svc, Slot: slot, NodeId: "n",
		ServiceAnnotations: &api.Annotations{Name: svc},
		Endpoint:           &api.Endpoint{Spec: &api.EndpointSpec{}},
		Networks: []*api.NetworkAttachment{{NetworkId: "net1", NetworkName: "front", Vni: 4242,
			Addresses: []string{ip + "/24"}, Mac: macOf(ip), Subnet: "10.0.9.0/24", Gateway: "10.0.9.1",
			Aliases: []string{svc + "-alias"}}}}
	if vipAddr != "" {
		t.Endpoint.VirtualIps = []*api.Endpoint_VirtualIP{{NetworkId: "net1", Addr: vipAddr + "/24"}}
	}
	return t
}

func macOf(ip string) string {
	b := netip.MustParseAddr(ip).As4()
	return fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// lookup asks the embedded DNS server from inside ns (one A query on the
// calling, namespace-switched thread: Go's resolver would query from
// other threads).
func lookup(ns, name string) ([]string, error) {
	var out []string
	err := runInNS(ns, func() error {
		c := &mdns.Client{Net: "udp", Timeout: 2 * time.Second}
		m := new(mdns.Msg)
		m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
		r, _, err := c.Exchange(m, "127.0.0.11:53")
		if err != nil {
			return err
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*mdns.A); ok {
				out = append(out, a.A.String())
			}
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}

// exchange dials addr from inside ns and returns the echo server's answer.
func exchange(ns, addr string) (string, error) {
	var c net.Conn
	if err := runInNS(ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("hi\n")); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// ping sends one ICMP echo from inside ns to dst and waits a second for
// the reply.
func ping(ns, dst string) error {
	return runInNS(ns, func() error {
		c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			return err
		}
		defer c.Close()
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: os.Getpid() & 0xffff, Seq: 1, Data: []byte("shoal")}}
		b, err := msg.Marshal(nil)
		if err != nil {
			return err
		}
		if _, err := c.WriteTo(b, &net.IPAddr{IP: net.ParseIP(dst)}); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return err
			}
			m, err := icmp.ParseMessage(1, buf[:n])
			if err == nil && m.Type == ipv4.ICMPTypeEchoReply && from.String() == dst {
				return nil
			}
		}
	})
}

func echoServer(t *testing.T, ns, addr string) {
	t.Helper()
	var ln net.Listener
	if err := runInNS(ns, func() (err error) { ln, err = net.Listen("tcp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				n, _ := c.Read(buf)
				_, _ = c.Write(append([]byte("pong:"), bytes.TrimSpace(buf[:n])...))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
}

func TestOverlayTwoHosts(t *testing.T) {
	testutil.RequiresRoot(t)
	if testing.Short() {
		t.Skip("namespaces, VXLAN, nftables and memberlist: not in -short")
	}
	h1, h2 := newNS(t, "h1"), newNS(t, "h2")
	t1, t2 := newNS(t, "t1"), newNS(t, "t2")
	linkHosts(t, h1, h2, "192.168.77.1/24", "192.168.77.2/24")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	key := bytes.Repeat([]byte{7}, 32)
	// memberlist dials its TCP streams from whatever thread runs it: in a
	// test process that is the root namespace, so the two agents gossip
	// over loopback there, each seed (a VTEP) mapped to its loopback port.
	ports := map[string]int{}
	for _, v := range []string{"192.168.77.1", "192.168.77.2"} {
		ports[v] = freePort(t)
	}
	newAgent := func(host, id, vtep string) *overlay.Agent {
		var a *overlay.Agent
		if err := runInNS(host, func() (err error) {
			a, err = overlay.New(overlay.Config{NodeID: id, DataPathAddr: netip.MustParseAddr(vtep),
				StateDir: t.TempDir(), LinkPrefix: linkPrefix(id), Log: log.With("node", id), VIP: vipLib{},
				DNSUpstreams: []string{"127.0.0.1:1"}, NewGossip: loopbackGossip(ports[vtep], ports)})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close() })
		if err := a.Start(context.Background(), []string{}); err != nil {
			t.Fatal(err)
		}
		return a
	}
	a1 := newAgent(h1, "node1", "192.168.77.1")
	a2 := newAgent(h2, "node2", "192.168.77.2")
	a1.Session(&api.SessionMessage{NetworkKey: key, GossipSeeds: []string{"192.168.77.2"}})
	a2.Session(&api.SessionMessage{NetworkKey: key, GossipSeeds: []string{"192.168.77.1"}})

	ctx := context.Background()
	web := overlayTask("web1", "web", 1, "10.0.9.5", "10.0.9.2")
	cli := overlayTask("cli1", "cli", 1, "10.0.9.6", "10.0.9.3")
	if _, err := a1.Attach(ctx, web, t1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a1.Detach(context.Background(), web, t1) })
	if _, err := a2.Attach(ctx, cli, t2); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a2.Detach(context.Background(), cli, t2) })
	echoServer(t, t1, "0.0.0.0:8080")
	a1.Serving(web)
	a2.Serving(cli)

	testutil.EventuallyErr(t, 10*time.Second, 100*time.Millisecond, func() error {
		got, err := lookup(t2, "web")
		if err != nil || !slices.Equal(got, []string{"10.0.9.2"}) {
			return fmt.Errorf("web = %v, %v", got, err)
		}
		got, err = lookup(t2, "tasks.web")
		if err != nil || !slices.Equal(got, []string{"10.0.9.5"}) {
			return fmt.Errorf("tasks.web = %v, %v", got, err)
		}
		return nil
	}, "the client never resolved web")
	testutil.EventuallyErr(t, 10*time.Second, 100*time.Millisecond, func() error {
		if err := ping(t2, "10.0.9.5"); err != nil {
			return fmt.Errorf("ping across the VXLAN: %v", err)
		}
		if got, err := exchange(t2, "10.0.9.5:8080"); err != nil || got != "pong:hi" {
			return fmt.Errorf("direct across the VXLAN: %q, %v", got, err)
		}
		if got, err := exchange(t2, "10.0.9.2:8080"); err != nil || got != "pong:hi" {
			return fmt.Errorf("through the VIP: %q, %v", got, err)
		}
		return nil
	}, "the client never reached web")

	// An unplanned death: within a second, out of DNS and the VIP, which
	// then resets at once.
	start := time.Now()
	a1.Gone(web)
	testutil.EventuallyErr(t, 3*time.Second, 20*time.Millisecond, func() error {
		if got, _ := lookup(t2, "tasks.web"); len(got) != 0 {
			return fmt.Errorf("tasks.web = %v", got)
		}
		_, err := exchange(t2, "10.0.9.2:8080")
		if err == nil || !strings.Contains(err.Error(), "refused") {
			return fmt.Errorf("VIP without a backend: %v", err)
		}
		return nil
	}, "the dead task stayed")
	if d := time.Since(start); d > time.Second {
		t.Errorf("the dead task left after %s, want within 1s", d)
	}

	// Detach of the last tasks removes the networks.
	if err := a1.Detach(ctx, web, t1); err != nil {
		t.Fatal(err)
	}
	if err := a2.Detach(ctx, cli, t2); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{h1, h2} {
		if err := runInNS(h, func() error {
			links, err := netlink.LinkList()
			if err != nil {
				return err
			}
			for _, l := range links {
				if n := l.Attrs().Name; n != "lo" && n != "ul0" {
					return fmt.Errorf("link %s left", n)
				}
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// loopbackGossip is the real gossip bound to 127.0.0.1:port, whose Join
// maps each seed's host (a VTEP) to its loopback port.
func loopbackGossip(port int, ports map[string]int) func(overlay.GossipConfig) (overlay.Gossip, error) {
	return func(c overlay.GossipConfig) (overlay.Gossip, error) {
		g, err := gossip.New(gossip.Config{NodeID: c.NodeID, BindAddr: netip.MustParseAddr("127.0.0.1"), Port: port,
			AdvertiseAddr: netip.MustParseAddr("127.0.0.1"), Key: c.Key, OnChange: c.OnChange, Log: c.Log})
		if err != nil {
			return nil, err
		}
		return &loGossip{g, ports}, nil
	}
}

type loGossip struct {
	g     *gossip.Gossip
	ports map[string]int
}

func (l *loGossip) Members() []string { return l.g.Members() }

func (l *loGossip) Join(seeds []string) (int, error) {
	var mapped []string
	for _, s := range seeds {
		host, _, _ := net.SplitHostPort(s)
		mapped = append(mapped, fmt.Sprintf("127.0.0.1:%d", l.ports[host]))
	}
	return l.g.Join(mapped)
}
func (l *loGossip) Publish(e overlay.Entry) {
	l.g.Publish(gossip.Entry{Network: e.Network, Key: e.Key, IP: e.IP, MAC: e.MAC, VTEP: e.VTEP,
		ServiceID: e.ServiceID, ServiceName: e.ServiceName, TaskName: e.TaskName, Aliases: e.Aliases, VIP: e.VIP, Draining: e.Draining,
		Ports: convSlice(e.Ports, func(p overlay.PortEntry) gossip.Port { return gossip.Port(p) })})
}

func convSlice[A, B any](in []A, f func(A) B) []B {
	var out []B
	for _, x := range in {
		out = append(out, f(x))
	}
	return out
}
func (l *loGossip) Withdraw(network, key string) { l.g.Withdraw(network, key) }
func (l *loGossip) Entries(network string) []overlay.Entry {
	var out []overlay.Entry
	for _, e := range l.g.Entries(network) {
		out = append(out, overlay.Entry{Network: e.Network, Key: e.Key, Owner: e.Owner, Generation: e.Generation,
			Version: e.Version, Deleted: e.Deleted, IP: e.IP, MAC: e.MAC, VTEP: e.VTEP, ServiceID: e.ServiceID,
			ServiceName: e.ServiceName, TaskName: e.TaskName, Aliases: e.Aliases, VIP: e.VIP, Draining: e.Draining,
			Ports: convSlice(e.Ports, func(p gossip.Port) overlay.PortEntry { return overlay.PortEntry(p) })})
	}
	return out
}
func (l *loGossip) DropNode(id string)    { l.g.DropNode(id) }
func (l *loGossip) RestoreNode(id string) { l.g.RestoreNode(id) }
func (l *loGossip) Close() error          { return l.g.Close() }
