// Package e2e runs the real shoald and shoal binaries as a user would: as
// subprocesses on loopback, with their own data directories, killed and
// restarted. Multi-host tests live in test/lab.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/lab"
)

// daemon is one shoald subprocess.
type daemon struct {
	t       testing.TB
	bin     string
	cli     string
	dir     string
	addr    string
	ns      string
	bridge  string
	args    []string
	cmd     *exec.Cmd
	log     *bytes.Buffer
	logMu   sync.Mutex
	exited  chan struct{}
	exitErr error
}

// freeAddr returns a loopback address with a free port.
func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// e2eRoot holds every e2e daemon's directory, named after its containerd
// namespace, so a later run can find what a crashed run left behind.
var e2eRoot = filepath.Join(os.TempDir(), "shoal-e2e")

// bridgeFor is the bridge shoald derives from a containerd namespace
// (cmd/shoald/main.go: "shoal-" + 8 hex digits of its SHA-256).
func bridgeFor(ns string) string {
	sum := sha256.Sum256([]byte(ns))
	return "shoal-" + hex.EncodeToString(sum[:])[:8]
}

// sweepOnce removes, once per test process, what e2e runs whose process is
// gone left behind: containers, namespaces, mounts, bridges, directories.
var sweepOnce sync.Once

func sweepStale(t testing.TB) {
	sweepOnce.Do(func() {
		out, _ := exec.Command("ctr", "namespaces", "ls", "-q").Output()
		for _, ns := range strings.Fields(string(out)) {
			var pid, n int
			if _, err := fmt.Sscanf(ns, "e2e-%d-%d", &pid, &n); err != nil || pid == os.Getpid() {
				continue
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				continue // still running
			}
			dir := filepath.Join(e2eRoot, ns)
			if err := lab.CleanNode("/run/containerd/containerd.sock", ns, dir, bridgeFor(ns)); err != nil {
				t.Logf("sweeping %s: %v", ns, err)
			}
			_ = os.RemoveAll(dir)
		}
	})
}

func newDaemon(t testing.TB, extra ...string) *daemon {
	t.Helper()
	testutil.RequiresContainerd(t) // and root: shoald makes bridges and netns
	testutil.HostNetns(t)          // its mesh table, VXLAN port and gossip port are the host's
	sweepStale(t)
	ns := fmt.Sprintf("e2e-%d-%d", os.Getpid(), time.Now().UnixNano()%1000000)
	d := &daemon{
		t: t, bin: lab.BuildShoald(t), cli: lab.BuildShoal(t), dir: filepath.Join(e2eRoot, ns), addr: freeAddr(t),
		ns: ns, bridge: bridgeFor(ns), log: &bytes.Buffer{},
	}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	d.args = append([]string{"--data-dir", filepath.Join(d.dir, "data"), "--control-socket", d.socket(),
		"--listen-addr", d.addr, "--advertise-addr", d.addr, "--containerd-namespace", d.ns}, extra...)
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("shoald log:\n%s", d.logs())
		}
		if err := lab.CleanNode("/run/containerd/containerd.sock", d.ns, d.dir, d.bridge); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		_ = os.RemoveAll(d.dir)
	})
	return d
}

func (d *daemon) socket() string { return filepath.Join(d.dir, "ctl.sock") }

func (d *daemon) logs() string {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	return d.log.String()
}

type lockedWriter struct{ d *daemon }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.d.logMu.Lock()
	defer w.d.logMu.Unlock()
	return w.d.log.Write(p)
}

// start runs shoald and waits for its control socket.
func (d *daemon) start() {
	d.t.Helper()
	d.cmd = exec.Command(d.bin, d.args...)
	d.cmd.Stdout, d.cmd.Stderr = lockedWriter{d}, lockedWriter{d}
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		d.exitErr = cmd.Wait()
		close(done)
	}(d.cmd, d.exited)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", d.socket()); err == nil {
			c.Close()
			return
		}
		select {
		case <-d.exited:
			d.t.Fatalf("shoald exited at start: %v\n%s", d.exitErr, d.logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
	d.t.Fatalf("shoald did not open its control socket in 15s\n%s", d.logs())
}

func (d *daemon) kill() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Kill()
	<-d.exited
}

// shoal runs the CLI against this daemon.
func (d *daemon) shoal(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cli, append([]string{"-H", "unix://" + d.socket()}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *daemon) mustShoal(args ...string) string {
	d.t.Helper()
	out, err := d.shoal(args...)
	if err != nil {
		d.t.Fatalf("shoal %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// client is a gRPC connection to the control socket.
func (d *daemon) client() *grpc.ClientConn {
	conn, err := grpc.NewClient("unix://"+d.socket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { conn.Close() })
	return conn
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	testutil.EventuallyErr(t, timeout, 100*time.Millisecond, cond, "%s", what)
}

func TestInitNodeLsAndRestartKeepIdentity(t *testing.T) {
	testutil.RequiresContainerd(t)
	d := newDaemon(t)
	d.start()
	out := d.mustShoal("swarm", "init", "--advertise-addr", d.addr)
	if !strings.Contains(out, "Swarm initialized: current node (") || !strings.Contains(out, "SHTKN-1-") {
		t.Fatalf("unexpected init output:\n%s", out)
	}
	ls := d.mustShoal("node", "ls")
	for _, want := range []string{"Ready", "Active", "Leader", " *"} {
		if !strings.Contains(ls, want) {
			t.Fatalf("node ls lacks %q:\n%s", want, ls)
		}
	}
	// The raft settings shown are the ones in force, not zeros.
	full := d.mustShoal("info")
	for _, want := range []string{"Heartbeat Tick: 1\n", "Election Tick: 30\n", "Snapshot Interval: 10000\n", "Expiry Duration: 3 months\n"} {
		if !strings.Contains(full, want) {
			t.Errorf("info lacks %q:\n%s", want, full)
		}
	}
	info := d.mustShoal("info", "--format", "{{.nodeId}} {{.clusterId}}")
	cert, _ := os.ReadFile(filepath.Join(d.dir, "data", "certificates", "node.crt"))
	d.kill()
	d.start()
	var after string
	waitFor(t, 15*time.Second, "node ls after restart", func() error {
		var err error
		after, err = d.shoal("node", "ls")
		return err
	})
	if !strings.Contains(after, "Leader") {
		t.Fatalf("node ls after restart:\n%s", after)
	}
	if got := d.mustShoal("info", "--format", "{{.nodeId}} {{.clusterId}}"); got != info {
		t.Fatalf("identity changed across restart: %q -> %q", info, got)
	}
	if cert2, _ := os.ReadFile(filepath.Join(d.dir, "data", "certificates", "node.crt")); !bytes.Equal(cert, cert2) {
		t.Fatal("node certificate changed across restart")
	}
}

func TestKill9LosesNoAcknowledgedWrite(t *testing.T) {
	testutil.RequiresContainerd(t)
	d := newDaemon(t)
	d.start()
	d.mustShoal("swarm", "init", "--advertise-addr", d.addr)
	ctl := api.NewControlClient(d.client())
	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("w%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := ctl.CreateService(ctx, &api.CreateServiceRequest{Spec: &api.ServiceSpec{
					Annotations: &api.Annotations{Name: name},
					Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "127.0.0.1:5000/none:1"}},
					Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 0}},
				}})
				cancel()
				if err != nil {
					return // the daemon died under us
				}
				mu.Lock()
				acked = append(acked, name)
				mu.Unlock()
			}
		}(w)
	}
	waitFor(t, 30*time.Second, "200 acknowledged writes", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 200 {
			return fmt.Errorf("%d so far", len(acked))
		}
		return nil
	})
	d.kill() // kill -9 mid-stream
	close(stop)
	wg.Wait()
	d.start()
	var have map[string]bool
	waitFor(t, 20*time.Second, "service list after restart", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := api.NewControlClient(d.client()).ListServices(ctx, &api.ListServicesRequest{})
		if err != nil {
			return err
		}
		have = map[string]bool{}
		for _, s := range resp.Services {
			have[s.Spec.Annotations.Name] = true
		}
		return nil
	})
	missing := 0
	for _, n := range acked {
		if !have[n] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged writes are gone after kill -9", missing, len(acked))
	}
	t.Logf("all %d acknowledged writes survived kill -9 (%d services present)", len(acked), len(have))
}

func TestDamagedRaftLogIsRefusedQuickly(t *testing.T) {
	testutil.RequiresContainerd(t)
	for _, damage := range []string{"truncate", "corrupt"} {
		t.Run(damage, func(t *testing.T) {
			d := newDaemon(t)
			d.start()
			d.mustShoal("swarm", "init", "--advertise-addr", d.addr)
			d.mustShoal("service", "create", "-d", "--name", "x", "--replicas", "0", "127.0.0.1:5000/none:1")
			d.kill()
			db := filepath.Join(d.dir, "data", "raft", "raft.db")
			switch damage {
			case "truncate":
				// Into the pages in use: only the two meta pages remain.
				if err := os.Truncate(db, 2*int64(os.Getpagesize())+100); err != nil {
					t.Fatal(err)
				}
			case "corrupt":
				f, err := os.OpenFile(db, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				junk := bytes.Repeat([]byte{0x5a}, 8192)
				_, _ = f.WriteAt(junk, 4096)
				f.Close()
			}
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, d.bin, d.args...).CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("shoald did not exit within 10s on a damaged log\n%s", out)
			}
			if err == nil {
				t.Fatalf("shoald exited 0 on a damaged log\n%s", out)
			}
			if !strings.Contains(string(out), db) {
				t.Fatalf("the error does not name the damaged file:\n%s", out)
			}
			if strings.Contains(string(out), "goroutine ") || strings.Contains(string(out), "panic") {
				t.Fatalf("a panic trace reached the user:\n%s", out)
			}
			if !strings.Contains(string(out), "To recover") {
				t.Fatalf("the error says nothing about recovery:\n%s", out)
			}
			t.Logf("refused in %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(string(out)))
		})
	}
}
