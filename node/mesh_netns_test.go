package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/overlay"
	api "github.com/shoal-project/shoal/proto"
)

// The routing mesh with the real libraries: two host namespaces joined by
// an underlay, a third "outside" namespace linked to host A only, a task on
// host B publishing 8080 -> 80 on the ingress network. From outside,
// A:8080 reaches the task, which sees the outside address (no
// masquerade: the return path through A); after the task is gone the port
// refuses at once.

// linkPair joins two namespaces by a veth named name on both sides.
func linkPair(t *testing.T, a, b, name, aAddr, bAddr string) {
	t.Helper()
	bns, err := netns.GetFromPath(b)
	if err != nil {
		t.Fatal(err)
	}
	defer bns.Close()
	if err := runInNS(a, func() error {
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: 1500}, PeerName: name,
			PeerNamespace: netlink.NsFd(int(bns))})
	}); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct{ ns, addr string }{{a, aAddr}, {b, bAddr}} {
		if err := runInNS(x.ns, func() error {
			l, err := netlink.LinkByName(name)
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

// whoServer answers each connection with the client address it sees.
func whoServer(t *testing.T, ns, addr string) {
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
				host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
				_, _ = c.Write([]byte("from:" + host))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
}

func ingressAttachment(ip string) *api.NetworkAttachment {
	return &api.NetworkAttachment{NetworkId: "ingr", NetworkName: "ingress", Vni: 4300, Ingress: true,
		Addresses: []string{ip + "/24"}, Mac: macOf(ip), Subnet: "10.0.77.0/24", Gateway: "10.0.77.1"}
}

func TestMeshTwoHosts(t *testing.T) {
	testutil.RequiresRoot(t)
	if testing.Short() {
		t.Skip("namespaces, VXLAN, nftables and memberlist: not in -short")
	}
	h1, h2, out := newNS(t, "h1"), newNS(t, "h2"), newNS(t, "out")
	t2 := newNS(t, "t2")
	linkHosts(t, h1, h2, "192.168.77.1/24", "192.168.77.2/24")
	linkPair(t, h1, out, "ex0", "192.168.88.1/24", "192.168.88.2/24")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	key := bytes.Repeat([]byte{9}, 32)
	ports := map[string]int{}
	for _, v := range []string{"192.168.77.1", "192.168.77.2"} {
		ports[v] = freePort(t)
	}
	newAgent := func(host, id, vtep string) *overlay.Agent {
		var a *overlay.Agent
		if err := runInNS(host, func() (err error) {
			a, err = overlay.New(overlay.Config{NodeID: id, DataPathAddr: netip.MustParseAddr(vtep),
				StateDir: t.TempDir(), LinkPrefix: linkPrefix(id), Log: log.With("node", id), VIP: vipLib{},
				Mesh: meshLib{}, HostNetns: host, DrainDelay: -1,
				DNSUpstreams: []string{"127.0.0.1:1"}, NewGossip: loopbackGossip(ports[vtep], ports)})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close() })
		if err := a.Start(context.Background(), []string{}); err != nil {
			t.Fatal(err)
		}
		// Before Close: the node's interface and the ingress network go.
		t.Cleanup(func() { a.SetNode(&api.Node{Id: id}) })
		return a
	}
	a1 := newAgent(h1, "na1", "192.168.77.1")
	a2 := newAgent(h2, "nb2", "192.168.77.2")
	a1.Session(&api.SessionMessage{NetworkKey: key, GossipSeeds: []string{"192.168.77.2"}})
	a2.Session(&api.SessionMessage{NetworkKey: key, GossipSeeds: []string{"192.168.77.1"}})
	a1.SetNode(&api.Node{Id: "na1", Attachments: []*api.NetworkAttachment{ingressAttachment("10.0.77.2")}})
	a2.SetNode(&api.Node{Id: "nb2", Attachments: []*api.NetworkAttachment{ingressAttachment("10.0.77.3")}})

	ctx := context.Background()
	web := &api.Task{Id: "web1", ServiceId: "id-web", Slot: 1, NodeId: "nb2",
		ServiceAnnotations: &api.Annotations{Name: "web"},
		Endpoint: &api.Endpoint{Spec: &api.EndpointSpec{},
			Ports: []*api.PortConfig{{Protocol: api.PortConfig_TCP, TargetPort: 80, PublishedPort: 8080, PublishMode: api.PortConfig_INGRESS}}},
		Networks: []*api.NetworkAttachment{ingressAttachment("10.0.77.5")}}
	if _, err := a2.Attach(ctx, web, t2); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a2.Detach(context.Background(), web, t2) })
	whoServer(t, t2, "0.0.0.0:80")
	a2.Serving(web)

	// wait bounds one attempt: the Gone check below shortens it, so that
	// one attempt caught mid-change does not add a second to the measure.
	wait := time.Second
	dial := func() (string, error) {
		var c net.Conn
		if err := runInNS(out, func() (err error) {
			c, err = net.DialTimeout("tcp4", "192.168.88.1:8080", wait)
			return err
		}); err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * wait))
		b, err := io.ReadAll(c)
		return string(b), err
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got, err := dial()
		if err == nil && got == "from:192.168.88.2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outside -> host A:8080 -> task on host B: %q, %v (want the client's address)%s", got, err, debugNS(h1, h2, t2))
		}
	}

	// A host-mode port of a task on host A with no network: its
	// node-local address (a veth standing for the bridge) is the backend,
	// served on host A only.
	th := newNS(t, "th")
	linkPair(t, h1, th, "hb0", "172.18.5.1/24", "172.18.5.2/24")
	if err := runInNS(th, func() error {
		l, err := netlink.LinkByName("hb0")
		if err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("172.18.5.1")})
	}); err != nil {
		t.Fatal(err)
	}
	whoServer(t, th, "0.0.0.0:81")
	hostTask := &api.Task{Id: "host1", ServiceId: "id-hs", Slot: 1, NodeId: "na1",
		ServiceAnnotations: &api.Annotations{Name: "hs"},
		Endpoint: &api.Endpoint{Spec: &api.EndpointSpec{},
			Ports: []*api.PortConfig{{Protocol: api.PortConfig_TCP, TargetPort: 81, PublishedPort: 9090, PublishMode: api.PortConfig_HOST}}}}
	a1.SetHostAddr("host1", netip.MustParseAddr("172.18.5.2"))
	if _, err := a1.Attach(ctx, hostTask, th); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a1.Detach(context.Background(), hostTask, th) })
	a1.Serving(hostTask)
	testutil.EventuallyErr(t, 5*time.Second, 100*time.Millisecond, func() error {
		var c net.Conn
		if err := runInNS(out, func() (err error) {
			c, err = net.DialTimeout("tcp4", "192.168.88.1:9090", time.Second)
			return err
		}); err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "from:192.168.88.2" {
			return fmt.Errorf("outside -> host A:9090 (host mode): %q, %v", b, err)
		}
		return nil
	}, "the host-mode port never reached its local task")

	// Gone: within a second host A refuses the port (no backend left).
	wait = 100 * time.Millisecond
	start := time.Now()
	a2.Gone(web)
	testutil.EventuallyErr(t, 3*time.Second, 20*time.Millisecond, func() error {
		_, err := dial()
		if err == nil || !strings.Contains(err.Error(), "refused") {
			return fmt.Errorf("port without a backend: %v", err)
		}
		return nil
	}, "the port still served the gone task")
	if d := time.Since(start); d > time.Second {
		t.Errorf("the gone task left the mesh after %s, want within 1s", d)
	}
}

// debugNS renders the namespaces' nft rulesets, links and routes, for a
// failure's message.
func debugNS(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		name := filepath.Base(p)
		for _, args := range [][]string{{"nft", "list", "ruleset"}, {"ip", "-br", "addr"}, {"ip", "route"}, {"ip", "rule"}} {
			o, _ := exec.Command("ip", append([]string{"netns", "exec", name}, args...)...).CombinedOutput()
			fmt.Fprintf(&b, "\n== %s %v\n%s", name, args, o)
		}
	}
	return b.String()
}
