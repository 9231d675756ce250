package cluster

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
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

// Timing of the default raft configuration (100 ms tick, ElectionTick 30;
// raft randomizes each follower's timeout to [3 s, 6 s)).
const electionTimeout = 3 * time.Second

// spec describes the swarm a test needs.
type spec struct {
	managers int      // h1..hM; h1 inits
	workers  int      // the next hosts, joined as workers
	spare    int      // further hosts started but not joined
	registry bool     // serve an image registry on the lab's Outside namespace
	args     []string // extra shoald flags for every host
}

// swarm is a formed cluster on a lab.
type swarm struct {
	t        *testing.T
	l        *lab.Lab
	managers []*lab.Host
	workers  []*lab.Host
	spare    []*lab.Host
	// registry is the image registry as the hosts reach it (Outside:5000);
	// pushHost is the same in-memory registry on the test's loopback.
	registry, pushHost string
	workerToken        string
	managerToken       string
	// args are the extra shoald flags every host runs with.
	args []string

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// newSwarm builds a lab, starts shoald on every host and forms the swarm:
// h1 inits, the managers then the workers join with their tokens. It
// returns once every member is Ready and every manager Reachable.
func newSwarm(t *testing.T, sp spec) *swarm {
	t.Helper()
	testutil.RequiresContainerd(t) // and root, for the lab's namespaces
	n := sp.managers + sp.workers + sp.spare
	l := lab.New(t, lab.Config{Hosts: n, Name: "cl", ShoaldPath: lab.BuildShoald(t), ShoalPath: lab.BuildShoal(t)})
	s := &swarm{t: t, l: l, conns: map[string]*grpc.ClientConn{}}
	t.Cleanup(s.closeConns)
	s.managers = l.Hosts[:sp.managers]
	s.workers = l.Hosts[sp.managers : sp.managers+sp.workers]
	s.spare = l.Hosts[sp.managers+sp.workers:]
	args := append([]string(nil), sp.args...)
	if sp.registry {
		s.startRegistry()
		args = append(args, "--insecure-registry", s.registry)
	}
	s.args = args
	if err := l.StartAll(args...); err != nil {
		t.Fatal(err)
	}
	h1 := s.managers[0]
	s.sh(h1, "swarm", "init", "--advertise-addr", h1.APIAddr)
	s.workerToken = strings.TrimSpace(s.sh(h1, "swarm", "join-token", "worker", "-q"))
	s.managerToken = strings.TrimSpace(s.sh(h1, "swarm", "join-token", "manager", "-q"))
	for _, h := range s.managers[1:] {
		s.join(h, s.managerToken, h1)
	}
	for _, h := range s.workers {
		s.join(h, s.workerToken, h1)
	}
	s.waitHealthy(h1, 60*time.Second)
	return s
}

// start starts h's shoald again with the swarm's flags.
func (s *swarm) start(h *lab.Host) {
	s.t.Helper()
	if err := h.Start(s.args...); err != nil {
		s.t.Fatal(err)
	}
}

// join runs `swarm join` on h through manager via.
func (s *swarm) join(h *lab.Host, token string, via *lab.Host) {
	s.t.Helper()
	s.sh(h, "swarm", "join", "--token", token, "--advertise-addr", h.APIAddr, via.APIAddr)
}

// waitHealthy waits until `node ls` on h shows every member Ready, one
// Leader and every other manager Reachable.
func (s *swarm) waitHealthy(h *lab.Host, within time.Duration) {
	s.t.Helper()
	lab.WaitFor(s.t, within, func() error {
		rows, err := s.nodeLs(h)
		if err != nil {
			return err
		}
		return s.checkHealthy(rows)
	})
}

func (s *swarm) checkHealthy(rows []nodeRow) error {
	want := len(s.managers) + len(s.workers)
	leaders, reachable := 0, 0
	ready := 0
	for _, r := range rows {
		if r.Status == "Ready" {
			ready++
		}
		switch r.ManagerStatus {
		case "Leader":
			leaders++
		case "Reachable":
			reachable++
		}
	}
	if len(rows) != want || ready != want || leaders != 1 || reachable != len(s.managers)-1 {
		return fmt.Errorf("want %d Ready nodes, 1 Leader, %d Reachable; node ls: %v", want, len(s.managers)-1, rows)
	}
	return nil
}

// sh runs the CLI on h and fails the test on error.
func (s *swarm) sh(h *lab.Host, args ...string) string {
	s.t.Helper()
	out, err := h.Shoal(context.Background(), args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// try runs the CLI on h, bounded by d.
func try(h *lab.Host, d time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return h.Shoal(ctx, args...)
}

// nodeRow is one node of `node ls`.
type nodeRow struct {
	ID, Hostname, Status, Availability, ManagerStatus string
}

func (r nodeRow) String() string {
	return fmt.Sprintf("%s/%s/%s/%q", r.Hostname, r.Status, r.Availability, r.ManagerStatus)
}

// nodeLs runs `node ls` on h (bounded by 5 s) and parses it.
func (s *swarm) nodeLs(h *lab.Host) ([]nodeRow, error) {
	out, err := try(h, 5*time.Second, "node", "ls", "--format",
		"{{.ID}}|{{.Hostname}}|{{.Status}}|{{.Availability}}|{{.ManagerStatus}}")
	if err != nil {
		return nil, err
	}
	var rows []nodeRow
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 5 {
			continue
		}
		rows = append(rows, nodeRow{f[0], f[1], f[2], f[3], f[4]})
	}
	return rows, nil
}

// leaderOf returns the host `node ls` on h shows as Leader.
func (s *swarm) leaderOf(h *lab.Host) (*lab.Host, error) {
	rows, err := s.nodeLs(h)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if r.ManagerStatus == "Leader" {
			return s.byName(r.Hostname), nil
		}
	}
	return nil, fmt.Errorf("no Leader in node ls on %s: %v", h.Name, rows)
}

func (s *swarm) byName(name string) *lab.Host {
	for _, h := range s.l.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// serviceIDs is `service ls -q` on h, sorted.
func serviceIDs(h *lab.Host) ([]string, error) {
	out, err := try(h, 5*time.Second, "service", "ls", "-q")
	if err != nil {
		return nil, err
	}
	ids := strings.Fields(out)
	sort.Strings(ids)
	return ids, nil
}

// conn is a gRPC connection to h's control socket (LocalNode, and Control
// proxied to h's own manager), kept for the test.
func (s *swarm) conn(h *lab.Host) *grpc.ClientConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.conns[h.ControlSocket]; c != nil {
		return c
	}
	c, err := grpc.NewClient("unix://"+h.ControlSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		s.t.Fatal(err)
	}
	s.conns[h.ControlSocket] = c
	return c
}

func (s *swarm) control(h *lab.Host) api.ControlClient { return api.NewControlClient(s.conn(h)) }

func (s *swarm) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// info is LocalNode.Info on h.
func (s *swarm) info(h *lab.Host) (*api.InfoResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return api.NewLocalNodeClient(s.conn(h)).Info(ctx, &api.InfoRequest{})
}

// raftMembers is the sorted node IDs of the raft members h knows.
func (s *swarm) raftMembers(h *lab.Host) ([]string, error) {
	in, err := s.info(h)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, p := range in.GetManagers() {
		ids = append(ids, p.GetNodeId())
	}
	sort.Strings(ids)
	return ids, nil
}

// sameAppliedIndex checks that the hosts' raft members have applied the
// same index. Info is answered by each node from its own raft state, while
// Control reads (service ls, node ls) are forwarded to the leader: this is
// what shows that the followers hold the same log.
func (s *swarm) sameAppliedIndex(hosts []*lab.Host) error {
	var idx []uint64
	for _, h := range hosts {
		in, err := s.info(h)
		if err != nil {
			return err
		}
		idx = append(idx, in.GetRaftAppliedIndex())
	}
	for _, i := range idx {
		if i != idx[0] || i == 0 {
			return fmt.Errorf("applied raft indexes differ: %v", idx)
		}
	}
	return nil
}

// startRegistry serves one in-memory registry on Outside:5000 (for the
// hosts) and on loopback (for pushing from the test process), and pushes the
// test images to it.
func (s *swarm) startRegistry() {
	s.t.Helper()
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	ln, err := s.l.Outside.Listen("tcp", ":5000")
	if err != nil {
		s.t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	s.t.Cleanup(func() { srv.Close() })
	local := httptest.NewServer(h)
	s.t.Cleanup(local.Close)
	s.pushHost = strings.TrimPrefix(local.URL, "http://")
	s.registry = s.l.Outside.Addr.String() + ":5000"
	images.PushTest(s.t, s.pushHost, images.Busybox)
	images.PushTest(s.t, s.pushHost, images.Whoami)
}

// image is the reference of a test image as the hosts pull it.
func (s *swarm) image(name string) string { return images.Ref(s.registry, name) }

// runningContainers lists the containers containerd runs for h.
func runningContainers(h *lab.Host) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ctr", "-n", h.ContainerdNamespace, "tasks", "ls").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ctr -n %s tasks ls: %v: %s", h.ContainerdNamespace, err, out)
	}
	var ids []string
	for _, line := range strings.Split(string(out), "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == "RUNNING" {
			ids = append(ids, f[0])
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// benchFile writes measured numbers where the lead collects them:
// $SHOAL_BENCH_DIR or $TMPDIR/shoal-bench, file <Test>.txt.
func benchFile(t *testing.T, text string) {
	dir := os.Getenv("SHOAL_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "shoal-bench")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("bench dir: %v", err)
		return
	}
	path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".txt")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Errorf("bench file: %v", err)
		return
	}
	t.Logf("measurements written to %s:\n%s", path, text)
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(p/100*float64(len(s))+0.999999) - 1
	return s[max(0, min(k, len(s)-1))]
}
