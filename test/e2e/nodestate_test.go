package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/images"
)

// footprint is what a node's tasks hold on the machine, counted from the
// outside: containerd's containers and tasks (processes) in the node's
// namespace, the shims and log-driver processes serving them, the mounts
// they made (rootfs, secrets tmpfs, network namespaces), the network
// namespace files and the veths on the node's bridge.
type footprint struct {
	Containers, Tasks, Shims, LogDrivers, Mounts, Netns, Veths int
}

func (f footprint) String() string {
	type plain footprint // without this method
	return fmt.Sprintf("%+v", plain(f))
}

// footprint counts d's.
func (d *daemon) footprint(t *testing.T) footprint {
	t.Helper()
	var f footprint
	f.Containers = containerCount(t, d.ns)
	out, err := exec.Command("ctr", "-n", d.ns, "tasks", "ls", "-q").Output()
	if err != nil {
		t.Fatalf("ctr tasks ls: %v", err)
	}
	f.Tasks = len(strings.Fields(string(out)))
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		switch {
		case strings.Contains(argv[0], "containerd-shim") && slices.Contains(argv, d.ns):
			f.Shims++
		case strings.HasSuffix(argv[0], "shoal-logdriver") && slices.ContainsFunc(argv[1:], func(a string) bool { return strings.Contains(a, d.dir+"/") }):
			f.LogDrivers++
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	shimDir := "/run/containerd/io.containerd.runtime.v2.task/" + d.ns + "/"
	for _, line := range strings.Split(string(mi), "\n") {
		fs := strings.Fields(line)
		if len(fs) > 4 && (strings.HasPrefix(fs[4], d.dir+"/") || strings.HasPrefix(fs[4], shimDir)) {
			f.Mounts++
		}
	}
	netns, _ := os.ReadDir(filepath.Join(d.dir, "data", "executor", "netns"))
	f.Netns = len(netns)
	veths, _ := os.ReadDir("/sys/class/net/" + d.bridge + "/brif")
	f.Veths = len(veths)
	return f
}

func (d *daemon) taskDBPath() string { return filepath.Join(d.dir, "data", "worker", "tasks.db") }

// nodeReady fails unless the node's only row in `node ls` says Ready.
func (d *daemon) nodeReady() error {
	out, err := d.shoal("node", "ls", "--format", "{{.Status}}")
	if err != nil {
		return fmt.Errorf("node ls: %v: %s", err, out)
	}
	if s := strings.TrimSpace(out); s != "Ready" {
		return fmt.Errorf("node status %q", s)
	}
	return nil
}

// garbleRecord overwrites the task value of the first task record of a
// closed task db with bytes that decode to nothing.
func garbleRecord(t *testing.T, path string) string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id string
	err = db.Update(func(tx *bolt.Tx) error {
		tasks := tx.Bucket([]byte("tasks"))
		if tasks == nil {
			return fmt.Errorf("no tasks bucket in %s", path)
		}
		k, _ := tasks.Cursor().First()
		if k == nil {
			return fmt.Errorf("no task record in %s", path)
		}
		id = string(k)
		return tasks.Bucket(k).Put([]byte("task"), []byte("\x0a\xff\xff\xffgarbled on purpose"))
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestDamagedTaskDBIsRebuiltWithoutDuplicates damages the task db of a
// single-node swarm between restarts of shoald (killed with SIGKILL): a
// record that does not decode (dropped and rebuilt by the agent), a file
// that is not a bbolt file at all (shoald refuses to start, naming the file
// and the recovery, which the test then follows: rm, start again), and a
// removed file. Each time, the log names the file (and
// the task), the node stays Ready (the heartbeat is 1s: down after 3s),
// the agent rebuilds its task list and the service keeps exactly its two
// containers, the same ones, with nothing more on the machine. Deleting the
// moved-aside file, as the log allows, is harmless. `service rm` then
// leaves nothing at all behind.
func TestDamagedTaskDBIsRebuiltWithoutDuplicates(t *testing.T) {
	testutil.RequiresContainerd(t)
	d, whoami := swarmWithImages(t)
	d.mustShoal("swarm", "update", "--dispatcher-heartbeat", "1s")
	d.mustShoal("service", "create", "-d", "--name", "web", "--replicas", "2", whoami)
	waitRunning(t, d, 2, 60*time.Second)
	before := runningContainers(t, d.ns)
	var base footprint
	waitFor(t, 20*time.Second, "a steady footprint", func() error {
		base = d.footprint(t)
		if base.Containers != 2 || base.Tasks != 2 || base.Shims != 2 || base.LogDrivers != 2 || base.Netns != 2 || base.Veths != 2 {
			return fmt.Errorf("footprint %v", base)
		}
		return nil
	})
	t.Logf("footprint of 2 tasks: %v", base)

	path := d.taskDBPath()
	for _, tc := range []struct {
		name   string
		damage func() (logLine *regexp.Regexp)
	}{
		{"garbled record", func() *regexp.Regexp {
			id := garbleRecord(t, path)
			return regexp.MustCompile(`dropped a task db record that does not decode.*file=` + regexp.QuoteMeta(path) + ` task=` + id + ` value=task`)
		}},
		{"garbage file", func() *regexp.Regexp {
			// Damaged pages (a failing disk?) stop shoald, naming the
			// file and the recovery; following the recovery is the test.
			if err := os.WriteFile(path, bytes.Repeat([]byte("not bbolt"), 4096), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, d.bin, d.args...).CombinedOutput()
			if ctx.Err() != nil || err == nil {
				t.Fatalf("shoald did not refuse a damaged task db within 10s (%v)\n%s", err, out)
			}
			recovery := "remove it (rm " + path + ") and start shoald again"
			if !strings.Contains(string(out), "task database "+path+" is damaged") || !strings.Contains(string(out), recovery) {
				t.Fatalf("the error does not name the file and the recovery:\n%s", out)
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			return regexp.MustCompile(`task db rebuilt`)
		}},
		{"file removed", func() *regexp.Regexp {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			return regexp.MustCompile(`task db rebuilt`)
		}},
	} {
		d.kill()
		logLine := tc.damage()
		logsBefore := len(d.logs())
		d.start()
		restarted := time.Now()
		var match []string
		var rebuiltIn time.Duration
		waitFor(t, 30*time.Second, tc.name+": the agent's rebuild", func() error {
			logs := d.logs()[logsBefore:]
			if match = logLine.FindStringSubmatch(logs); match == nil {
				return fmt.Errorf("the log does not match %q yet", logLine)
			}
			if !strings.Contains(logs, "task db rebuilt") {
				return fmt.Errorf("no rebuild logged yet")
			}
			rebuiltIn = time.Since(restarted)
			return nil
		})
		// The node must stay Ready past 3 heartbeat periods, with the same
		// containers and the same footprint all along.
		testutil.ConsistentlyErr(t, 6*time.Second-time.Since(restarted), 300*time.Millisecond, func() error {
			if err := d.nodeReady(); err != nil {
				return err
			}
			if got := runningContainers(t, d.ns); !slices.Equal(got, before) {
				return fmt.Errorf("containers changed after the restart: %v -> %v", before, got)
			}
			if f := d.footprint(t); f != base {
				return fmt.Errorf("footprint %v, before the restart %v", f, base)
			}
			return nil
		}, "%s: the node Ready with the same containers and footprint", tc.name)
		ps := d.mustShoal("service", "ps", "-f", "desired-state=running", "-q", "web")
		if n := len(strings.Fields(ps)); n != 2 {
			t.Fatalf("%s: %d tasks desired running, want 2:\n%s", tc.name, n, d.mustShoal("service", "ps", "web"))
		}
		if ls := d.mustShoal("service", "ls"); !strings.Contains(ls, "2/2") {
			t.Fatalf("%s: service ls:\n%s", tc.name, ls)
		}
		if len(match) > 1 {
			// The log says the moved file may be deleted: do it.
			if err := os.Remove(match[1]); err != nil {
				t.Fatalf("the moved-aside file the log names: %v", err)
			}
		}
		t.Logf("%s: rebuilt %v after the start, the same 2 containers, footprint unchanged", tc.name, rebuiltIn.Round(time.Millisecond))
	}

	d.mustShoal("service", "rm", "web")
	waitFor(t, 30*time.Second, "nothing left after service rm", func() error {
		if f := d.footprint(t); f != (footprint{}) {
			return fmt.Errorf("footprint %v", f)
		}
		return nil
	})
}

// TestServiceRmKillsWithinTheBound: a container that ignores SIGTERM,
// with the longest stop grace period accepted (1h), is gone within the removal bound (1
// min, worker.Config.RemovedServiceStopGrace) of `service rm`: it gets the
// signal, ignores it, and is killed once the bound has passed. Nothing of
// it is left.
func TestServiceRmKillsWithinTheBound(t *testing.T) {
	testutil.RequiresContainerd(t)
	reg := images.StartRegistry(t)
	busybox := images.PushTest(t, reg, images.Busybox)
	d := newDaemon(t, "--insecure-registry", reg)
	d.start()
	d.mustShoal("swarm", "init", "--advertise-addr", d.addr)
	d.mustShoal("service", "create", "-d", "--name", "stubborn", "--stop-grace-period", "1h",
		busybox, "sh", "-c", `trap "echo ignoring TERM" TERM; while true; do sleep 1; done`)
	waitRunning(t, d, 1, 60*time.Second)

	removed := time.Now()
	d.mustShoal("service", "rm", "stubborn")
	// The bound is 1 min: gone after it, within 70s.
	waitFor(t, 70*time.Second, "the container gone after service rm", func() error {
		if f := d.footprint(t); f != (footprint{}) {
			return fmt.Errorf("footprint %v", f)
		}
		return nil
	})
	took := time.Since(removed)
	t.Logf("gone %v after service rm", took.Round(100*time.Millisecond))
	if took < 55*time.Second {
		t.Errorf("gone after %v: the container did not ignore SIGTERM, so the bound was not tested", took)
	}
	if !strings.Contains(d.logs(), "the task did not stop within the removal's stop grace period; killing it") {
		t.Errorf("the log does not tell of the kill:\n%s", d.logs())
	}
	if out := d.mustShoal("service", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("service ls -q: %s", out)
	}
}
