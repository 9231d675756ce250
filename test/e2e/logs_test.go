package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/images"
	"github.com/shoal-project/shoal/test/lab"
)

// logBytes sums the sizes of the log files of a service's tasks under dir:
// <task>.cri and its rotated <task>.cri.N.
func logBytes(t *testing.T, dir string, taskIDs []string) (files int, total int64) {
	t.Helper()
	for _, id := range taskIDs {
		matches, _ := filepath.Glob(filepath.Join(dir, id+".cri*"))
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil {
				files++
				total += fi.Size()
			}
		}
	}
	return files, total
}

// Container logs as an operator meets them: a node's --log-dir and
// --log-opt defaults, a service's own --log-opt, --log-driver none. Two
// containers that write without pause stay within their budgets, nothing
// of theirs lands in the data dir, and `service logs --tail 1` shows a
// line of the last seconds.
func TestContainerLogsBounded(t *testing.T) {
	testutil.RequiresContainerd(t)
	reg := images.StartRegistry(t)
	busybox := images.PushTest(t, reg, images.Busybox)
	logDir := filepath.Join(e2eRoot, fmt.Sprintf("logs-%d-%d", os.Getpid(), time.Now().UnixNano()%1000000))
	t.Cleanup(func() { _ = os.RemoveAll(logDir) })
	d := newDaemon(t, "--insecure-registry", reg, "--log-dir", logDir, "--log-opt", "max-size=200k", "--log-opt", "max-file=2")
	d.start()
	d.mustShoal("swarm", "init", "--advertise-addr", d.addr)

	chatty := "i=0; while :; do i=$((i+1)); echo chatty $i 0123456789012345678901234567890123456789; done"
	d.mustShoal("service", "create", "-d", "--name", "chatty", busybox, "sh", "-c", chatty)
	d.mustShoal("service", "create", "-d", "--name", "capped", "--log-driver", "json-file",
		"--log-opt", "max-size=50k", "--log-opt", "max-file=3", busybox, "sh", "-c", chatty)
	d.mustShoal("service", "create", "-d", "--name", "quiet", "--log-driver", "none", busybox, "sh", "-c", chatty)
	waitRunning(t, d, 3, 60*time.Second)

	if out := d.mustShoal("service", "inspect", "-f", "{{.Spec.TaskTemplate.LogDriver.Name}} {{.Spec.TaskTemplate.LogDriver.Options}}", "capped"); out != "json-file map[max-file:3 max-size:50k]\n" {
		t.Errorf("inspect capped: %q", out)
	}
	ctl := d.control()
	taskIDs := func(name string) []string {
		tasks, err := serviceTasks(ctl, name)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, task := range tasks {
			ids = append(ids, task.GetId())
		}
		return ids
	}
	budgets := map[string]int64{"chatty": 200000 * 2, "capped": 50000 * 3}
	const oneRecord = 64 + 16<<10
	// Every second for 15s, each service's logs stay within its budget.
	testutil.ConsistentlyErr(t, 15*time.Second, time.Second, func() error {
		for name, budget := range budgets {
			if files, total := logBytes(t, logDir, taskIDs(name)); total > budget+oneRecord {
				return fmt.Errorf("%s: %d log files of %d bytes, over its budget of %d", name, files, total, budget)
			}
		}
		return nil
	}, "the logs within their budgets")
	for name := range budgets {
		// A single read may fall between a rotation's steps, and under
		// load the writer is slow: wait (bounded) for half the budget.
		testutil.EventuallyErr(t, 30*time.Second, 200*time.Millisecond, func() error {
			if files, total := logBytes(t, logDir, taskIDs(name)); total < budgets[name]/2 {
				return fmt.Errorf("%d files of %d bytes: it wrote too little to test the budget", files, total)
			}
			return nil
		}, "%s to write half its log budget", name)
		out := d.mustShoal("service", "logs", "-t", "--tail", "1", name)
		// name.1.<task>@<node>    | <time> chatty <n> …
		_, line, _ := strings.Cut(out, "| ")
		f := strings.Fields(line)
		if len(f) < 2 || f[1] != "chatty" || strings.Count(out, "\n") != 1 {
			t.Fatalf("service logs --tail 1 %s: %q", name, out)
		}
		at, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil || time.Since(at) > 5*time.Second {
			t.Errorf("service logs --tail 1 %s: line of %v (%v): %q", name, at, err, out)
		}
	}
	if files, _ := logBytes(t, logDir, taskIDs("quiet")); files != 0 {
		t.Errorf("driver none left %d log files", files)
	}
	out, err := d.shoal("service", "logs", "quiet")
	if err == nil || !strings.Contains(out, "configured logging driver does not support reading") {
		t.Errorf("service logs quiet: %v %q", err, out)
	}
	// Nothing the containers wrote is in the data dir.
	if m, _ := filepath.Glob(filepath.Join(d.dir, "data", "executor", "logs", "*")); len(m) != 0 {
		t.Errorf("log files in the data dir: %v", m)
	}
	d.mustShoal("service", "rm", "chatty", "capped", "quiet")
	waitFor(t, 30*time.Second, "no log files after service rm", func() error {
		if m, _ := filepath.Glob(filepath.Join(logDir, "*")); len(m) != 0 {
			return fmt.Errorf("left: %v", m)
		}
		return nil
	})
}

// shoald refuses to start without its log driver, and with a bad
// --log-opt, saying what to do.
func TestShoaldLogFlagsRefused(t *testing.T) {
	testutil.RequiresContainerd(t)
	bin := lab.BuildShoald(t)
	alone := filepath.Join(t.TempDir(), "shoald")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, b, 0o755); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	for _, c := range []struct {
		bin  string
		args []string
		want string
	}{
		{alone, nil, "the log driver shoal-logdriver is not next to shoald"},
		{bin, []string{"--log-opt", "max-size=lots"}, `--log-opt: invalid max-size "lots"`},
		{bin, []string{"--log-opt", "max-file=0"}, `--log-opt: invalid max-file "0"`},
		{bin, []string{"--log-opt", "tag=x"}, `--log-opt: log option "tag" of json-file is not supported`},
	} {
		args := append([]string{"--data-dir", data, "--control-socket", filepath.Join(data, "ctl.sock")}, c.args...)
		cmd := exec.Command(c.bin, args...)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("shoald %v: %v, %q; want an error containing %q", c.args, err, out, c.want)
		}
	}
}
