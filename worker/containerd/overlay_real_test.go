package containerd

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/ingress/vip"
	"github.com/shoal-project/shoal/overlay"
	api "github.com/shoal-project/shoal/proto"
)

// vipLib is ingress/vip for the overlay agent (node/ has the same).
type vipLib struct{}

func (vipLib) Apply(ns string, services []overlay.Service) error {
	ss := make([]vip.Service, len(services))
	for i, s := range services {
		ss[i] = vip.Service(s)
	}
	return vip.Apply(ns, ss)
}
func (vipLib) Remove(ns string) error { return vip.Remove(ns) }
func (vipLib) FlushConntrack(ns string, backend netip.Addr) error {
	return vip.FlushConntrack(ns, backend)
}

// Real containers with the real overlay agent on one node (no gossip: a
// single node programs from its own table): the client resolves the web
// service through 127.0.0.11, reaches it through its VIP over eth1, and
// the web task leaves DNS when it is stopped.
func TestOverlayRealContainers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 90*time.Second)
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	r := binary.BigEndian.Uint32(rnd[:])
	vni := 100000 + r%1000000
	third := 1 + r%250
	agent, err := overlay.New(overlay.Config{
		NodeID: e.cfg.NodeID, DataPathAddr: netip.MustParseAddr("127.0.0.1"), DataPathPort: uint16(20000 + r%20000),
		StateDir: t.TempDir(), LinkPrefix: fmt.Sprintf("t%03x", r%4096), VIP: vipLib{},
		DNSUpstreams: []string{"127.0.0.1:1"}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(ctx, []string{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Close() })
	e.ex.cfg.Overlay = agent

	net1 := func(t *api.Task, host int) {
		t.Networks = []*api.NetworkAttachment{{NetworkId: "n" + randHex(8), NetworkName: "front", Vni: vni,
			Addresses: []string{fmt.Sprintf("10.231.%d.%d/24", third, host)}, Mac: fmt.Sprintf("02:42:0a:e7:%02x:%02x", third, host),
			Subnet: fmt.Sprintf("10.231.%d.0/24", third), Gateway: fmt.Sprintf("10.231.%d.1", third)}}
	}
	vipAddr := fmt.Sprintf("10.231.%d.2", third)
	web := e.task(busyboxRef, "sh", "-c", "mkdir -p /www && echo hello-overlay > /www/index.html && exec httpd -f -p 8080 -h /www")
	web.ServiceAnnotations.Name = "web"
	net1(web, 5)
	web.Endpoint = &api.Endpoint{Spec: &api.EndpointSpec{}, VirtualIps: []*api.Endpoint_VirtualIP{{NetworkId: web.Networks[0].NetworkId, Addr: vipAddr + "/24"}}}
	wc := e.controller(web)
	mustPrepareStart(t, wc)
	t.Cleanup(func() { _ = wc.Remove(context.Background()) })

	// nslookup checks the names, wget the VIP by address (a static
	// glibc busybox resolves no names itself, and its wget -T crashes).
	cli := e.task(busyboxRef, "sh", "-c", `nslookup tasks.web; nslookup web; for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O- http://`+vipAddr+`:8080/ && break; sleep 0.5; done; cat /etc/resolv.conf; ip -4 addr show eth1`)
	cli.ServiceAnnotations.Name = "cli"
	cli.ServiceId = "svc" + randHex(8)
	net1(cli, 6)
	cli.Networks[0].NetworkId = web.Networks[0].NetworkId
	c, werr, logs := e.run(cli)
	t.Cleanup(func() { _ = c.Remove(context.Background()) })
	if werr != nil {
		t.Fatalf("client: %v\n%s", werr, logs)
	}
	for _, want := range []string{"hello-overlay", "10.231." + fmt.Sprint(third) + ".5", vipAddr, "nameserver 127.0.0.11", "ndots:0", "inet 10.231." + fmt.Sprint(third) + ".6/24"} {
		if !strings.Contains(logs, want) {
			t.Errorf("client output lacks %q:\n%s", want, logs)
		}
	}
	// Stopped, the web task leaves tasks.web (Draining precedes the signal).
	if err := wc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := agent.Resolve(cli.Id, "tasks.web"); len(got) != 0 {
		t.Errorf("tasks.web after the stop: %v", got)
	}
	if err := wc.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if a := agent.Addresses(web.Id); len(a) != 0 {
		t.Errorf("web still attached: %v", a)
	}
}
