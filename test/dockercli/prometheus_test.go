package dockercli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/images"
	"github.com/shoal-project/shoal/test/lab"
)

// prometheusBin is Debian's prometheus (2.42); its service is never started,
// the test runs its own process.
const prometheusBin = "/usr/bin/prometheus"

// promTarget is one entry of Prometheus' GET /api/v1/targets.
type promTarget struct {
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
	Labels           map[string]string `json:"labels"`
	ScrapePool       string            `json:"scrapePool"`
	Health           string            `json:"health"`
}

type promTargets struct {
	Active  []promTarget `json:"activeTargets"`
	Dropped []promTarget `json:"droppedTargets"`
}

// prometheus is one prometheus subprocess.
type prometheus struct {
	t      *testing.T
	addr   string
	mu     sync.Mutex
	log    bytes.Buffer
	cmd    *exec.Cmd
	exited chan struct{}
}

func (p *prometheus) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

func (p *prometheus) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// requirePrometheus fails the test under SHOAL_TEST_ROOT=1 (make test)
// when prometheus is not installed, and skips it otherwise.
func requirePrometheus(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(prometheusBin); err != nil {
		if testutil.Strict() {
			t.Fatalf("prometheus is not installed (apt-get install prometheus; do not start its service): %v", err)
		}
		t.Skipf("prometheus is not installed: %v", err)
	}
}

// startPrometheus runs prometheus with config (the text of prometheus.yml)
// on a loopback port; it is killed and its files removed when the test ends.
func startPrometheus(t *testing.T, config string) *prometheus {
	t.Helper()
	requirePrometheus(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{t: t, addr: freeAddr(t), exited: make(chan struct{})}
	p.cmd = exec.Command(prometheusBin, "--config.file", cfg, "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", p.addr)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", p.logs())
		}
	})
	return p
}

// targets reads GET /api/v1/targets.
func (p *prometheus) targets() (promTargets, error) {
	select {
	case <-p.exited:
		p.t.Fatalf("prometheus exited:\n%s", p.logs())
	default:
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.addr + "/api/v1/targets")
	if err != nil {
		return promTargets{}, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string      `json:"status"`
		Data   promTargets `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		return promTargets{}, fmt.Errorf("GET /api/v1/targets: %d %q %v", resp.StatusCode, body.Status, err)
	}
	return body.Data, nil
}

// sdErrors returns the lines prometheus logged about failed service
// discovery refreshes (the gateway's JSON not being what the docker client
// reads, or a call failing).
func (p *prometheus) sdErrors() []string {
	var out []string
	for _, l := range strings.Split(p.logs(), "\n") {
		if (strings.Contains(l, "level=error") || strings.Contains(l, "level=warn")) && (strings.Contains(l, "discovery") || strings.Contains(l, "dockerswarm")) {
			out = append(out, l)
		}
	}
	return out
}

// pool returns the active targets of one scrape pool by the value of the
// label key (__address__, or the node ID), with their __meta_dockerswarm_
// labels only. A key two targets share is marked with the label "duplicate"
// (which no expectation has).
func (tg promTargets) pool(name, key string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, t := range tg.Active {
		if t.ScrapePool != name {
			continue
		}
		meta := map[string]string{}
		for k, v := range t.DiscoveredLabels {
			if strings.HasPrefix(k, swarmMeta) {
				meta[k] = v
			}
		}
		if _, dup := out[t.DiscoveredLabels[key]]; dup {
			meta["duplicate"] = "true"
		}
		out[t.DiscoveredLabels[key]] = meta
	}
	return out
}

const swarmMeta = "__meta_dockerswarm_"

// diffTargets says how have (address → labels) differs from want.
func diffTargets(pool string, have, want map[string]map[string]string) error {
	var errs []string
	for addr, wl := range want {
		hl, ok := have[addr]
		if !ok {
			errs = append(errs, fmt.Sprintf("no target %s (want %v)", addr, wl))
			continue
		}
		for k, v := range wl {
			if hv, ok := hl[k]; !ok || hv != v {
				errs = append(errs, fmt.Sprintf("%s: %s is %q (set: %v), want %q", addr, k, hv, ok, v))
			}
		}
		for k, v := range hl {
			if _, ok := wl[k]; !ok {
				errs = append(errs, fmt.Sprintf("%s: unexpected label %s=%q", addr, k, v))
			}
		}
	}
	for addr, hl := range have {
		if _, ok := want[addr]; !ok {
			errs = append(errs, fmt.Sprintf("unexpected target %s %v", addr, hl))
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("%s job: %d targets, want %d:\n%s", pool, len(have), len(want), strings.Join(errs, "\n"))
	}
	return nil
}

// swarmNetwork is what `docker network inspect` says of one network.
type swarmNetwork struct {
	id, name, scope   string
	ingress, internal bool
	subnet            netip.Prefix
	labels            map[string]string
}

// meta are the network labels Prometheus puts on a target in it.
func (n swarmNetwork) meta() map[string]string {
	m := map[string]string{swarmMeta + "network_id": n.id, swarmMeta + "network_name": n.name, swarmMeta + "network_scope": n.scope,
		swarmMeta + "network_ingress": strconv.FormatBool(n.ingress), swarmMeta + "network_internal": strconv.FormatBool(n.internal)}
	for k, v := range n.labels {
		m[swarmMeta+"network_label_"+sanitize(k)] = v
	}
	return m
}

// sanitize is Prometheus' label name sanitizing: every character outside
// [a-zA-Z0-9_] becomes _.
func sanitize(s string) string {
	return regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(s, "_")
}

func join(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}

// swarmView is the swarm as the docker CLI shows it, and the addresses the
// tasks' containers have (which they print at start).
type swarmView struct {
	nodes    map[string]swarmNode    // by ID
	networks map[string]swarmNetwork // by name
	services map[string]map[string]string
	vips     map[string][]struct{ NetworkID, Addr string }
	images   map[string]string
	updating map[string]string // the update state of services that have one
	tasks    []swarmTask
}

type swarmTask struct {
	id, service, slot, node, containerID string
	ips                                  []netip.Addr // the container's IPv4 addresses but loopback
}

type swarmNode struct {
	labels map[string]string // the node labels every task target carries
	only   map[string]string // and those only the nodes role adds
	addr   string            // its address (without port)
}

var (
	ipLine   = regexp.MustCompile(`(?m)^\S+\.(\w+)@\S+\s+\| \d+: \S+\s+inet ([0-9.]+)/\d+`)
	nodeLine = regexp.MustCompile(`^(\w+)\|(\S+)\|Ready\|Active\|(Leader|)\|(.+)$`)
)

// nodeAt is where a node of the test runs: its advertised address
// (host:port) and its host's name.
type nodeAt struct{ addr, hostname string }

// view reads the swarm through the docker CLI on the manager d (the
// leader). addrs are the nodes by ID. services are the services' names; the
// tasks are their running ones.
func view(t *testing.T, d *daemon, addrs map[string]nodeAt, services ...string) swarmView {
	t.Helper()
	v := swarmView{nodes: map[string]swarmNode{}, networks: map[string]swarmNetwork{}, services: map[string]map[string]string{},
		vips: map[string][]struct{ NetworkID, Addr string }{}, images: map[string]string{}, updating: map[string]string{}}
	arch, err := exec.Command("uname", "-m").Output()
	if err != nil {
		t.Fatal(err)
	}
	out := strings.TrimSpace(d.mustDocker("node", "ls", "--format", "{{.ID}}|{{.Hostname}}|{{.Status}}|{{.Availability}}|{{.ManagerStatus}}|{{.EngineVersion}}"))
	for _, l := range strings.Split(out, "\n") {
		m := nodeLine.FindStringSubmatch(l)
		if m == nil || addrs[m[1]].addr == "" {
			t.Fatalf("docker node ls: %q is not one of the nodes %v, ready and active", l, addrs)
		}
		if m[2] != addrs[m[1]].hostname {
			t.Errorf("docker node ls shows hostname %q, the host is %q", m[2], addrs[m[1]].hostname)
		}
		n := swarmNode{only: map[string]string{swarmMeta + "node_engine_version": m[4]}}
		n.addr, _, _ = net.SplitHostPort(addrs[m[1]].addr)
		role := "worker"
		if m[3] == "Leader" {
			role = "manager"
			maps.Copy(n.only, map[string]string{swarmMeta + "node_manager_leader": "true", swarmMeta + "node_manager_reachability": "reachable",
				swarmMeta + "node_manager_address": addrs[m[1]].addr})
		}
		n.labels = map[string]string{swarmMeta + "node_id": m[1], swarmMeta + "node_hostname": m[2], swarmMeta + "node_status": "ready",
			swarmMeta + "node_availability": "active", swarmMeta + "node_role": role, swarmMeta + "node_address": n.addr,
			swarmMeta + "node_platform_os": runtime.GOOS, swarmMeta + "node_platform_architecture": strings.TrimSpace(string(arch))}
		var nodeLabels map[string]string
		if err := json.Unmarshal([]byte(d.mustDocker("node", "inspect", "--format", "{{json .Spec.Labels}}", m[1])), &nodeLabels); err != nil {
			t.Fatal(err)
		}
		for k, l := range nodeLabels {
			n.labels[swarmMeta+"node_label_"+sanitize(k)] = l
		}
		v.nodes[m[1]] = n
	}
	if len(v.nodes) != len(addrs) {
		t.Fatalf("docker node ls shows %d nodes, want %d:\n%s", len(v.nodes), len(addrs), out)
	}

	for _, l := range strings.Split(strings.TrimSpace(d.mustDocker("network", "ls", "--format", "{{.Name}}")), "\n") {
		var n struct {
			ID, Name, Scope   string
			Ingress, Internal bool
			IPAM              struct{ Config []struct{ Subnet string } }
			Labels            map[string]string
		}
		if err := json.Unmarshal([]byte(d.mustDocker("network", "inspect", "--format", "{{json .}}", l)), &n); err != nil || len(n.IPAM.Config) != 1 {
			t.Fatalf("network inspect %s: %v %+v", l, err, n)
		}
		sn, err := netip.ParsePrefix(n.IPAM.Config[0].Subnet)
		if err != nil {
			t.Fatal(err)
		}
		v.networks[n.Name] = swarmNetwork{id: n.ID, name: n.Name, scope: n.Scope, ingress: n.Ingress, internal: n.Internal, subnet: sn, labels: n.Labels}
	}

	for _, s := range services {
		var svc struct {
			ID   string
			Spec struct {
				Name         string
				Labels       map[string]string
				Mode         struct{ Global *struct{} }
				TaskTemplate struct{ ContainerSpec struct{ Image string } }
			}
			Endpoint struct {
				VirtualIPs []struct{ NetworkID, Addr string }
			}
			UpdateStatus *struct{ State string }
		}
		if err := json.Unmarshal([]byte(d.mustDocker("service", "inspect", "--format", "{{json .}}", s)), &svc); err != nil {
			t.Fatal(err)
		}
		mode := "replicated"
		if svc.Spec.Mode.Global != nil {
			mode = "global"
		}
		sl := map[string]string{swarmMeta + "service_id": svc.ID, swarmMeta + "service_name": s, swarmMeta + "service_mode": mode}
		for k, l := range svc.Spec.Labels {
			sl[swarmMeta+"service_label_"+sanitize(k)] = l
		}
		v.services[s], v.vips[s], v.images[s] = sl, svc.Endpoint.VirtualIPs, svc.Spec.TaskTemplate.ContainerSpec.Image
		if svc.UpdateStatus != nil {
			v.updating[s] = svc.UpdateStatus.State
		}

		ips := map[string][]netip.Addr{}
		for _, m := range ipLine.FindAllStringSubmatch(d.mustDocker("service", "logs", "--no-trunc", s), -1) {
			if a := netip.MustParseAddr(m[2]); !a.IsLoopback() {
				ips[m[1]] = append(ips[m[1]], a)
			}
		}
		out := d.mustDocker("service", "ps", "--no-trunc", "--filter", "desired-state=running", "--format", "{{.ID}}|{{.Name}}|{{.CurrentState}}", s)
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Split(l, "|")
			if len(f) != 3 || !strings.HasPrefix(f[2], "Running ") {
				t.Fatalf("docker service ps %s: %q is not a running task", s, l)
			}
			slot := "0" // a global service's tasks have none
			if mode == "replicated" {
				slot = strings.TrimPrefix(f[1], s+".")
			}
			node, cid, _ := strings.Cut(strings.TrimSpace(d.mustDocker("inspect", "--type", "task", "--format", "{{.NodeID}} {{.Status.ContainerStatus.ContainerID}}", f[0])), " ")
			v.tasks = append(v.tasks, swarmTask{id: f[0], service: s, slot: slot, node: node, containerID: cid, ips: ips[f[0]]})
		}
	}
	return v
}

// addrIn returns the one address of ips in the network's subnet.
func addrIn(t *testing.T, ips []netip.Addr, n swarmNetwork) netip.Addr {
	t.Helper()
	var in []netip.Addr
	for _, a := range ips {
		if n.subnet.Contains(a) {
			in = append(in, a)
		}
	}
	if len(in) != 1 {
		t.Fatalf("the task's container has %v in %s (%s), want one address: its interfaces are %v", in, n.name, n.subnet, ips)
	}
	return in[0]
}

// promService is how the test creates a service: what Prometheus derives
// its targets from.
type promService struct {
	port            string   // the published TCP port, if any
	mode            string   // its publish mode
	networks        []string // the overlay networks its tasks join
	containerLabels map[string]string
}

// want returns the targets Prometheus should derive from v (address →
// __meta_dockerswarm_ labels) for each role.
func (v swarmView) want(t *testing.T, specs map[string]promService) (tasks, services, nodes map[string]map[string]string) {
	t.Helper()
	tasks, services = map[string]map[string]string{}, map[string]map[string]string{}
	for _, tk := range v.tasks {
		s := specs[tk.service]
		common := join(map[string]string{swarmMeta + "task_id": tk.id, swarmMeta + "task_slot": tk.slot, swarmMeta + "task_state": "running",
			swarmMeta + "task_desired_state": "running", swarmMeta + "task_container_id": tk.containerID}, v.services[tk.service], v.nodes[tk.node].labels)
		if tk.containerID == "" {
			t.Fatalf("task %s has no container ID", tk.id)
		}
		for k, l := range s.containerLabels {
			common[swarmMeta+"container_label_"+sanitize(k)] = l
		}
		// Without a published port, the address gets the configured port
		// (9100) and no publish mode.
		mode, port := map[string]string{swarmMeta + "task_port_publish_mode": s.mode}, s.port
		if s.port == "" {
			mode, port = nil, "9100"
		}
		if s.mode == "host" {
			// The task's port status: the port on its node's address.
			tasks[net.JoinHostPort(v.nodes[tk.node].addr, s.port)] = join(common, mode)
		}
		for _, name := range s.networks {
			n := v.networks[name]
			tasks[net.JoinHostPort(addrIn(t, tk.ips, n).String(), port)] = join(common, n.meta(), mode)
		}
	}
	for name, s := range specs {
		if len(v.vips[name]) != len(s.networks) {
			t.Fatalf("service %s has the virtual IPs %v, want one on each of %v", name, v.vips[name], s.networks)
		}
		for _, vip := range v.vips[name] {
			var n swarmNetwork
			for _, cand := range v.networks {
				if cand.id == vip.NetworkID {
					n = cand
				}
			}
			p, err := netip.ParsePrefix(vip.Addr)
			if err != nil || !n.subnet.Contains(p.Addr()) || !slices.Contains(s.networks, n.name) {
				t.Fatalf("service %s: virtual IP %s on network %s (%s), want one in %v", name, vip.Addr, vip.NetworkID, n.subnet, s.networks)
			}
			l := join(v.services[name], n.meta(), map[string]string{swarmMeta + "service_task_container_image": v.images[name]})
			port := "80" // the services job's default
			if s.port != "" {
				port = s.port
				l[swarmMeta+"service_endpoint_port_publish_mode"] = s.mode
			}
			if u, ok := v.updating[name]; ok {
				l[swarmMeta+"service_updating_status"] = u
			}
			services[net.JoinHostPort(p.Addr().String(), port)] = l
		}
	}
	// By node ID.
	nodes = map[string]map[string]string{}
	for id, n := range v.nodes {
		nodes[id] = join(n.labels, n.only)
	}
	return tasks, services, nodes
}

// swarmSDConfig is a prometheus.yml with a job per role of
// dockerswarm_sd_configs on the Engine API socket sock, as
// docs/engine-api.md shows it. The tasks job keeps the tasks meant to run,
// as Prometheus' documentation advises; check fails on a dropped target (a
// task that is not meant to run has freed its addresses: it has no target).
func swarmSDConfig(sock string) string {
	return fmt.Sprintf(`global:
  scrape_interval: 5s
  scrape_timeout: 2s
scrape_configs:
  - job_name: tasks
    dockerswarm_sd_configs:
      - host: %[1]s
        role: tasks
        port: 9100
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__meta_dockerswarm_task_desired_state]
        regex: running
        action: keep
  - job_name: services
    dockerswarm_sd_configs:
      - host: %[1]s
        role: services
        refresh_interval: 1s
  - job_name: nodes
    dockerswarm_sd_configs:
      - host: %[1]s
        role: nodes
        port: 9323
        refresh_interval: 1s
`, sock)
}

// swarmTest is one swarm under Prometheus' eye: the manager m (the leader)
// and the nodes' addresses by ID.
type swarmTest struct {
	t     *testing.T
	m     *daemon
	addrs map[string]nodeAt
	specs map[string]promService
	p     *prometheus
}

// converged waits until docker service ls shows each of want ("web 3/3")
// and every running task has printed its addresses.
func (s *swarmTest) converged(want ...string) {
	s.t.Helper()
	testutil.EventuallyErr(s.t, 60*time.Second, 250*time.Millisecond, func() error {
		out, err := s.m.docker("service", "ls", "--format", "{{.Name}} {{.Replicas}}")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		for _, w := range want {
			if !slices.Contains(strings.Split(out, "\n"), w) {
				return fmt.Errorf("service ls lacks %q:\n%s", w, out)
			}
		}
		for name := range s.specs {
			running := strings.Count(s.m.mustDocker("service", "ps", "-q", "--filter", "desired-state=running", name), "\n")
			if logged := len(ipLine.FindAllString(s.m.mustDocker("service", "logs", "--no-trunc", name), -1)); logged < running {
				return fmt.Errorf("%s: %d running tasks, %d address lines in the logs", name, running, logged)
			}
		}
		return nil
	}, "the services converge to %v", want)
}

// check waits until Prometheus' targets are those the swarm's state gives,
// and fails on discovery errors in its log. It returns the targets.
func (s *swarmTest) check(what string) promTargets {
	s.t.Helper()
	v := view(s.t, s.m, s.addrs, slices.Sorted(maps.Keys(s.specs))...)
	wantTasks, wantServices, wantNodes := v.want(s.t, s.specs)
	var tg promTargets
	testutil.EventuallyErr(s.t, 30*time.Second, 500*time.Millisecond, func() error {
		var err error
		if tg, err = s.p.targets(); err != nil {
			return err
		}
		if len(tg.Dropped) != 0 {
			return fmt.Errorf("dropped targets: %+v", tg.Dropped)
		}
		return errors.Join(diffTargets("tasks", tg.pool("tasks", "__address__"), wantTasks),
			diffTargets("services", tg.pool("services", "__address__"), wantServices),
			diffTargets("nodes", tg.pool("nodes", swarmMeta+"node_id"), wantNodes))
	}, "prometheus discovers %s", what)
	if errs := s.p.sdErrors(); len(errs) > 0 {
		s.t.Errorf("prometheus logged discovery errors:\n%s", strings.Join(errs, "\n"))
	}
	return tg
}

// Each task prints its addresses first: the tests check the targets'
// addresses against them.
const (
	printAddrs = "ip -o -4 addr; "
	httpdCmd   = printAddrs + "mkdir -p /www && echo shoal_up 1 > /www/metrics && exec httpd -f -p 8080 -h /www"
)

// promLab starts a swarm of n shoald hosts in a lab, each in its own
// network namespace (so that the overlay networks, gossip and ports of
// tests running beside never meet them), with the busybox test image in a
// registry the hosts reach: h1 inits the swarm, the others join as
// workers. It returns the lab, a docker CLI handle per host and the image.
func promLab(t *testing.T, n int) (*lab.Lab, []*daemon, string) {
	t.Helper()
	requirePrometheus(t)
	testutil.RequiresContainerd(t) // and root, for the lab's namespaces
	l := lab.New(t, lab.Config{Hosts: n, Name: "prom", ShoaldPath: lab.BuildShoald(t)})
	// The hosts pull from Outside; the test pushes over loopback.
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	ln, err := l.Outside.Listen("tcp", ":5000")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	local := httptest.NewServer(h)
	t.Cleanup(local.Close)
	images.PushTest(t, strings.TrimPrefix(local.URL, "http://"), images.Busybox)
	reg := l.Outside.Addr.String() + ":5000"
	if err := l.StartAll("--insecure-registry", reg); err != nil {
		t.Fatal(err)
	}
	// The docker CLI reaches each host's Engine API socket (next to its
	// control socket) from here: unix sockets cross network namespaces.
	var ds []*daemon
	for _, h := range l.Hosts {
		dir := filepath.Dir(h.ControlSocket)
		ds = append(ds, &daemon{t: t, cli: docker28, dir: dir, addr: h.APIAddr,
			dockerEnv: append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(dir, "docker-config"), "DOCKER_HOST=", "DOCKER_CONTEXT=")})
	}
	m := ds[0]
	m.mustDocker("swarm", "init", "--listen-addr", m.addr, "--advertise-addr", m.addr)
	token := strings.TrimSpace(m.mustDocker("swarm", "join-token", "-q", "worker"))
	for _, w := range ds[1:] {
		w.mustDocker("swarm", "join", "--token", token, "--listen-addr", w.addr, "--advertise-addr", w.addr, m.addr)
	}
	testutil.EventuallyErr(t, 60*time.Second, 200*time.Millisecond, func() error {
		out := m.mustDocker("node", "ls", "--format", "{{.Status}}")
		if strings.Count(out, "Ready") != n {
			return fmt.Errorf("docker node ls:\n%s", out)
		}
		return nil
	}, "the %d nodes are ready", n)
	return l, ds, images.Ref(reg, images.Busybox)
}

func nodeID(d *daemon) string {
	return strings.TrimSpace(d.mustDocker("info", "--format", "{{.Swarm.NodeID}}"))
}

// TestPrometheusSwarmDiscovery: Debian's prometheus with
// dockerswarm_sd_configs on the Engine API socket finds one target per
// running task and network address (and per host-mode port), one per
// service virtual IP and one per node, with the labels Docker's data
// gives, and follows a scale down and a rolling update.
func TestPrometheusSwarmDiscovery(t *testing.T) {
	l, ds, busybox := promLab(t, 1)
	d := ds[0]
	id := nodeID(d)
	d.mustDocker("node", "update", "--label-add", "rack=r1", "--label-add", "disk.type=ssd", id)
	d.mustDocker("network", "create", "-d", "overlay", "--label", "team=ops", "mon")
	s := &swarmTest{t: t, m: d, addrs: map[string]nodeAt{id: {d.addr, l.Host(1).Name}}, specs: map[string]promService{
		"web":   {port: "8080", mode: "ingress", networks: []string{"mon", "ingress"}, containerLabels: map[string]string{"tier": "front"}},
		"agent": {port: "19100", mode: "host", networks: []string{"mon"}},
	}}
	d.mustDocker("service", "create", "-d", "--name", "web", "--replicas", "3", "--no-resolve-image", "--network", "mon",
		"-p", "8080:8080", "--label", "prometheus.job=web", "--container-label", "tier=front", busybox, "sh", "-c", httpdCmd)
	d.mustDocker("service", "create", "-d", "--name", "agent", "--mode", "global", "--no-resolve-image", "--network", "mon",
		"--publish", "mode=host,published=19100,target=9100", busybox, "sh", "-c", printAddrs+"exec sleep 3600")
	s.converged("web 3/3", "agent 1/1")
	s.p = startPrometheus(t, swarmSDConfig("unix://"+d.dockerSocket()))

	// Two addresses (ingress, mon) per web task, the agent's port on the
	// node and its address on mon.
	if tg := s.check("3 web tasks and the agent"); len(tg.pool("tasks", "__address__")) != 3*2+2 {
		t.Fatalf("tasks targets: %v", tg.pool("tasks", "__address__"))
	}
	// The docker CLI reads the same port status.
	if out := d.mustDocker("service", "ps", "--format", "{{.Ports}}", "agent"); strings.TrimSpace(out) != "*:19100->9100/tcp" {
		t.Errorf("docker service ps agent shows the ports %q", out)
	}

	d.mustDocker("service", "scale", "-d", "web=1")
	s.converged("web 1/1", "agent 1/1")
	if tg := s.check("the web task left after a scale to 1"); len(tg.pool("tasks", "__address__")) != 2+2 {
		t.Fatalf("tasks targets after the scale down: %v", tg.pool("tasks", "__address__"))
	}

	// An update replaces the task; the old one stays in the history, shut
	// down, without addresses (freed, as Docker's are): no target.
	running := func() string {
		return strings.TrimSpace(d.mustDocker("service", "ps", "-q", "--no-trunc", "--filter", "desired-state=running", "web"))
	}
	old := running()
	d.mustDocker("service", "update", "-d", "--env-add", "COLOR=blue", "web")
	testutil.EventuallyErr(t, 60*time.Second, 250*time.Millisecond, func() error {
		out := d.mustDocker("service", "ps", "--format", "{{.ID}} {{.DesiredState}} {{.CurrentState}}", "web")
		if cur := running(); cur == old || strings.Contains(cur, "\n") || !strings.Contains(out, "Shutdown Shutdown") {
			return fmt.Errorf("docker service ps web (the old task %s):\n%s", old, out)
		}
		return nil
	}, "the updated web task replaces the old one")
	s.converged("web 1/1", "agent 1/1")
	s.check("the updated web task and not the one it replaced")
}

// TestPrometheusSwarmDiscoveryTwoNodes: through the manager's socket,
// Prometheus finds the tasks on both nodes of a two-node swarm (a manager
// and a worker), each task with its own node's labels, and both nodes.
func TestPrometheusSwarmDiscoveryTwoNodes(t *testing.T) {
	l, ds, busybox := promLab(t, 2)
	m, w := ds[0], ds[1]
	managerID, workerID := nodeID(m), nodeID(w)
	m.mustDocker("node", "update", "--label-add", "zone=b", workerID)
	m.mustDocker("network", "create", "-d", "overlay", "mon")
	s := &swarmTest{t: t, m: m, addrs: map[string]nodeAt{managerID: {m.addr, l.Host(1).Name}, workerID: {w.addr, l.Host(2).Name}},
		specs: map[string]promService{"web": {networks: []string{"mon"}}}}
	// No published port: the targets are the tasks' addresses with the
	// configured port (9100), on every node.
	m.mustDocker("service", "create", "-d", "--name", "web", "--replicas", "4", "--no-resolve-image", "--network", "mon", busybox, "sh", "-c", httpdCmd)
	s.converged("web 4/4")
	s.p = startPrometheus(t, swarmSDConfig("unix://"+m.dockerSocket()))
	perNode := map[string]int{}
	for _, l := range s.check("4 tasks on 2 nodes").pool("tasks", "__address__") {
		perNode[l[swarmMeta+"node_id"]]++
	}
	if len(perNode) != 2 || perNode[managerID]+perNode[workerID] != 4 {
		t.Fatalf("tasks targets per node: %v (manager %s, worker %s)", perNode, managerID, workerID)
	}

	// On the worker's socket, discovery fails with Docker's words and
	// finds nothing.
	pw := startPrometheus(t, swarmSDConfig("unix://"+w.dockerSocket()))
	testutil.EventuallyErr(t, 30*time.Second, 500*time.Millisecond, func() error {
		for _, role := range []string{"tasks", "services", "nodes"} {
			if !slices.ContainsFunc(pw.sdErrors(), func(l string) bool {
				return strings.Contains(l, "Unable to refresh target groups") && strings.Contains(l, "This node is not a swarm manager") &&
					strings.Contains(l, "config="+role+" ")
			}) {
				return fmt.Errorf("no %s refresh error in the log:\n%s", role, pw.logs())
			}
		}
		return nil
	}, "prometheus on the worker's socket logs the refresh errors")
	if tg, err := pw.targets(); err != nil || len(tg.Active)+len(tg.Dropped) != 0 {
		t.Errorf("targets through the worker: %v %+v", err, tg)
	}
}
