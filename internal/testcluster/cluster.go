package testcluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
	"github.com/shoal-project/shoal/worker"
	"github.com/shoal-project/shoal/worker/fakeexec"
)

// Options shape a cluster. Zero values take the defaults.
type Options struct {
	// Managers is the number of managers (default 1); Workers the number
	// of worker nodes (agents only).
	Managers, Workers int
	// NoManagerAgents leaves the managers without an agent (a manager node
	// then runs no tasks: it is drained). By default every node runs an
	// agent, as shoald does.
	NoManagerAgents bool
	// Seed seeds node IDs and the cluster ID (default 1).
	Seed uint64
	// Tick is the raft tick and the pump's step (default 100ms of cluster
	// time). Raft's other timings are the defaults, in ticks.
	Tick time.Duration
	// Cluster, when set, edits the ClusterSpec written at bootstrap.
	Cluster func(*api.ClusterSpec)
	// Agent, when set, edits each agent's config before it starts.
	Agent func(*worker.Config)
	// Logger receives every component's logs; default discarded, or
	// stderr when SHOAL_TESTCLUSTER_LOG is set.
	Logger *slog.Logger
	// WallClock runs the cluster on the real clock, without the pump:
	// for tests that measure wall time, such as the control plane's
	// scale tests. Bounds "in cluster time" are then wall time.
	WallClock bool
	// WallLimit bounds every wait in wall time, whatever its cluster-time
	// bound (default 90s): a wedged cluster fails the test instead of
	// hanging it.
	WallLimit time.Duration
	// Loopback has every manager serve its gRPC services on a TCP port of
	// 127.0.0.1 too (Manager.TCPAddr, the same port after a restart), for
	// clients in other processes: AddSimNodesProcess. Needs WallClock.
	// Cutting links (Partition, Isolate) does not reach these connections.
	Loopback bool
}

// Cluster is a shoal cluster in one process. Create it with New; it stops
// with the test (t.Cleanup) or with Close.
type Cluster struct {
	identity
	tb    testing.TB
	opts  Options
	clock clockwork.Clock
	fake  *clockwork.FakeClock // nil with Options.WallClock
	log   *slog.Logger
	dir   string

	raftNet *raftstore.MemNetwork
	net     *grpcNet

	// Rules script the fake executors of every node.
	Rules *fakeexec.Rules

	mu       sync.Mutex
	managers []*Manager
	agents   []*Agent               // every agent, managers' included, in creation order
	fleets   []interface{ Close() } // *simagent.Fleet, *FleetProcess
	admin    *dialer
	closed   bool

	crashRecord

	started time.Time // cluster time at New

	pumpStop context.CancelFunc
	pumpDone chan struct{}
	stepMu   sync.Mutex
	stepCh   chan struct{} // closed and replaced at every step
	steps    atomic.Int64
}

// New starts a cluster: the first manager bootstraps it and writes the
// Cluster object (with a root CA and join tokens, as `swarm init` does),
// the other managers join through the leader, and every agent connects.
// It returns once every manager is a raft member and every agent's node is
// READY.
func New(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	if opts.Managers == 0 {
		opts.Managers = 1
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.Tick == 0 {
		opts.Tick = 100 * time.Millisecond
	}
	if opts.WallLimit == 0 {
		opts.WallLimit = 90 * time.Second
	}
	if opts.Loopback && !opts.WallClock {
		tb.Fatal("testcluster: Options.Loopback needs Options.WallClock (the pump cannot see TCP traffic)")
	}
	log := opts.Logger
	if log == nil {
		log = envLogger()
	}
	// TLS checks certificate validity against the wall clock: the fake
	// clock starts at wall time so the certificates it dates are valid.
	var clock clockwork.Clock = clockwork.NewRealClock()
	var fake *clockwork.FakeClock
	if !opts.WallClock {
		fake = clockwork.NewFakeClockAt(time.Now().Truncate(time.Second))
		clock = fake
	}
	c := &Cluster{
		tb: tb, opts: opts, clock: clock, fake: fake, log: log,
		dir:     memDir(tb),
		raftNet: raftstore.NewMemNetwork(),
		net:     newGRPCNet(),
		Rules:   &fakeexec.Rules{},
		stepCh:  make(chan struct{}),
	}
	c.started = clock.Now()
	ca, err := pki.NewRootCA(clock)
	if err != nil {
		tb.Fatal(err)
	}
	c.identity.init(tb, opts.Seed, ca)
	kp := c.issue(adminName, api.NodeRole_MANAGER)
	c.admin = newDialer(c.net, adminName, kp, ca.Pool())
	tb.Cleanup(c.Close)
	c.startPump()

	first := c.newManager()
	first.start(raftstore.Bootstrap)
	c.WaitFor("the first manager to lead", time.Minute, func() error {
		if !first.Leading() {
			return fmt.Errorf("%s does not lead yet", first.Name)
		}
		return nil
	})
	c.bootstrapObjects(first)
	for i := 1; i < opts.Managers; i++ {
		c.AddManager()
	}
	c.AddAgents(opts.Workers)
	c.WaitReady()
	return c
}

// bootstrapObjects writes the Cluster object and the first manager's Node.
func (c *Cluster) bootstrapObjects(first *Manager) {
	cluster := c.clusterObject(c.opts.Cluster)
	c.update("bootstrap", first, func(tx *raftstore.Tx) error {
		if err := tx.Create(cluster); err != nil {
			return err
		}
		return tx.Create(c.managerNode(first))
	})
}

// nodeObject is the Node a join records (see the function nodeObject).
func (c *Cluster) nodeObject(id, hostname string, role api.NodeRole) *api.Node {
	return nodeObject(id, hostname, role)
}

// managerNode is a manager's Node; without an agent it is drained, so
// nothing is placed where nothing would run it.
func (c *Cluster) managerNode(m *Manager) *api.Node {
	n := c.nodeObject(m.NodeID, m.Name, api.NodeRole_MANAGER)
	if c.opts.NoManagerAgents {
		n.Spec.Availability = api.Availability_DRAIN
	}
	return n
}

// update runs fn in a store transaction on m, which must lead.
func (c *Cluster) update(what string, m *Manager, fn func(tx *raftstore.Tx) error) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.WallLimit)
	defer cancel()
	mgr := m.Manager()
	if mgr == nil {
		c.tb.Fatalf("%s: %s is not running", what, m.Name)
	}
	if err := mgr.Store().Update(ctx, fn); err != nil {
		c.tb.Fatalf("%s: %v", what, err)
	}
}

// envLogger is the default logger: debug records on stderr when
// SHOAL_TESTCLUSTER_LOG is set, none otherwise.
func envLogger() *slog.Logger {
	if os.Getenv("SHOAL_TESTCLUSTER_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Clock is the cluster's clock: a *clockwork.FakeClock that the pump
// advances (tests may call Step too), or the real clock with
// Options.WallClock.
func (c *Cluster) Clock() clockwork.Clock { return c.clock }

// Close stops every node and the pump and waits for them. It is safe to
// call more than once; New registers it with t.Cleanup.
func (c *Cluster) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	managers, agents := append([]*Manager(nil), c.managers...), append([]*Agent(nil), c.agents...)
	fleets := c.fleets
	c.mu.Unlock()
	for _, f := range fleets {
		f.Close()
	}
	// Agents first, in parallel: thousands must not stop one by one.
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Add(1)
		go func() { defer wg.Done(); a.stop() }()
	}
	wg.Wait()
	for _, m := range managers {
		wg.Add(1)
		go func() { defer wg.Done(); m.stop() }()
	}
	wg.Wait()
	c.admin.close()
	c.pumpStop()
	<-c.pumpDone
}

// memDir is a temporary directory in memory (/dev/shm) where there is one:
// the harness tests the control plane, not the disk. Its name carries the
// test process's ID, so that the directories of test processes killed
// before their cleanup (a million tasks' raft logs are gigabytes of
// memory) are removed by the next test that makes one (sweepMemDirs).
func memDir(tb testing.TB) string {
	sweepMemDirs("/dev/shm")
	dir, err := os.MkdirTemp("/dev/shm", fmt.Sprintf("%s%d-", memDirPrefix, os.Getpid()))
	if err != nil {
		return tb.TempDir()
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

const memDirPrefix = "shoal-testcluster-"

// sweepMemDirs removes the directories memDir made under root for
// processes that no longer run.
func sweepMemDirs(root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), memDirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			continue // not named by memDir
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}

func (c *Cluster) path(parts ...string) string { return makePath(c.tb, c.dir, parts...) }

// makePath joins parts under dir and makes the directories above the
// result.
func makePath(tb testing.TB, dir string, parts ...string) string {
	p := filepath.Join(append([]string{dir}, parts...)...)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		tb.Fatal(err)
	}
	return p
}
