package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	cerrdefs "github.com/containerd/errdefs"
	clog "github.com/containerd/log"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/overlay/datapath"
	api "github.com/shoal-project/shoal/proto"
	testimages "github.com/shoal-project/shoal/test/images"
	"github.com/shoal-project/shoal/worker"
)

// The registry, the images and the log driver are shared by the tests of
// this binary; they are made on first need by a test that passed
// requireContainerd, so the pure tests (spec, IPAM, health parsing) run
// without root or containerd. Each test has its own containerd namespace,
// data dir and bridge.
var (
	fixturesOnce sync.Once
	fixturesErr  error
	fixturesDone []func()

	containerdAddress string
	registryHost      string
	busyboxRef        string
	whoamiRef         string
	// logDriver is the Config.LogDriver of every test's executor.
	logDriver string
)

func TestMain(m *testing.M) {
	// The client logs every failed fetch at info level; tests cause many.
	_ = clog.SetLevel("warn")
	code := m.Run()
	for i := len(fixturesDone) - 1; i >= 0; i-- {
		fixturesDone[i]()
	}
	os.Exit(code)
}

// requireContainerd skips t unless it runs as root with containerd
// reachable (under SHOAL_TEST_ROOT=1, as make test runs, it fails instead:
// these tests are the proof the executor works), then makes the shared
// fixtures once.
func requireContainerd(t testing.TB) {
	t.Helper()
	addr := testutil.RequiresContainerd(t)
	fixturesOnce.Do(func() { fixturesErr = setupFixtures(addr) })
	if fixturesErr != nil {
		t.Fatalf("test fixtures: %v", fixturesErr)
	}
}

func setupFixtures(addr string) error {
	// Building the test images compiles Go programs: on a loaded 2-core
	// machine (make test runs packages in parallel) that takes more than
	// 30s when the build cache is cold.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := client.New(addr, client.WithTimeout(5*time.Second))
	if err == nil {
		_, err = c.Version(ctx)
		c.Close()
	}
	if err != nil {
		return fmt.Errorf("containerd at %s: %w", addr, err)
	}
	containerdAddress = addr
	driver, cleanup, err := buildLogDriver()
	if err != nil {
		return fmt.Errorf("log driver: %w", err)
	}
	fixturesDone = append(fixturesDone, cleanup)
	logDriver = driver
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	fixturesDone = append(fixturesDone, srv.Close)
	registryHost = strings.TrimPrefix(srv.URL, "http://")
	for _, n := range []string{testimages.Busybox, testimages.Whoami} {
		img, err := testimages.Build(ctx, n)
		if err == nil {
			err = testimages.Push(ctx, img, testimages.Ref(registryHost, n), true)
		}
		if err != nil {
			return fmt.Errorf("test image %s: %w", n, err)
		}
	}
	busyboxRef = testimages.Ref(registryHost, testimages.Busybox)
	whoamiRef = testimages.Ref(registryHost, testimages.Whoami)
	return nil
}

// buildLogDriver builds cmd/shoal-logdriver (without the race detector,
// whose exit delay would hold up every task's deletion), or takes the
// binary named by $SHOAL_TEST_LOG_DRIVER.
func buildLogDriver() (string, func(), error) {
	if p := os.Getenv("SHOAL_TEST_LOG_DRIVER"); p != "" {
		abs, err := filepath.Abs(p)
		return abs, func() {}, err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	dir, err := os.MkdirTemp("", "shoal-logdriver-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) } // running drivers keep their inode
	out := filepath.Join(dir, "shoal-logdriver")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "../../cmd/shoal-logdriver")
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	if msg, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("go build ../../cmd/shoal-logdriver: %w\n%s", err, msg)
	}
	return out, cleanup, nil
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// newTaskID makes a swarm-like task ID: 25 lowercase alphanumerics.
func newTaskID() string { return "t" + randHex(24) }

type env struct {
	t       testing.TB
	ns      string
	dataDir string
	bridge  string
	cfg     Config
	ex      *Executor
	cl      *client.Client // for inspection and cleanup, apart from the executor's
}

func newEnv(t testing.TB) *env {
	t.Helper()
	requireContainerd(t)
	e := &env{
		t:       t,
		ns:      "shoaltest-" + randHex(10),
		dataDir: t.TempDir(),
		bridge:  "shb" + randHex(10),
	}
	e.cfg = Config{
		Namespace: e.ns, DataDir: e.dataDir, Bridge: e.bridge,
		Address: containerdAddress, NodeID: "node-" + randHex(6), Hostname: "testhost", Version: "test",
		Nameservers: []string{"192.0.2.53"}, LogDriver: logDriver,
	}
	cl, err := client.New(containerdAddress, client.WithDefaultNamespace(e.ns), client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("containerd: %v", err)
	}
	e.cl = cl
	// Registered before New so that a failing New is cleaned up too; runs
	// before t.TempDir's removal (cleanups run last-in first-out).
	t.Cleanup(e.cleanup)
	// Building the test images compiles Go programs: on a loaded 2-core
	// machine (make test runs packages in parallel) that takes more than
	// 30s when the build cache is cold.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if e.ex, err = New(ctx, e.cfg); err != nil {
		t.Fatalf("New: %v", err)
	}
	e.cfg = e.ex.cfg // with its defaults, for the tests' paths
	return e
}

// cleanup removes everything the test may have left in containerd and the
// kernel: containers, tasks, snapshots, images, content, leases, the
// namespace, mounted netns files, veths and the bridge.
func (e *env) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctx = namespaces.WithNamespace(ctx, e.ns)
	if e.ex != nil {
		e.ex.Close()
	}
	var errs []error
	note := func(what string, err error) {
		var lnf netlink.LinkNotFoundError
		if err != nil && !cerrdefs.IsNotFound(err) && !errors.Is(err, unix.ENODEV) && !errors.As(err, &lnf) {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	ctrs, err := e.cl.Containers(ctx)
	note("list containers", err)
	for _, c := range ctrs {
		if task, err := c.Task(ctx, nil); err == nil {
			_, err = task.Delete(ctx, client.WithProcessKill)
			note("delete task "+c.ID(), err)
		}
		note("delete container "+c.ID(), c.Delete(ctx, client.WithSnapshotCleanup))
	}
	is := e.cl.ImageService()
	imgs, err := is.List(ctx)
	note("list images", err)
	for _, img := range imgs {
		note("delete image "+img.Name, is.Delete(ctx, img.Name, images.SynchronousDelete()))
	}
	ls := e.cl.LeasesService()
	if all, err := ls.List(ctx); err == nil {
		for _, l := range all {
			note("delete lease", ls.Delete(ctx, l, leases.SynchronousDelete))
		}
	}
	// Garbage collection removes unreferenced content and snapshots; remove
	// whatever it left so the namespace can go.
	cs := e.cl.ContentStore()
	_ = cs.Walk(ctx, func(info content.Info) error {
		note("delete blob", cs.Delete(ctx, info.Digest))
		return nil
	})
	sn := e.cl.SnapshotService(DefaultSnapshotter)
	for i := 0; i < 10; i++ { // leaves first: parents cannot go before children
		var keys []string
		_ = sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
			keys = append(keys, info.Name)
			return nil
		})
		if len(keys) == 0 {
			break
		}
		for _, k := range keys {
			_ = sn.Remove(ctx, k)
		}
	}
	note("delete namespace "+e.ns, e.cl.NamespaceService().Delete(ctx, e.ns))
	e.cl.Close()

	if entries, err := os.ReadDir(filepath.Join(e.dataDir, "netns")); err == nil {
		for _, d := range entries {
			note("netns "+d.Name(), removeNetns(filepath.Join(e.dataDir, "netns", d.Name())))
		}
	}
	if br, err := netlink.LinkByName(e.bridge); err == nil {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				note("delete veth "+l.Attrs().Name, netlink.LinkDel(l))
			}
		}
		note("delete bridge "+e.bridge, netlink.LinkDel(br))
	}
	// The egress table made for overlay tasks (none without them).
	note("egress table of "+e.bridge, datapath.RemoveEgress(e.bridge))
	// Unmount anything still mounted under the data dir, so t.TempDir can
	// remove it.
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], e.dataDir+"/") {
				_ = unix.Unmount(f[4], unix.MNT_DETACH)
			}
		}
	}
	// Empty directories named after the namespace that no API removes: the
	// cgroup parents runc made and containerd's runtime state directories.
	// rmdir only removes them when empty, so nothing else is at risk.
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + e.ns)
	dirs = append(dirs, "/sys/fs/cgroup/"+e.ns,
		"/run/containerd/io.containerd.runtime.v2.task/"+e.ns,
		"/var/lib/containerd/io.containerd.runtime.v2.task/"+e.ns)
	for _, d := range dirs {
		_ = unix.Rmdir(d)
	}
	if len(errs) > 0 {
		e.t.Errorf("cleanup: %v", errors.Join(errs...))
	}
}

// task makes a busybox task running args (through the image's defaults
// when args is empty).
func (e *env) task(image string, args ...string) *api.Task {
	id := newTaskID()
	return &api.Task{
		Id:                 id,
		ServiceId:          "svc" + randHex(8),
		Slot:               1,
		NodeId:             e.cfg.NodeID,
		ServiceAnnotations: &api.Annotations{Name: "web", Labels: map[string]string{"tier": "front"}},
		Spec: &api.TaskSpec{Container: &api.ContainerSpec{
			Image:           image,
			Args:            args,
			StopGracePeriod: durationpb.New(2 * time.Second),
		}},
	}
}

func (e *env) controller(t *api.Task) *controller {
	e.t.Helper()
	c, err := e.ex.Controller(t, nil)
	if err != nil {
		e.t.Fatalf("Controller: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c.(*controller)
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// run prepares and starts t and waits for its exit; it returns Wait's error
// and the task's log.
func (e *env) run(t *api.Task) (*controller, error, string) {
	e.t.Helper()
	ctx := ctxT(e.t, 60*time.Second)
	c := e.controller(t)
	if err := c.Prepare(ctx); err != nil {
		e.t.Fatalf("Prepare: %v", err)
	}
	if err := c.Start(ctx); err != nil {
		e.t.Fatalf("Start: %v", err)
	}
	werr := c.Wait(ctx)
	if errors.Is(werr, context.DeadlineExceeded) {
		e.t.Fatalf("Wait: %v", werr)
	}
	return c, werr, e.logs(c)
}

// logs returns the task's log once it stops growing: after the process
// exits, the log driver may still be writing what was in its pipes, so
// the log is read until three reads 50ms apart agree (at most 5s).
func (e *env) logs(c *controller) string {
	e.t.Helper()
	read := func() string {
		var b strings.Builder
		err := c.Logs(ctxT(e.t, 10*time.Second), worker.LogOptions{Tail: -1}, func(m *api.LogMessage) error {
			b.Write(m.Data)
			return nil
		})
		if err != nil {
			e.t.Fatalf("Logs: %v", err)
		}
		return b.String()
	}
	last, same := read(), 0
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(5 * time.Second); same < 2 && time.Now().Before(deadline); {
		<-tick.C
		if now := read(); now == last {
			same++
		} else {
			last, same = now, 0
		}
	}
	return last
}

// eventually polls cond every 50 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, d, 50*time.Millisecond, cond, "%s", what)
}

func exitCode(err error) int {
	var ee *worker.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if err == nil {
		return 0
	}
	return -1000
}
