package lab_test

// The overlay tests (issue 10): TestOverlay (overlay_acceptance_test.go, with the longer cases in
// overlay_cases_test.go and the checks in overlay_checks_test.go) and BenchmarkOverlay
// (overlay_bench_test.go). This file: a swarm of real shoald processes on lab hosts with real containerd,
// an image registry in the lab's Outside namespace, the tasks as the managers see them;
// overlay_netns_test.go: acting from inside a task's network namespace.
//
// The tests act as the tasks themselves: they find a task's container in containerd (its id is the task
// id), take its pid's network namespace (/proc/PID/ns/net) and open sockets there from the test process
// (setns on a locked thread), or run a program there (nsenter --net). So DNS questions come from the
// task's own namespace (127.0.0.11 is the node's DNS server there), connections to a VIP go through the
// task's own nftables, and no tool is needed in the images.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/images"
	"github.com/shoal-project/shoal/test/lab"
)

// busyboxCmd keeps a busybox task running and makes it exit at once on SIGTERM (a shell's `sleep` as
// PID 1 would ignore it and cost the stop grace period on every removal).
var busyboxCmd = []string{"sh", "-c", `trap "exit 0" TERM; sleep 86400 & wait`}

// ovCluster is a formed swarm on a lab: h1 is the only manager, the others are workers.
type ovCluster struct {
	t        testing.TB
	l        *lab.Lab
	registry string // as the hosts reach it
	busybox  string
	whoami   string
	conn     *grpc.ClientConn // h1's control socket
	ctl      api.ControlClient
}

// newOvCluster builds a lab of n hosts, serves the test images from Outside, starts shoald on every host
// (with extra arguments),
// inits the swarm on h1 and joins the others as workers; it returns once `node ls` shows n Ready nodes.
func newOvCluster(t testing.TB, n int, extra ...string) *ovCluster {
	t.Helper()
	testutil.RequiresContainerd(t) // and root, for the lab's namespaces
	l := lab.New(t, lab.Config{Hosts: n, Name: "ov", ShoaldPath: lab.BuildShoald(t), ShoalPath: lab.BuildShoal(t)})
	c := &ovCluster{t: t, l: l}
	c.startRegistry()
	if err := l.StartAll(append([]string{"--insecure-registry", c.registry}, extra...)...); err != nil {
		t.Fatal(err)
	}
	h1 := l.Host(1)
	c.sh(h1, "swarm", "init", "--advertise-addr", h1.APIAddr)
	tok := strings.TrimSpace(c.sh(h1, "swarm", "join-token", "worker", "-q"))
	for _, h := range l.Hosts[1:] {
		c.sh(h, "swarm", "join", "--token", tok, "--advertise-addr", h.APIAddr, h1.APIAddr)
	}
	conn, err := grpc.NewClient("unix://"+h1.ControlSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c.conn, c.ctl = conn, api.NewControlClient(conn)
	c.waitReady(60 * time.Second)
	return c
}

// startRegistry serves one in-memory registry on Outside:5000 (for the hosts) and on loopback (to push
// from the test process), with the busybox and whoami test images.
func (c *ovCluster) startRegistry() {
	c.t.Helper()
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	ln, err := c.l.Outside.Listen("tcp", ":5000")
	if err != nil {
		c.t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	c.t.Cleanup(func() { srv.Close() })
	local := httptest.NewServer(h)
	c.t.Cleanup(local.Close)
	push := strings.TrimPrefix(local.URL, "http://")
	c.registry = c.l.Outside.Addr.String() + ":5000"
	images.PushTest(c.t, push, images.Busybox)
	images.PushTest(c.t, push, images.Whoami)
	c.busybox, c.whoami = images.Ref(c.registry, images.Busybox), images.Ref(c.registry, images.Whoami)
}

// waitReady waits until every host is a Ready node.
func (c *ovCluster) waitReady(within time.Duration) {
	c.t.Helper()
	lab.WaitFor(c.t, within, func() error {
		out, err := c.try(c.l.Host(1), "node", "ls", "--format", "{{.Hostname}} {{.Status}}")
		if err != nil {
			return err
		}
		if n := strings.Count(out, " Ready"); n != len(c.l.Hosts) {
			return fmt.Errorf("%d of %d nodes Ready:\n%s", n, len(c.l.Hosts), out)
		}
		return nil
	})
}

// sh runs the CLI on h and fails the test on error.
func (c *ovCluster) sh(h *lab.Host, args ...string) string {
	c.t.Helper()
	out, err := h.Shoal(context.Background(), args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// try runs the CLI on h, bounded by 20 s.
func (c *ovCluster) try(h *lab.Host, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return h.Shoal(ctx, args...)
}

// mgr is the host the CLI talks to.
func (c *ovCluster) mgr() *lab.Host { return c.l.Host(1) }

// hostByName is the lab host whose hostname is name (h1, h2...).
func (c *ovCluster) hostByName(name string) *lab.Host {
	for _, h := range c.l.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// ovTask is a task as the tests need it.
type ovTask struct {
	ID, Service, Node string // Node is the hostname (h1...)
	State, Desired    api.TaskState
	Err, Message      string
	Addrs             map[string]netip.Addr // network name -> address on it
}

func (t ovTask) String() string {
	return fmt.Sprintf("%s %s on %s %s/%s %v %q", t.Service, t.ID[:min(12, len(t.ID))], t.Node, t.State, t.Desired, t.Addrs, t.Err)
}

// live reports whether the task may hold its addresses: its container may exist.
func (t ovTask) live() bool { return t.State <= api.TaskState_RUNNING }

// allTasks lists every task of the cluster (all pages) with node hostnames and network names.
func (c *ovCluster) allTasks(ctx context.Context) ([]ovTask, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nodes := map[string]string{}
	var tok string
	for {
		r, err := c.ctl.ListNodes(ctx, &api.ListNodesRequest{PageToken: tok})
		if err != nil {
			return nil, err
		}
		for _, n := range r.GetNodes() {
			nodes[n.GetId()] = n.GetDescription().GetHostname()
		}
		if tok = r.GetNextPageToken(); tok == "" {
			break
		}
	}
	services := map[string]string{}
	rs, err := c.ctl.ListServices(ctx, &api.ListServicesRequest{})
	if err != nil {
		return nil, err
	}
	for _, s := range rs.GetServices() {
		services[s.GetId()] = s.GetSpec().GetAnnotations().GetName()
	}
	netNames := map[string]string{}
	rn, err := c.ctl.ListNetworks(ctx, &api.ListNetworksRequest{})
	if err != nil {
		return nil, err
	}
	for _, n := range rn.GetNetworks() {
		netNames[n.GetId()] = n.GetSpec().GetAnnotations().GetName()
	}
	var out []ovTask
	tok = ""
	for {
		r, err := c.ctl.ListTasks(ctx, &api.ListTasksRequest{PageToken: tok})
		if err != nil {
			return nil, err
		}
		for _, t := range r.GetTasks() {
			ot := ovTask{ID: t.GetId(), Service: services[t.GetServiceId()], Node: nodes[t.GetNodeId()],
				State: t.GetStatus().GetState(), Desired: t.GetDesiredState(), Err: t.GetStatus().GetErr(),
				Message: t.GetStatus().GetMessage(), Addrs: map[string]netip.Addr{}}
			if ot.Service == "" {
				ot.Service = t.GetServiceAnnotations().GetName()
			}
			for _, a := range t.GetNetworks() {
				name := a.GetNetworkName()
				if name == "" {
					name = netNames[a.GetNetworkId()]
				}
				for _, s := range a.GetAddresses() {
					if p, err := netip.ParsePrefix(s); err == nil {
						ot.Addrs[name] = p.Addr()
					}
				}
			}
			out = append(out, ot)
		}
		if tok = r.GetNextPageToken(); tok == "" {
			break
		}
	}
	return out, nil
}

// running returns the tasks of service that are running and meant to run.
func (c *ovCluster) running(service string) ([]ovTask, error) {
	all, err := c.allTasks(context.Background())
	if err != nil {
		return nil, err
	}
	var out []ovTask
	for _, t := range all {
		if t.Service == service && t.State == api.TaskState_RUNNING && t.Desired == api.TaskState_RUNNING {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node+out[i].ID < out[j].Node+out[j].ID })
	return out, nil
}

// waitRunning waits until service has exactly n running tasks and no other task meant to run, and
// returns them. On timeout it fails t with `service ps` and the hosts' log tails.
func (c *ovCluster) waitRunning(t testing.TB, service string, n int, within time.Duration) []ovTask {
	t.Helper()
	var got []ovTask
	err := lab.Poll(within, func() error {
		all, err := c.allTasks(context.Background())
		if err != nil {
			return err
		}
		got = got[:0]
		pending := 0
		for _, tk := range all {
			if tk.Service != service || tk.Desired != api.TaskState_RUNNING {
				continue
			}
			if tk.State == api.TaskState_RUNNING {
				got = append(got, tk)
			} else {
				pending++
			}
		}
		if len(got) != n || pending != 0 {
			return fmt.Errorf("%s: %d running, %d not yet, want %d", service, len(got), pending, n)
		}
		return nil
	})
	if err != nil {
		c.diagnose(t, service)
		t.Fatal(err)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Node+got[i].ID < got[j].Node+got[j].ID })
	return got
}

// diagnose logs what tells why a service is not as expected: `service ps`, the tasks' errors and every
// host's log tail.
func (c *ovCluster) diagnose(t testing.TB, services ...string) {
	t.Helper()
	for _, s := range services {
		out, err := c.try(c.mgr(), "service", "ps", "--no-trunc", s)
		t.Logf("service ps %s: %v\n%s", s, err, out)
	}
	if all, err := c.allTasks(context.Background()); err == nil {
		for _, tk := range all {
			if slices.Contains(services, tk.Service) || len(services) == 0 {
				t.Logf("task %v %s", tk, tk.Message)
			}
		}
	}
	for _, h := range c.l.Hosts {
		t.Logf("%s log tail:\n%s", h.Name, h.LogTail(25))
	}
}

// createService runs `service create -d --name name args...` and returns nothing; the caller waits.
func (c *ovCluster) createService(t testing.TB, name string, args ...string) {
	t.Helper()
	argv := append([]string{"service", "create", "-d", "--name", name}, args...)
	if _, err := c.try(c.mgr(), argv...); err != nil {
		t.Fatal(err)
	}
}

// netns returns the network namespace of a task's container: /proc/PID/ns/net of its process, found
// through containerd on the task's host.
func (c *ovCluster) netns(tk ovTask) (taskNS, error) {
	h := c.hostByName(tk.Node)
	if h == nil {
		return taskNS{}, fmt.Errorf("task %s: node %q is no lab host", tk.ID, tk.Node)
	}
	pid, err := containerPID(h, tk.ID)
	if err != nil {
		return taskNS{}, err
	}
	return taskNS{Path: fmt.Sprintf("/proc/%d/ns/net", pid), Task: tk}, nil
}

// mustNetns is netns failing t.
func (c *ovCluster) mustNetns(t testing.TB, tk ovTask) taskNS {
	t.Helper()
	ns, err := c.netns(tk)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// containerPID is the pid of the running container id in h's containerd namespace.
func containerPID(h *lab.Host, id string) (int, error) {
	out, err := ctr(h, "tasks", "ls")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == id && f[2] == "RUNNING" {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no running container %s in containerd namespace %s:\n%s", id, h.ContainerdNamespace, out)
}

// ctr runs ctr in h's containerd namespace, bounded by 10 s.
func ctr(h *lab.Host, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"-n", h.ContainerdNamespace}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr -n %s %s: %w: %s", h.ContainerdNamespace, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// serviceVIP returns the service's virtual IP on the named network, from `service inspect`.
func (c *ovCluster) serviceVIP(service, network string) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.ctl.GetService(ctx, &api.GetServiceRequest{ServiceId: service})
	if err != nil {
		return netip.Addr{}, err
	}
	nid, err := c.networkID(network)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, v := range r.GetService().GetEndpoint().GetVirtualIps() {
		if v.GetNetworkId() == nid {
			p, err := netip.ParsePrefix(v.GetAddr())
			if err != nil {
				return netip.Addr{}, fmt.Errorf("service %s: VIP %q: %w", service, v.GetAddr(), err)
			}
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("service %s has no VIP on %s: endpoint %v", service, network, r.GetService().GetEndpoint())
}

// networkID is the ID of the named network.
func (c *ovCluster) networkID(name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.ctl.GetNetwork(ctx, &api.GetNetworkRequest{NetworkId: name})
	if err != nil {
		return "", err
	}
	return r.GetNetwork().GetId(), nil
}

// inspectJSON runs `network inspect name` and decodes the first object.
func (c *ovCluster) inspectJSON(kind, name string) (map[string]any, error) {
	out, err := c.try(c.mgr(), kind, "inspect", name)
	if err != nil {
		return nil, err
	}
	var v []map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) == 0 {
		return nil, fmt.Errorf("%s inspect %s: %v: %s", kind, name, err, out)
	}
	return v[0], nil
}

// findKey returns the first value found under a key equal (ignoring case) to one of keys, depth first.
func findKey(v any, keys ...string) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			for _, want := range keys {
				if strings.EqualFold(k, want) {
					return val, true
				}
			}
		}
		for _, val := range x {
			if r, ok := findKey(val, keys...); ok {
				return r, true
			}
		}
	case []any:
		for _, val := range x {
			if r, ok := findKey(val, keys...); ok {
				return r, true
			}
		}
	}
	return nil, false
}

// addrSet formats addresses sorted, for messages and comparisons.
func addrSet(as []netip.Addr) string {
	s := slices.Clone(as)
	slices.SortFunc(s, func(x, y netip.Addr) int { return x.Compare(y) })
	s = slices.Compact(s)
	parts := make([]string, len(s))
	for i, a := range s {
		parts[i] = a.String()
	}
	return strings.Join(parts, ",")
}

// taskAddrs are the tasks' addresses on network.
func taskAddrs(ts []ovTask, network string) []netip.Addr {
	var out []netip.Addr
	for _, t := range ts {
		if a, ok := t.Addrs[network]; ok {
			out = append(out, a)
		}
	}
	return out
}
