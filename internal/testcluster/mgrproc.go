package testcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// ProcOptions shape a ProcCluster. Zero values take the defaults.
type ProcOptions struct {
	// Managers is the number of managers (default 3).
	Managers int
	// Seed seeds node IDs and the cluster ID (default 1).
	Seed uint64
	// Tick is the raft tick, as shoald's --raft-tick (default raftstore's,
	// 100ms; elections after 30 ticks).
	Tick time.Duration
	// WallLimit bounds every wait of the harness (default 90s).
	WallLimit time.Duration
	// Cluster, when set, edits the ClusterSpec written at bootstrap.
	Cluster func(*api.ClusterSpec)
	// ElectionHold is each manager's manager.Config.ElectionHold (0: the
	// default; negative: calls are not held during an election).
	ElectionHold time.Duration
	// LogDir, when set, receives each manager's log at level INFO, as
	// shoald writes it: <LogDir>/<name>.log, appended across restarts.
	// Otherwise a manager logs nothing, or everything on stderr with
	// SHOAL_TESTCLUSTER_LOG.
	LogDir string
}

func (o *ProcOptions) validate() error {
	if o.Managers == 0 {
		o.Managers = 3
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.WallLimit == 0 {
		o.WallLimit = 90 * time.Second
	}
	if o.Managers < 1 || o.Tick < 0 || o.WallLimit < 0 {
		return fmt.Errorf("testcluster: ProcOptions %+v: want at least one manager and no negative durations", *o)
	}
	return nil
}

// ProcCluster is a swarm whose managers run in processes of their own
// (mgrchild.go): each has its own Go runtime, heap and garbage collector,
// as a real shoald, and the harness measures each apart (Usage). They
// talk raft over gRPC on loopback TCP, with certificates from the
// harness's CA; simulated nodes join them with AddSimNodesProcess. The
// harness reads their state through each child's probe (Status,
// CountTasks), and writes only through the Control API, except the
// objects a join records. Create it with NewProc; it stops with the test.
type ProcCluster struct {
	identity
	opts  ProcOptions
	dir   string
	admin *dialer
	http  *http.Client
	// control balances Control API calls over every manager's address.
	control *grpc.ClientConn

	mu       sync.Mutex
	managers []*ProcManager
	fleets   []*FleetProcess
	closed   bool

	crashRecord // a manager process that exited on its own
}

// ProcManager is one manager process.
type ProcManager struct {
	c      *ProcCluster
	Name   string // "m0", "m1", ...
	Addr   string // its 127.0.0.1 port, kept across restarts
	NodeID string
	cert   []byte
	key    []byte
	path   string // raft log

	mu       sync.Mutex
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	probe    string
	exited   chan struct{} // closed once the running child is waited for
	stopping bool          // its exit is expected (Kill, Stop, Close)
	pastCPU  time.Duration // the CPU of its earlier processes, up to their end
}

// NewProc starts the managers: the first bootstraps the swarm and records
// the Cluster object (root CA and join tokens, as `swarm init`), the
// others join raft through it, as `swarm join --token <manager token>`.
// Managers run no tasks (their Nodes are drained).
func NewProc(tb testing.TB, o ProcOptions) *ProcCluster {
	tb.Helper()
	if err := o.validate(); err != nil {
		tb.Fatal(err)
	}
	ca, err := pki.NewRootCA(clockwork.NewRealClock())
	if err != nil {
		tb.Fatal(err)
	}
	c := &ProcCluster{opts: o, dir: memDir(tb), http: &http.Client{}}
	c.identity.init(tb, o.Seed, ca)
	// The test's Control client stands for a user's CLI, which reaches a
	// manager through that manager's local socket (never refused while
	// it is overloaded) and from there the leader over the manager's own
	// peer connection: so it offers the peer hint too, and an overloaded
	// manager does not refuse the harness's write probes as it does an
	// agent's reconnect.
	c.admin = tcpDialer(adminName, c.issue(adminName, api.NodeRole_MANAGER), ca.Pool())
	tb.Cleanup(c.Close)
	var addrs []resolver.Address
	for i := 0; i < o.Managers; i++ {
		m := &ProcManager{c: c, Name: fmt.Sprintf("m%d", i), Addr: freePort(tb), NodeID: c.newID()}
		m.cert, m.key = c.issuePEM(m.NodeID, api.NodeRole_MANAGER)
		m.path = c.path(m.Name, "raft.db")
		c.managers = append(c.managers, m)
		addrs = append(addrs, resolver.Address{Addr: m.Addr})
	}
	r := manual.NewBuilderWithScheme("shoalproc")
	r.InitialState(resolver.State{Addresses: addrs})
	c.control, err = grpc.NewClient(r.Scheme()+":///managers", grpc.WithResolvers(r),
		grpc.WithContextDialer(c.admin.conn), grpc.WithTransportCredentials(c.admin.creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)))
	if err != nil {
		tb.Fatal(err)
	}

	first := c.managers[0]
	first.start(raftstore.Bootstrap, "")
	c.waitFor("the first manager to lead", func() error {
		if st, err := first.Status(); err != nil || !st.Leading {
			return fmt.Errorf("%s does not lead yet (%v)", first.Name, err)
		}
		return nil
	})
	c.create(c.clusterObject(o.Cluster), []*api.Node{c.managerNode(first)})
	for _, m := range c.managers[1:] {
		m.start(raftstore.JoinExisting, first.Addr)
		c.create(nil, []*api.Node{c.managerNode(m)})
	}
	c.Leader()
	return c
}

// freePort picks a free loopback port (the child listens on it, retried:
// another process may take it in between, on loopback a rare event).
func freePort(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (c *ProcCluster) path(parts ...string) string { return makePath(c.tb, c.dir, parts...) }

// managerNode is a manager's Node, drained: managers here run no agent.
func (c *ProcCluster) managerNode(m *ProcManager) *api.Node {
	n := nodeObject(m.NodeID, m.Name, api.NodeRole_MANAGER)
	n.Spec.Availability = api.Availability_DRAIN
	return n
}

// waitFor polls fn every 50ms until it returns nil, failing the test after
// ProcOptions.WallLimit with fn's last error.
func (c *ProcCluster) waitFor(what string, fn func() error) {
	c.tb.Helper()
	deadline := time.Now().Add(c.opts.WallLimit)
	for {
		if err := c.Crashed(); err != nil {
			c.tb.Fatalf("waiting for %s: %v", what, err)
		}
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("waiting for %s: not within %v: %v", what, c.opts.WallLimit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// start runs the manager's child in mode and waits until it serves.
func (m *ProcManager) start(mode raftstore.StartMode, joinVia string) {
	c := m.c
	c.tb.Helper()
	var logFile *os.File
	if c.opts.LogDir != "" {
		var err error
		if logFile, err = os.OpenFile(filepath.Join(c.opts.LogDir, m.Name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
			c.tb.Fatal(err)
		}
		defer logFile.Close() // the child has its own descriptor
	}
	cmd, stdin, stdout := startChild(c.tb, managerEnv, 0, logFile)
	exited := make(chan struct{})
	m.mu.Lock()
	m.cmd, m.stdin, m.probe, m.exited, m.stopping = cmd, stdin, "", exited, false
	m.mu.Unlock()
	ready := make(chan managerReady, 1)
	go func() {
		var r managerReady
		dec := json.NewDecoder(stdout)
		if dec.Decode(&r) == nil {
			ready <- r
		}
		_, _ = io.Copy(io.Discard, io.MultiReader(dec.Buffered(), stdout))
		err := cmd.Wait()
		m.mu.Lock()
		expected := m.stopping
		m.mu.Unlock()
		if !expected {
			c.crash(fmt.Errorf("manager process %s (pid %d) exited on its own: %v", m.Name, cmd.Process.Pid, err))
		}
		close(exited)
	}()
	cfg := managerConfig{Name: m.Name, NodeID: m.NodeID, ClusterID: c.clusterID, Cert: m.cert, Key: m.key,
		CAPEM: c.ca.CertPEM(), RaftPath: m.path, Addr: m.Addr, Mode: mode, JoinVia: joinVia, Tick: c.opts.Tick,
		ElectionHold: c.opts.ElectionHold, LogInfo: logFile != nil}
	if err := json.NewEncoder(stdin).Encode(cfg); err != nil {
		c.tb.Fatalf("manager process %s: %v (%s)", m.Name, err, childHint)
	}
	select {
	case r := <-ready:
		m.mu.Lock()
		m.probe = r.Probe
		m.mu.Unlock()
	case <-exited:
		c.tb.Fatalf("manager process %s exited before it served (%s)", m.Name, childHint)
	case <-time.After(2 * time.Minute): // a join retries for a minute
		c.tb.Fatalf("manager process %s did not serve within 2m", m.Name)
	}
}

// Running reports whether the manager's process runs.
func (m *ProcManager) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.exited == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// Pid is the running child's process ID, 0 when it does not run.
func (m *ProcManager) Pid() int {
	if !m.Running() {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmd.Process.Pid
}

// Usage is the manager's CPU time over all its processes (the ones it
// ran before a Kill or Stop, read just before it, and the running one),
// and the running process's RSS (0 when none runs).
func (m *ProcManager) Usage() (cpu time.Duration, rss uint64) {
	m.mu.Lock()
	past := m.pastCPU
	m.mu.Unlock()
	if pid := m.Pid(); pid != 0 {
		cpu, rss = Usage(pid)
	}
	return past + cpu, rss
}

// Kill kills the manager's process with SIGKILL and waits for it: a crash
// (the raft log stays; Start restarts from it).
func (m *ProcManager) Kill() {
	m.end(func(cmd *exec.Cmd, _ io.WriteCloser) { _ = cmd.Process.Signal(syscall.SIGKILL) }, 0)
}

// Stop ends the manager's stdin, so that it stops its manager and exits,
// and waits up to 30 s (then kills it; an unclean end fails the test).
func (m *ProcManager) Stop() {
	m.end(func(_ *exec.Cmd, stdin io.WriteCloser) { _ = stdin.Close() }, 40*time.Second)
}

func (m *ProcManager) end(how func(*exec.Cmd, io.WriteCloser), grace time.Duration) {
	m.mu.Lock()
	cmd, stdin, exited := m.cmd, m.stdin, m.exited
	m.stopping = true
	m.mu.Unlock()
	if exited == nil {
		return
	}
	select {
	case <-exited:
		return // killed before, or crashed (Crashed says so)
	default:
	}
	cpu, _ := Usage(cmd.Process.Pid)
	m.mu.Lock()
	m.pastCPU += cpu
	m.mu.Unlock()
	how(cmd, stdin)
	if grace > 0 {
		select {
		case <-exited:
			if !cmd.ProcessState.Success() {
				m.c.tb.Errorf("manager process %s: %v", m.Name, cmd.ProcessState)
			}
			return
		case <-time.After(grace):
			m.c.tb.Errorf("manager process %s did not exit within %v of its stdin's end: killed", m.Name, grace)
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	<-exited
}

// Start restarts a stopped or killed manager from its raft log.
func (m *ProcManager) Start() {
	m.c.tb.Helper()
	if m.Running() {
		m.c.tb.Fatalf("%s already runs", m.Name)
	}
	m.start(raftstore.Restart, "")
}

// Probe is the address of the running process's probe; its
// /debug/pprof/ serves the Go profiles (go tool pprof
// http://ADDR/debug/pprof/profile?seconds=30).
func (m *ProcManager) Probe() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.probe
}

// Status asks the manager's probe (within 2 s) for its state.
func (m *ProcManager) Status() (probeStatus, error) {
	var st probeStatus
	err := m.call(http.MethodGet, "/status", nil, &st, 2*time.Second)
	return st, err
}

// StartCPUProfile starts a CPU profile of the manager's process, which
// StopCPUProfile ends and returns (pprof's format). A restart of the
// process loses it.
func (m *ProcManager) StartCPUProfile() error {
	return m.call(http.MethodPost, "/cpuprofile/start", nil, &struct{}{}, 10*time.Second)
}

// StopCPUProfile stops the profile StartCPUProfile started and returns it.
func (m *ProcManager) StopCPUProfile() ([]byte, error) {
	var b []byte
	err := m.call(http.MethodPost, "/cpuprofile/stop", nil, &b, 30*time.Second)
	return b, err
}

// HeapProfile returns the manager's heap profile (pprof's format) taken
// right after a collection, so its in-use figures are the live heap; at a
// million tasks the collection and the profile take seconds.
func (m *ProcManager) HeapProfile() ([]byte, error) {
	var b []byte
	err := m.call(http.MethodGet, "/debug/pprof/heap?gc=1", nil, &b, 2*time.Minute)
	return b, err
}

// Goroutines returns the manager's goroutine dump (one stack per group of
// goroutines, with counts: /debug/pprof/goroutine?debug=1).
func (m *ProcManager) Goroutines() ([]byte, error) {
	var b []byte
	err := m.call(http.MethodGet, "/debug/pprof/goroutine?debug=1", nil, &b, 30*time.Second)
	return b, err
}

// call sends a request to the probe and decodes the JSON reply into out
// (or copies it, when out is a *[]byte).
func (m *ProcManager) call(method, path string, in, out any, timeout time.Duration) error {
	if !m.Running() {
		return fmt.Errorf("%s does not run", m.Name)
	}
	m.mu.Lock()
	probe := m.probe
	m.mu.Unlock()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+probe+path, body)
	if err != nil {
		return err
	}
	resp, err := m.c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s's probe: %w", m.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s's probe %s: %s: %s", m.Name, path, resp.Status, bytes.TrimSpace(msg))
	}
	if raw, ok := out.(*[]byte); ok {
		*raw, err = io.ReadAll(resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Managers lists the managers in creation order.
func (c *ProcCluster) Managers() []*ProcManager {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*ProcManager(nil), c.managers...)
}

// currentLeader is the running manager that leads in the highest term, or
// nil.
func (c *ProcCluster) currentLeader() *ProcManager {
	var best *ProcManager
	var term uint64
	for _, m := range c.Managers() {
		if st, err := m.Status(); err == nil && st.Leading && (best == nil || st.Term > term) {
			best, term = m, st.Term
		}
	}
	return best
}

// Leader waits for a manager that leads and returns it.
func (c *ProcCluster) Leader() *ProcManager {
	c.tb.Helper()
	var l *ProcManager
	c.waitFor("a leader", func() error {
		if l = c.currentLeader(); l == nil {
			return errors.New("no manager leads")
		}
		return nil
	})
	return l
}

// reader is the manager the harness reads state from: a follower that
// has applied what the leader had when asked, so that the harness's reads
// (a count over a million tasks takes about a second of CPU) do not load
// the leader it measures; else the leader, else any running manager.
func (c *ProcCluster) reader() (*ProcManager, error) {
	ms := c.Managers()
	st := make([]probeStatus, len(ms))
	up := make([]bool, len(ms))
	leader := -1
	for i, m := range ms {
		var err error
		st[i], err = m.Status()
		up[i] = err == nil
		if up[i] && st[i].Leading && (leader < 0 || st[i].Term > st[leader].Term) {
			leader = i
		}
	}
	if leader >= 0 {
		for i, m := range ms {
			if i != leader && up[i] && st[i].Term == st[leader].Term && st[i].Applied >= st[leader].Applied {
				return m, nil
			}
		}
		return ms[leader], nil
	}
	for i, m := range ms {
		if up[i] {
			return m, nil
		}
	}
	return nil, errors.New("no manager runs")
}

// read asks the reader's probe, within 2 minutes (a count over a million
// tasks takes a while on a loaded machine).
func (c *ProcCluster) read(path string, in, out any) error {
	m, err := c.reader()
	if err == nil {
		err = m.call(http.MethodPost, path, in, out, 2*time.Minute)
	}
	return err
}

// CountTasks counts q's tasks on the side of a manager (reader).
func (c *ProcCluster) CountTasks(q TaskQuery) (TaskCounts, error) {
	var n TaskCounts
	err := c.read("/counts", q, &n)
	return n, err
}

// RunningTasks maps the RUNNING tasks of serviceIDs to their nodes.
func (c *ProcCluster) RunningTasks(serviceIDs []string) (map[string]string, error) {
	var out map[string]string
	err := c.read("/running", serviceIDs, &out)
	return out, err
}

// NotReady counts the nodes of ids that are not READY.
func (c *ProcCluster) NotReady(ids []string) (int, error) {
	var n int
	err := c.read("/notready", ids, &n)
	return n, err
}

// create records cluster (if not nil) and nodes through the leader,
// retried on the next leader for up to ProcOptions.WallLimit; objects
// already there are kept.
func (c *ProcCluster) create(cluster *api.Cluster, nodes []*api.Node) {
	c.tb.Helper()
	var req probeCreate
	var err error
	if cluster != nil {
		if req.Cluster, err = protojson.Marshal(cluster); err != nil {
			c.tb.Fatal(err)
		}
	}
	for _, n := range nodes {
		b, err := protojson.Marshal(n)
		if err != nil {
			c.tb.Fatal(err)
		}
		req.Nodes = append(req.Nodes, b)
	}
	c.waitFor(fmt.Sprintf("%d nodes recorded", len(nodes)), func() error {
		l := c.currentLeader()
		if l == nil {
			return errors.New("no manager leads")
		}
		return l.call(http.MethodPost, "/create", req, &struct{}{}, 30*time.Second)
	})
}

// Control is a Control API client whose calls go to any running manager
// (the others forward to the leader).
func (c *ProcCluster) Control() api.ControlClient { return api.NewControlClient(c.control) }

// ControlVia is a Control API client connected to m alone.
func (c *ProcCluster) ControlVia(m *ProcManager) api.ControlClient {
	c.tb.Helper()
	conn, err := c.admin.dial(context.Background(), m.Addr)
	if err != nil {
		c.tb.Fatal(err)
	}
	return api.NewControlClient(conn)
}

// AddSimNodesProcess joins n simulated worker nodes in a fleet process
// (as Cluster.AddSimNodesProcess) whose nodes dial the managers.
func (c *ProcCluster) AddSimNodesProcess(n int, o FleetProcessOptions) *FleetProcess {
	c.tb.Helper()
	var addrs []string
	for _, m := range c.Managers() {
		addrs = append(addrs, m.Addr)
	}
	p := startFleetProcess(c.tb, n, addrs, c.ca.CertPEM(), o)
	c.mu.Lock()
	c.fleets = append(c.fleets, p)
	c.mu.Unlock()
	c.joinSimNodes(n, func(batch []simNode) {
		nodes := make([]*api.Node, len(batch))
		for i, s := range batch {
			nodes[i] = nodeObject(s.id, s.name, api.NodeRole_WORKER)
		}
		c.create(nil, nodes)
	}, p.add)
	return p
}

// WaitNodesReady waits until every node of the fleet is READY.
func (c *ProcCluster) WaitNodesReady(f SimFleet) {
	c.tb.Helper()
	c.waitFor("every simulated node to be READY", func() error {
		ids := f.NodeIDs()
		n, err := c.NotReady(ids)
		if err == nil && n > 0 {
			err = fmt.Errorf("%d of %d simulated nodes READY", len(ids)-n, len(ids))
		}
		return err
	})
}

// Close stops the fleets, then every manager, and waits for them. It is
// safe to call more than once; NewProc registers it with t.Cleanup.
func (c *ProcCluster) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	fleets, managers := c.fleets, c.managers
	c.mu.Unlock()
	for _, f := range fleets {
		f.Close()
	}
	var wg sync.WaitGroup
	for _, m := range managers {
		wg.Add(1)
		go func() { defer wg.Done(); m.Stop() }()
	}
	wg.Wait()
	if c.control != nil {
		c.control.Close()
	}
	c.admin.close()
}
