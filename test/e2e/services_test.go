package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/images"
)

// runningContainers asks containerd itself which tasks run in a namespace.
func runningContainers(t *testing.T, ns string) []string {
	t.Helper()
	out, err := exec.Command("ctr", "-n", ns, "tasks", "ls").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr tasks ls: %v\n%s", err, out)
	}
	var ids []string
	for _, line := range strings.Split(string(out), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "RUNNING" {
			ids = append(ids, f[0])
		}
	}
	sort.Strings(ids)
	return ids
}

func containerCount(t *testing.T, ns string) int {
	out, _ := exec.Command("ctr", "-n", ns, "containers", "ls", "-q").Output()
	return len(strings.Fields(string(out)))
}

// swarmWithImages starts a single-node swarm whose registry (in process,
// on loopback) holds the whoami and busybox images.
func swarmWithImages(t *testing.T) (*daemon, string) {
	reg := images.StartRegistry(t)
	whoami := images.PushTest(t, reg, images.Whoami)
	images.PushTest(t, reg, images.Busybox)
	d := newDaemon(t, "--insecure-registry", reg)
	d.start()
	d.mustShoal("swarm", "init", "--advertise-addr", d.addr)
	return d, whoami
}

func waitRunning(t *testing.T, d *daemon, n int, within time.Duration) {
	t.Helper()
	waitFor(t, within, fmt.Sprintf("%d containers RUNNING in containerd", n), func() error {
		if got := len(runningContainers(t, d.ns)); got != n {
			return fmt.Errorf("%d running", got)
		}
		return nil
	})
}

func TestServiceLifecycleOnContainerd(t *testing.T) {
	testutil.RequiresContainerd(t)
	d, whoami := swarmWithImages(t)
	d.mustShoal("service", "create", "-d", "--name", "web", "--replicas", "3", whoami)
	waitRunning(t, d, 3, 60*time.Second)

	// Kill one container's process: FAILED with the exit code, replaced
	// within the restart delay (5s) + 3s.
	victim := runningContainers(t, d.ns)[0]
	killed := time.Now()
	if out, err := exec.Command("ctr", "-n", d.ns, "tasks", "kill", "-s", "SIGKILL", victim).CombinedOutput(); err != nil {
		t.Fatalf("kill: %v\n%s", err, out)
	}
	waitFor(t, 8*time.Second, "the killed replica to be replaced", func() error {
		ids := runningContainers(t, d.ns)
		if len(ids) != 3 {
			return fmt.Errorf("%d running", len(ids))
		}
		for _, id := range ids {
			if id == victim {
				return fmt.Errorf("victim still listed as running")
			}
		}
		return nil
	})
	t.Logf("replacement RUNNING %v after the kill", time.Since(killed).Round(10*time.Millisecond))
	ps := d.mustShoal("service", "ps", "web")
	if !regexp.MustCompile(`Failed .*"task: non-zero exit \(137\)"`).MatchString(ps) {
		t.Fatalf("service ps shows no failed task with its exit code:\n%s", ps)
	}

	d.mustShoal("service", "scale", "-d", "web=10")
	waitRunning(t, d, 10, 60*time.Second)
	d.mustShoal("service", "scale", "-d", "web=2")
	waitRunning(t, d, 2, 30*time.Second)

	d.mustShoal("service", "rm", "web")
	waitFor(t, 30*time.Second, "no containers and no log files after service rm", func() error {
		if n := containerCount(t, d.ns); n != 0 {
			return fmt.Errorf("%d containers", n)
		}
		if logs, _ := filepath.Glob(filepath.Join(d.dir, "data", "executor", "logs", "*")); len(logs) != 0 {
			return fmt.Errorf("log files left: %v", logs)
		}
		return nil
	})
	out, _ := exec.Command("ctr", "-n", d.ns, "snapshots", "ls").Output()
	for _, line := range strings.Split(string(out), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == "Active" {
			t.Fatalf("active snapshot left after service rm: %s", line)
		}
	}
}

func TestShoaldKill9KeepsContainersWithoutDuplicates(t *testing.T) {
	testutil.RequiresContainerd(t)
	d, whoami := swarmWithImages(t)
	d.mustShoal("service", "create", "-d", "--name", "web", "--replicas", "3", whoami)
	waitRunning(t, d, 3, 60*time.Second)
	before := runningContainers(t, d.ns)
	d.kill()
	// The containers do not depend on the daemon.
	if got := runningContainers(t, d.ns); strings.Join(got, ",") != strings.Join(before, ",") {
		t.Fatalf("containers changed while shoald was down: %v -> %v", before, got)
	}
	d.start()
	waitFor(t, 20*time.Second, "the manager to answer after restart", func() error {
		_, err := d.shoal("service", "ls")
		return err
	})
	// While the agent re-attaches and reconciles (8s, past its first
	// heartbeats), nothing is restarted or duplicated.
	testutil.ConsistentlyErr(t, 8*time.Second, 500*time.Millisecond, func() error {
		if got := runningContainers(t, d.ns); strings.Join(got, ",") != strings.Join(before, ",") {
			return fmt.Errorf("%v -> %v", before, got)
		}
		return nil
	}, "the containers unchanged after the restart")
	if n := containerCount(t, d.ns); n != 3 {
		t.Fatalf("%d containers exist after restart, want 3", n)
	}
	ps := d.mustShoal("service", "ps", "-f", "desired-state=running", "-q", "web")
	if n := len(strings.Fields(ps)); n != 3 {
		t.Fatalf("%d tasks desired running after restart, want 3:\n%s", n, d.mustShoal("service", "ps", "web"))
	}
	ls := d.mustShoal("service", "ls")
	if !strings.Contains(ls, "3/3") {
		t.Fatalf("service ls after restart:\n%s", ls)
	}
}

func TestMissingImageIsRejectedWithoutRetryStorm(t *testing.T) {
	testutil.RequiresContainerd(t)
	reg := images.StartRegistry(t)
	d := newDaemon(t, "--insecure-registry", reg)
	d.start()
	d.mustShoal("swarm", "init", "--advertise-addr", d.addr)
	d.mustShoal("service", "create", "-d", "--name", "ghost", reg+"/nosuch/image:1")
	var ps string
	waitFor(t, 30*time.Second, "the task to be rejected", func() error {
		ps = d.mustShoal("service", "ps", "--no-trunc", "ghost")
		if !strings.Contains(ps, "Rejected") || !strings.Contains(ps, "No such image") {
			return fmt.Errorf("not yet:\n%s", ps)
		}
		return nil
	})
	// The restart delay (5s) paces retries: at most a few attempts in the
	// 12s after the first rejection. The window is what is measured, so the
	// check runs for all of it and fails at the first excess attempt.
	var tasks []string
	testutil.ConsistentlyErr(t, 12*time.Second, time.Second, func() error {
		tasks = strings.Fields(d.mustShoal("service", "ps", "-q", "ghost"))
		if len(tasks) > 4 {
			return fmt.Errorf("%d tasks: the rejected task is retried too fast", len(tasks))
		}
		return nil
	}, "at most 4 attempts")
	t.Logf("rejected, %d attempts in ~12s:\n%s", len(tasks), ps)
}

func TestBadInputIsRefusedAndWritesNothing(t *testing.T) {
	testutil.RequiresContainerd(t)
	d := newDaemon(t)
	d.start()
	d.mustShoal("swarm", "init", "--advertise-addr", d.addr)
	// Exit statuses are docker 28.2.2's: 125 for a value its flag parser
	// refuses, 1 for one it parses and refuses later.
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"--replicas", "-2"}, 125},
		{[]string{"--limit-memory", "12xb"}, 125},
		{[]string{"--restart-condition", "sometimes"}, 1},
		{[]string{"--constraint", "node.role=manager"}, 1},
		{[]string{"--constraint", "node.colour==blue"}, 1},
		{[]string{"--mode", "sideways"}, 1},
	} {
		args := c.args
		full := append(append([]string{"service", "create", "--name", "bad"}, args...), "127.0.0.1:5000/x:1")
		cmd := exec.Command(d.cli, append([]string{"-H", "unix://" + d.socket()}, full...)...)
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != c.code {
			t.Errorf("%v: exit %v, want %d\n%s", args, err, c.code, out)
		}
		if len(strings.TrimSpace(string(out))) == 0 {
			t.Errorf("%v: no error message", args)
		}
	}
	if ls := d.mustShoal("service", "ls", "-q"); strings.TrimSpace(ls) != "" {
		t.Fatalf("bad input created services: %s", ls)
	}
	_ = os.Getpid
}
