package lab_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/test/lab"
)

// fakeTB is a testing.TB whose cleanups run when the test says so and whose failure state the test sets;
// everything else goes to the real test.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	logs     []string
}

func (f *fakeTB) Cleanup(fn func()) { f.mu.Lock(); f.cleanups = append(f.cleanups, fn); f.mu.Unlock() }
func (f *fakeTB) Failed() bool      { return f.failed }
func (f *fakeTB) Logf(format string, args ...any) {
	f.mu.Lock()
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakeTB) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	f.cleanups = nil
}

// TestFailureDumpsLogs: when the test has failed, cleanup prints the end of every host's log.
func TestFailureDumpsLogs(t *testing.T) {
	f := &fakeTB{TB: t}
	t.Cleanup(f.runCleanups) // should the test stop early
	cfg := standinConfig(2)
	cfg.Name = "dump"
	// The command is overridable: here the stand-in without ShoaldPath and with only the flags it needs.
	cfg.ShoaldPath = ""
	cfg.Command = func(h *lab.Host) []string {
		return []string{os.Args[0], "--data-dir", h.DataDir, "--control-socket", h.ControlSocket,
			"--listen-addr", h.APIAddr, "--advertise-addr", h.APIAddr}
	}
	l := lab.New(f, cfg)
	if err := l.StartAll(); err != nil {
		t.Fatal(err)
	}
	f.failed = true
	f.runCleanups()
	all := strings.Join(f.logs, "\n")
	for _, h := range l.Hosts {
		if !strings.Contains(all, "lab: "+h.Name+" ("+h.APIAddr) || !strings.Contains(all, "standin: up on "+h.APIAddr) {
			t.Errorf("no log tail of %s in:\n%s", h.Name, all)
		}
	}
	checkGone(t, l.Prefix, l.Dir)
}

// TestSweep: a lab whose owner process is dead is removed by Sweep (processes, nft table, namespaces,
// links, containerd namespace, directory); a live lab with the same base name is left alone.
func TestSweep(t *testing.T) {
	dead, live := &fakeTB{TB: t}, &fakeTB{TB: t}
	t.Cleanup(dead.runCleanups)
	t.Cleanup(live.runCleanups)
	cfg := standinConfig(2)
	cfg.Name = "swp"
	ld := lab.New(dead, cfg)
	ll := lab.New(live, cfg)
	for _, l := range []*lab.Lab{ld, ll} {
		if err := l.StartAll(); err != nil {
			t.Fatal(err)
		}
	}
	if err := ld.Host(1).Partition(); err != nil {
		t.Fatal(err)
	}
	withCtr := false
	if _, err := runRoot("ctr", "version"); err == nil {
		withCtr = true
		fillContainerdNamespace(t, ld.Host(2).ContainerdNamespace)
	}
	// Make ld's owner a process that has exited, as if the test process had crashed.
	p := exec.Command("true")
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ld.Dir, "owner"), fmt.Appendf(nil, "%d 1 %s\n", p.Process.Pid, ld.Subnet), 0o644); err != nil {
		t.Fatal(err)
	}
	pids := []int{ld.Host(1).PID(), ld.Host(2).PID()}

	if err := lab.Sweep("swp"); err != nil {
		t.Fatal(err)
	}
	checkGone(t, ld.Prefix, ld.Dir)
	for _, pid := range pids {
		if st := procState(pid); st != "" && st != "Z" {
			t.Errorf("pid %d of the dead lab still running (state %s)", pid, st)
		}
	}
	if withCtr {
		if out, _ := runRoot("ctr", "namespaces", "ls", "-q"); strings.Contains(out, ld.Prefix) {
			t.Errorf("containerd namespace of the dead lab left:\n%s", out)
		}
	}
	for _, h := range ll.Hosts {
		if !h.Running() {
			t.Errorf("live lab's %s stopped by Sweep", h.Name)
		}
		if err := reachable(&ll.Host(1).NS, ll.Host(2)); err != nil {
			t.Errorf("live lab broken by Sweep: %v", err)
		}
	}
	if _, err := os.Stat(ll.Dir); err != nil {
		t.Errorf("live lab's dir: %v", err)
	}
	live.runCleanups()
	checkGone(t, ll.Prefix, ll.Dir)
	dead.cleanups = nil // already swept; its cleanup would only report what Sweep removed
}

// TestPoll: Poll returns as soon as the condition holds, and on timeout names the last error.
func TestPoll(t *testing.T) {
	n := 0
	if err := lab.Poll(time.Second, func() error {
		if n++; n < 3 {
			return fmt.Errorf("try %d", n)
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("Poll: %v after %d tries", err, n)
	}
	start := time.Now()
	err := lab.Poll(100*time.Millisecond, func() error { return fmt.Errorf("never") })
	if err == nil || !strings.Contains(err.Error(), "never") || time.Since(start) > time.Second {
		t.Fatalf("Poll timeout: %v after %v", err, time.Since(start))
	}
}

func runRoot(argv ...string) (string, error) { return runRootInput("", argv...) }

func runRootInput(stdin string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, out)
	}
	return string(out), nil
}

// TestBuild: Build compiles a package of this module once per process, from the module root.
func TestBuild(t *testing.T) {
	p := lab.Build(t, "./test/lab/testdata/hello")
	if again := lab.Build(t, "./test/lab/testdata/hello"); again != p {
		t.Errorf("second Build gave %s, first %s", again, p)
	}
	out, err := runRoot(p, "x", "y")
	if err != nil || out != "hello 2\n" {
		t.Fatalf("built binary: %q %v", out, err)
	}
}
