package containerd

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/overlay/datapath"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
)

// fakeOverlay records the controller's calls in order.
type fakeOverlay struct {
	mu     sync.Mutex
	events []string
	addrs  map[string][]netip.Prefix
}

func newFakeOverlay() *fakeOverlay { return &fakeOverlay{addrs: map[string][]netip.Prefix{}} }

func (f *fakeOverlay) add(s string) {
	f.mu.Lock()
	f.events = append(f.events, s)
	f.mu.Unlock()
}

func (f *fakeOverlay) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

func (f *fakeOverlay) Attach(_ context.Context, t *api.Task, ns string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, n := range t.GetNetworks() {
		out = append(out, netip.MustParsePrefix(n.GetAddresses()[0]))
	}
	f.mu.Lock()
	f.addrs[t.GetId()] = out
	f.mu.Unlock()
	f.add("attach " + filepath.Base(ns))
	return out, nil
}
func (f *fakeOverlay) Addresses(id string) []netip.Prefix {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addrs[id]
}
func (f *fakeOverlay) Serving(t *api.Task) { f.add("serving") }
func (f *fakeOverlay) Draining(ctx context.Context, t *api.Task) error {
	f.add("draining")
	return nil
}
func (f *fakeOverlay) Gone(t *api.Task) { f.add("gone") }
func (f *fakeOverlay) UpdateEndpoint(t *api.Task) {
	f.add("endpoint " + fmt.Sprint(len(t.GetEndpoint().GetPorts())))
}
func (f *fakeOverlay) Detach(_ context.Context, t *api.Task, ns string) error {
	f.mu.Lock()
	delete(f.addrs, t.GetId())
	f.mu.Unlock()
	f.add("detach " + filepath.Base(ns))
	return nil
}
func (f *fakeOverlay) DataPathAddr() netip.Addr            { return netip.MustParseAddr("192.0.2.7") }
func (f *fakeOverlay) SetHostAddr(id string, a netip.Addr) {}
func (f *fakeOverlay) ServiceRemoved(t *api.Task)          {}

func overlayTask(e *env, args ...string) *api.Task {
	t := e.task(busyboxRef, args...)
	t.Networks = []*api.NetworkAttachment{{NetworkId: "net1", NetworkName: "front", Vni: 4097,
		Addresses: []string{"10.0.1.5/24"}, Mac: "02:42:0a:00:01:05", Subnet: "10.0.1.0/24", Gateway: "10.0.1.1"}}
	t.Spec.Container.DnsConfig = &api.DNSConfig{Nameservers: []string{"192.0.2.9"}, Search: []string{"corp"}, Options: []string{"timeout:2"}}
	return t
}

func TestOverlayDNSLines(t *testing.T) {
	ns, search, opts := overlayDNS([]string{"192.0.2.9"}, []string{"corp"}, []string{"timeout:2"})
	if !slices.Equal(ns, []string{"127.0.0.11", "192.0.2.9"}) || !slices.Equal(search, []string{"corp"}) || !slices.Equal(opts, []string{"ndots:0", "timeout:2"}) {
		t.Fatalf("overlayDNS = %v %v %v", ns, search, opts)
	}
}

func TestOverlayLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 60*time.Second)

	// Without overlay support the task is rejected, clearly, before a pull.
	c := e.controller(overlayTask(e))
	err := c.Prepare(ctx)
	if !worker.IsRejected(err) || !strings.Contains(err.Error(), "no overlay support configured") {
		t.Fatalf("Prepare without overlay = %v", err)
	}

	ov := newFakeOverlay()
	e.ex.cfg.Overlay = ov
	if d, err := e.ex.Describe(ctx); err != nil || d.GetDataPathAddr() != "192.0.2.7" {
		t.Fatalf("Describe = %v, %v", d, err)
	}
	task := overlayTask(e, "sleep", "3600")
	c = e.controller(task)
	mustPrepareStart(t, c)
	if out, err := exec.Command("nft", "list", "table", "ip", datapath.EgressTable(e.ex.cfg.Bridge)).CombinedOutput(); err != nil {
		t.Fatalf("no egress table with an overlay task: %v: %s", err, out)
	}
	resolv, err := os.ReadFile(filepath.Join(e.cfg.taskDir(task.Id), "resolv.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "nameserver 127.0.0.11\nnameserver 192.0.2.9\nsearch corp\noptions ndots:0 timeout:2\n"; string(resolv) != want {
		t.Errorf("resolv.conf = %q, want %q", resolv, want)
	}
	st, err := c.Status(ctx)
	if err != nil || len(st.Addresses) != 2 || st.Addresses[1] != "10.0.1.5/24" {
		t.Errorf("Status addresses = %v (%v), want the bridge's then 10.0.1.5/24", st.GetAddresses(), err)
	}
	if got := ov.log(); !slices.Equal(got, []string{"attach " + task.Id, "serving"}) {
		t.Fatalf("after start: %v", got)
	}

	// The daemon restarts: the new controller re-attaches and republishes.
	c2 := e.controller(task)
	waited := make(chan error, 1)
	go func() { waited <- c2.Wait(ctx) }()
	eventually(t, 10*time.Second, "the re-attach", func() bool {
		l := ov.log()
		return len(l) == 4 && l[2] == "attach "+task.Id && l[3] == "serving"
	})
	// A stop drains first, then the exit withdraws, then Remove detaches.
	if err := c2.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; exitCode(err) != 137 {
		t.Fatalf("Wait = %v", err)
	}
	if err := c2.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	got := ov.log()[4:]
	if i, j, k := slices.Index(got, "draining"), slices.Index(got, "gone"), slices.Index(got, "detach "+task.Id); i != 0 || j < i || k < j {
		t.Fatalf("stop and removal: %v", got)
	}
	// The bridge's egress table went with the node's last overlay task.
	if out, err := exec.Command("nft", "list", "table", "ip", datapath.EgressTable(e.ex.cfg.Bridge)).CombinedOutput(); err == nil {
		t.Fatalf("egress table still there after the last overlay task was removed:\n%s", out)
	}
}

// A swarm node's executor (Config.Overlay set at New) makes the bridge's
// egress table at once, as Docker makes docker_gwbridge at swarm init or
// join; it stays after the last overlay task and goes with RemoveEgress
// (swarm leave).
func TestEgressNodeInfrastructure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 60*time.Second)
	cfg := e.cfg
	cfg.Overlay = newFakeOverlay()
	ex, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	table := datapath.EgressTable(cfg.Bridge)
	if out, err := exec.Command("nft", "list", "table", "ip", table).CombinedOutput(); err != nil {
		t.Fatalf("no egress table after New with an overlay: %v: %s", err, out)
	}
	if err := ex.egressFor("t1"); err != nil {
		t.Fatal(err)
	}
	ex.egressDone("t1")
	if out, err := exec.Command("nft", "list", "table", "ip", table).CombinedOutput(); err != nil {
		t.Fatalf("the egress table went with the last overlay task: %v: %s", err, out)
	}
	if err := ex.RemoveEgress(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nft", "list", "table", "ip", table).CombinedOutput(); err == nil {
		t.Fatalf("egress table still there after RemoveEgress:\n%s", out)
	}
}
