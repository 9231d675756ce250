package lab_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/lab"
)

// nsDiag logs a task namespace's addresses, routes and nftables ruleset.
func nsDiag(t testing.TB, name string, ns taskNS) {
	t.Helper()
	for _, argv := range [][]string{{"ip", "-br", "addr"}, {"ip", "route"}, {"nft", "list", "ruleset"}} {
		out, err := ns.exec(argv...)
		t.Logf("%s: %s: %v\n%s", name, strings.Join(argv, " "), err, out)
	}
}

// echo sends a line from ns to addr over network and expects it back (1 s).
func echo(ns taskNS, network, addr string) error {
	conn, err := ns.dial(network, addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	msg := "hello over " + network + "\n"
	if _, err := io.WriteString(conn, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return fmt.Errorf("%s echo from %s: %w", network, addr, err)
	}
	if string(buf) != msg {
		return fmt.Errorf("%s echo from %s: %q", network, addr, buf)
	}
	return nil
}

// hostMTU is the MTU of h's eth0, the lab's underlay.
func hostMTU(t testing.TB, h *lab.Host) int {
	t.Helper()
	ifc, err := inNetnsIface(h.Path(), "eth0")
	if err != nil {
		t.Fatal(err)
	}
	return ifc.MTU
}

func inNetnsIface(path, name string) (*net.Interface, error) {
	var ifc *net.Interface
	err := inNetns(path, func() error {
		var err error
		ifc, err = net.InterfaceByName(name)
		return err
	})
	return ifc, err
}

// pollRunning waits until service has n running tasks and none other meant to run.
func (c *ovCluster) pollRunning(service string, n int, within time.Duration) error {
	return lab.Poll(within, func() error {
		all, err := c.allTasks(context.Background())
		if err != nil {
			return err
		}
		run, other := 0, 0
		for _, tk := range all {
			if tk.Service != service || tk.Desired != api.TaskState_RUNNING {
				continue
			}
			if tk.State == api.TaskState_RUNNING {
				run++
			} else {
				other++
			}
		}
		if run != n || other != 0 {
			return fmt.Errorf("%s: %d running, %d not yet, want %d", service, run, other, n)
		}
		return nil
	})
}

// noLiveBut checks that no task of service but keep may still hold a container.
func (c *ovCluster) noLiveBut(service string, keep []ovTask) error {
	all, err := c.allTasks(context.Background())
	if err != nil {
		return err
	}
	for _, tk := range all {
		if tk.Service == service && tk.live() && !slices.ContainsFunc(keep, func(k ovTask) bool { return k.ID == tk.ID }) {
			return fmt.Errorf("task still live: %v", tk)
		}
	}
	return nil
}

// noLiveTasks checks that no task may still hold a container.
func (c *ovCluster) noLiveTasks() error {
	all, err := c.allTasks(context.Background())
	if err != nil {
		return err
	}
	for _, tk := range all {
		if tk.live() {
			return fmt.Errorf("task still live: %v", tk)
		}
	}
	return nil
}

// waitGone watches, from each given client namespace in parallel, until none of ips is in name's DNS
// answer nor a dnat target of the namespace's nftables rules (the VIP backends), and returns how long that
// took for each node (-1: not within the bound).
func (c *ovCluster) waitGone(t testing.TB, clients map[string]taskNS, ips []netip.Addr, name string, within time.Duration) map[string]time.Duration {
	t.Helper()
	start := time.Now()
	var mu sync.Mutex
	res := map[string]time.Duration{}
	var wg sync.WaitGroup
	for node, ns := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := time.Duration(-1)
			var last string
			for time.Since(start) < within {
				a, err := ns.lookup(name)
				inDNS := err != nil || slices.ContainsFunc(a.Addrs, func(x netip.Addr) bool { return slices.Contains(ips, x) })
				backends, rerr := ns.natAddrs()
				inVIP := rerr != nil || slices.ContainsFunc(ips, func(x netip.Addr) bool { return slices.Contains(backends, x) })
				if !inDNS && !inVIP {
					d = time.Since(start)
					break
				}
				last = fmt.Sprintf("dns %v %v, VIP backends %v %v", a.Addrs, err, backends, rerr)
				time.Sleep(20 * time.Millisecond)
			}
			if d < 0 {
				t.Logf("client on %s, %v: last seen %s", node, ips, last)
			}
			mu.Lock()
			res[node] = d
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res
}

// discoveryCorrect checks, from a task on appnet on every node, that web resolves to the VIP, tasks.web to
// exactly the web tasks that serve, and that the VIP rules hold every serving task and no other web task
// address. A task serves when the managers want it running and its container runs (containerd's view:
// right after a heal the managers may not have heard from a node yet, while its containers run on).
func (c *ovCluster) discoveryCorrect(vip netip.Addr) error {
	// The cluster may still be converging (tasks replaced after a heal): what serves is read before and
	// after the answers. A task serving in both must be in them; one serving in neither must not.
	before, err := c.servingSnapshot()
	if err != nil {
		return err
	}
	type view struct {
		node     string
		dns      []netip.Addr
		backends []netip.Addr
	}
	var views []view
	for node, tk := range before.askFrom {
		ns, err := c.netns(tk)
		if err != nil {
			return err
		}
		a, err := ns.lookup("web")
		if err != nil || addrSet(a.Addrs) != vip.String() {
			return fmt.Errorf("%s: web = %v %v, want %s", node, a.Addrs, err, vip)
		}
		if a, err = ns.lookup("tasks.web"); err != nil {
			return fmt.Errorf("%s: tasks.web: %w", node, err)
		}
		backends, err := ns.natAddrs()
		if err != nil {
			return err
		}
		views = append(views, view{node, a.Addrs, backends})
	}
	after, err := c.servingSnapshot()
	if err != nil {
		return err
	}
	var must, may []netip.Addr
	for _, ip := range before.serving {
		if slices.Contains(after.serving, ip) {
			must = append(must, ip)
		}
	}
	may = append(append(may, before.serving...), after.serving...)
	for _, v := range views {
		for _, ip := range must {
			if !slices.Contains(v.dns, ip) {
				return fmt.Errorf("%s: tasks.web = [%s] lacks serving task %s", v.node, addrSet(v.dns), ip)
			}
			if !slices.Contains(v.backends, ip) {
				return fmt.Errorf("%s: serving task %s is no VIP backend", v.node, ip)
			}
		}
		for _, ip := range v.dns {
			if !slices.Contains(may, ip) {
				return fmt.Errorf("%s: tasks.web = [%s], serving [%s]: extra %s", v.node, addrSet(v.dns), addrSet(must),
					describeAddr(after.all, after.running, ip))
			}
		}
		for _, ip := range append(before.other, after.other...) {
			if slices.Contains(v.backends, ip) && !slices.Contains(may, ip) {
				return fmt.Errorf("%s: %s is still a VIP backend", v.node, describeAddr(after.all, after.running, ip))
			}
		}
	}
	return nil
}

// servingView is the cluster at one moment, for discoveryCorrect.
type servingView struct {
	all     []ovTask
	running map[string]bool   // container (task) IDs running on their node
	serving []netip.Addr      // web tasks the managers want running whose container runs
	other   []netip.Addr      // other web task addresses
	askFrom map[string]ovTask // per node, a task on appnet whose container runs
}

func (c *ovCluster) servingSnapshot() (servingView, error) {
	var v servingView
	var err error
	if v.all, err = c.allTasks(context.Background()); err != nil {
		return v, err
	}
	v.running = map[string]bool{}
	for _, h := range c.l.Hosts {
		out, err := ctr(h, "tasks", "ls")
		if err != nil {
			return v, err
		}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[2] == "RUNNING" {
				v.running[f[0]] = true
			}
		}
	}
	// Per node, a task on appnet to ask from: the one ranked best of a client the managers want running, a
	// web task they want running, any container on appnet still running (after a heal the managers may
	// have replaced a node's tasks before the node hears of it; its DNS server must answer right anyway).
	rank := func(tk ovTask) int {
		switch {
		case tk.Service == "client" && tk.Desired == api.TaskState_RUNNING:
			return 3
		case tk.Desired == api.TaskState_RUNNING:
			return 2
		}
		return 1
	}
	v.askFrom = map[string]ovTask{}
	for _, tk := range v.all {
		ip, ok := tk.Addrs["appnet"]
		if ok && v.running[tk.ID] {
			if cur, have := v.askFrom[tk.Node]; !have || rank(tk) > rank(cur) {
				v.askFrom[tk.Node] = tk
			}
		}
		switch {
		case tk.Service != "web" || !ok:
		case v.running[tk.ID] && tk.Desired == api.TaskState_RUNNING:
			v.serving = append(v.serving, ip)
		default:
			v.other = append(v.other, ip)
		}
	}
	if len(v.askFrom) != len(c.l.Hosts) {
		return v, fmt.Errorf("running appnet containers (to ask from) on %d nodes only", len(v.askFrom))
	}
	return v, nil
}

// describeAddr says which tasks hold ip on appnet: service, node, state, desired state, container.
func describeAddr(all []ovTask, running map[string]bool, ip netip.Addr) string {
	var out []string
	for _, tk := range all {
		if tk.Addrs["appnet"] == ip {
			out = append(out, fmt.Sprintf("%s (%s %s on %s, %s/%s, container running %v)", ip, tk.Service, tk.ID[:12],
				tk.Node, tk.State, tk.Desired, running[tk.ID]))
		}
	}
	if len(out) == 0 {
		return ip.String() + " (no task has it)"
	}
	return strings.Join(out, ", ")
}

// hostSnapshot is what a host namespace holds that an overlay may leave behind.
type hostSnapshot struct {
	links, tables, fdb []string
	mounts             int      // nsfs mounts under the host's data dir (task and network namespaces)
	nsFiles            []string // files in DATA-DIR/*/netns/ (the executor's task and the overlay's network namespaces)
}

func (c *ovCluster) snapshotHosts(t testing.TB) map[string]hostSnapshot {
	t.Helper()
	out := map[string]hostSnapshot{}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, h := range c.l.Hosts {
		var s hostSnapshot
		if o, err := h.Exec(context.Background(), "ip", "-o", "link", "show"); err == nil {
			for _, line := range strings.Split(strings.TrimSpace(o), "\n") {
				if f := strings.Fields(line); len(f) > 1 {
					s.links = append(s.links, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
				}
			}
		}
		if o, err := h.Exec(context.Background(), "nft", "list", "tables"); err == nil {
			s.tables = strings.Split(strings.TrimSpace(o), "\n")
		}
		if o, err := h.Exec(context.Background(), "bridge", "fdb", "show"); err == nil {
			for _, line := range strings.Split(o, "\n") {
				if strings.Contains(line, " dst ") {
					s.fdb = append(s.fdb, line)
				}
			}
		}
		for _, line := range strings.Split(string(mi), "\n") {
			f := strings.Fields(line)
			if len(f) > 8 && strings.HasPrefix(f[4], h.DataDir+"/") && slices.Contains(f, "nsfs") {
				s.mounts++
			}
		}
		s.nsFiles, _ = filepath.Glob(filepath.Join(h.DataDir, "*", "netns", "*"))
		slices.Sort(s.links)
		slices.Sort(s.tables)
		out[h.Name] = s
	}
	return out
}

func (c *ovCluster) diffHosts(before, after map[string]hostSnapshot) string {
	var b strings.Builder
	for _, h := range c.l.Hosts {
		x, y := before[h.Name], after[h.Name]
		for _, l := range y.links {
			if !slices.Contains(x.links, l) {
				fmt.Fprintf(&b, "%s: link %s\n", h.Name, l)
			}
		}
		for _, tb := range y.tables {
			// The masquerade of the node-local task bridge (Docker's docker_gwbridge role) belongs to the node,
			// made when its agent starts (maybe after the first snapshot), not to a network.
			nodeEgress := slices.ContainsFunc(x.links, func(l string) bool {
				return strings.HasPrefix(l, "shoal-") && strings.HasSuffix(tb, "shoal-egress-"+l)
			})
			if !slices.Contains(x.tables, tb) && !strings.Contains(tb, "shoal_lab") && !nodeEgress {
				fmt.Fprintf(&b, "%s: nft %s\n", h.Name, tb)
			}
		}
		for _, f := range y.fdb {
			if !slices.Contains(x.fdb, f) {
				fmt.Fprintf(&b, "%s: fdb %s\n", h.Name, f)
			}
		}
		for _, f := range y.nsFiles {
			if !slices.Contains(x.nsFiles, f) {
				fmt.Fprintf(&b, "%s: namespace file %s\n", h.Name, f)
			}
		}
		if y.mounts > x.mounts {
			fmt.Fprintf(&b, "%s: %d namespace mounts under the data dir (%d before the test)\n", h.Name, y.mounts, x.mounts)
		}
		if out, err := ctr(h, "tasks", "ls", "-q"); err == nil && strings.TrimSpace(out) != "" {
			fmt.Fprintf(&b, "%s: containers still running: %s\n", h.Name, strings.Fields(out))
		}
	}
	return b.String()
}
