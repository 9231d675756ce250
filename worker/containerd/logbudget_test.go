package containerd

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
	"github.com/shoal-project/shoal/worker/containerd/logdriver"
)

// logFiles returns the sizes of the task's log files: the current one and
// every rotated one there is.
func logFiles(t *testing.T, path string) (sizes []int64, total int64) {
	t.Helper()
	matches, _ := filepath.Glob(path + "*")
	for _, m := range matches {
		if m != path && !strings.HasPrefix(m, path+".") {
			continue
		}
		fi, err := os.Stat(m)
		if err != nil {
			continue // rotated away meanwhile
		}
		sizes = append(sizes, fi.Size())
		total += fi.Size()
	}
	return sizes, total
}

// lastLine reads the task's newest line with Tail 1.
func lastLine(t *testing.T, c *controller) *api.LogMessage {
	t.Helper()
	var last *api.LogMessage
	err := c.Logs(ctxT(t, 10*time.Second), worker.LogOptions{Tail: 1}, func(m *api.LogMessage) error {
		last = m
		return nil
	})
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	if last == nil {
		t.Fatal("Logs with Tail 1 returned nothing")
	}
	return last
}

// chattyCount is the counter in a chatty task's line "chatty N 0123…".
func chattyCount(t *testing.T, m *api.LogMessage) int {
	t.Helper()
	f := strings.Fields(string(m.Data))
	if len(f) != 3 || f[0] != "chatty" {
		t.Fatalf("line %q", m.Data)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("line %q", m.Data)
	}
	return n
}

// A container that writes without pause stays within its log budget
// (max-size × max-file, plus one record at worst), is never held up by its
// log (its counter keeps rising), and Tail 1 returns a line of the last
// moments; the lines kept follow each other without a gap; Remove deletes
// every file.
func TestLogBudgetChattyContainer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const maxSize, maxFile = 100000, 3 // "100k" as Docker parses it
	task := e.task(busyboxRef, "sh", "-c",
		"i=0; while :; do i=$((i+1)); echo chatty $i 01234567890123456789012345678901234567890123456789; done")
	task.Spec.LogDriver = &api.Driver{Name: "json-file", Options: map[string]string{"max-size": "100k", "max-file": "3"}}
	c := e.controller(task)
	mustPrepareStart(t, c)
	path := e.cfg.recordLogPath(c.id)

	var tl taskLog
	b, err := os.ReadFile(filepath.Join(e.cfg.taskDir(c.id), taskLogFile))
	if err != nil || json.Unmarshal(b, &tl) != nil || tl != (taskLog{Kind: logRecords, Path: path, MaxSize: maxSize, MaxFile: maxFile}) {
		t.Fatalf("log.json %q (%v): %+v", b, err, tl)
	}
	budget := int64(maxSize*maxFile + logdriver.MaxRecord)
	prev, rotations := 0, 0
	var lastSizes []int64
	// Sampled every 500ms for 12s: the budget, the file count and the
	// container's progress hold at every sample.
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(12 * time.Second); time.Now().Before(deadline); {
		<-tick.C
		sizes, total := logFiles(t, path)
		if total > budget {
			t.Fatalf("log files %v: %d bytes, over the budget of %d", sizes, total, budget)
		}
		if len(sizes) > maxFile {
			t.Fatalf("%d log files, max-file is %d", len(sizes), maxFile)
		}
		if len(sizes) == maxFile {
			rotations++
		}
		m := lastLine(t, c)
		if age := time.Since(m.Timestamp.AsTime()); age > 2*time.Second {
			t.Fatalf("the newest line is %v old", age)
		}
		n := chattyCount(t, m)
		if n <= prev {
			t.Fatalf("the container's counter went from %d to %d: held up by its log?", prev, n)
		}
		prev, lastSizes = n, sizes
	}
	if rotations == 0 {
		t.Fatalf("never three files (last %v): the container wrote too little to test rotation", lastSizes)
	}
	t.Logf("after 12s: counter %d, files %v", prev, lastSizes)
	// The lines kept are contiguous: rotation dropped whole files only.
	var kept []int
	err = c.Logs(ctxT(t, 10*time.Second), worker.LogOptions{Tail: 1500}, func(m *api.LogMessage) error {
		kept = append(kept, chattyCount(t, m))
		return nil
	})
	if err != nil || len(kept) != 1500 {
		t.Fatalf("Tail 1500: %d lines, %v", len(kept), err)
	}
	for i := 1; i < len(kept); i++ {
		if kept[i] != kept[i-1]+1 {
			t.Fatalf("line %d follows %d", kept[i], kept[i-1])
		}
	}
	if err := c.Remove(ctxT(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	if sizes, _ := logFiles(t, path); len(sizes) != 0 {
		t.Errorf("%d log files left after Remove", len(sizes))
	}
}

// Log driver none: the output goes nowhere, the container writes freely
// (no block, no SIGPIPE), and Logs says logs are disabled, in Docker's
// words.
func TestLogDriverNone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	task := e.task(busyboxRef, "sh", "-c", "i=0; while [ $i -lt 20000 ]; do echo out $i; echo err $i >&2; i=$((i+1)); done")
	task.Spec.LogDriver = &api.Driver{Name: "none"}
	c := e.controller(task)
	mustPrepareStart(t, c)
	if err := c.Wait(ctxT(t, 60*time.Second)); err != nil {
		t.Fatalf("Wait = %v, want a clean exit", err)
	}
	err := c.Logs(ctxT(t, 10*time.Second), worker.LogOptions{Tail: -1}, func(*api.LogMessage) error { return nil })
	if !errors.Is(err, ErrLogsDisabled) || err.Error() != "configured logging driver does not support reading" {
		t.Errorf("Logs = %v, want ErrLogsDisabled", err)
	}
	if sizes, _ := logFiles(t, e.cfg.recordLogPath(c.id)); len(sizes) != 0 {
		t.Errorf("log files for driver none: %v", sizes)
	}
	if sizes, _ := logFiles(t, e.cfg.logPath(c.id)); len(sizes) != 0 {
		t.Errorf("plain log files for driver none: %v", sizes)
	}
}

// An unsupported driver or option is an invalid spec: rejected before any
// pull, with the reason.
func TestLogDriverRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, d := range []*api.Driver{
		{Name: "syslog"},
		{Name: "json-file", Options: map[string]string{"max-size": "lots"}},
		{Name: "local", Options: map[string]string{"compress": "true"}},
	} {
		task := e.task("127.0.0.1:1/never/pulled:1", "true")
		task.Spec.LogDriver = d
		err := e.controller(task).Prepare(ctxT(t, 10*time.Second))
		if !worker.IsRejected(err) || !strings.Contains(err.Error(), "invalid log driver") {
			t.Errorf("%v: Prepare = %v, want a rejection", d, err)
		}
	}
}

// --log-dir: logs go to the directory given; a task keeps the directory
// it was prepared with, so a restart with another --log-dir still reads
// and removes its files.
func TestLogDir(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ex.Close()
	logDir := filepath.Join(t.TempDir(), "elsewhere")
	cfg := e.cfg
	cfg.LogDir = logDir
	ex, err := New(ctxT(t, 30*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.ex = ex
	task := e.task(busyboxRef, "sh", "-c", "echo to the other dir")
	c, werr, out := e.run(task)
	if werr != nil || out != "to the other dir\n" {
		t.Fatalf("run: %v, %q", werr, out)
	}
	path := filepath.Join(logDir, c.id+".cri")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no log in --log-dir: %v", err)
	}
	if _, err := os.Stat(e.cfg.recordLogPath(c.id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log in the default directory too: %v", err)
	}

	e.ex.Close()
	cfg.LogDir = filepath.Join(t.TempDir(), "third")
	if e.ex, err = New(ctxT(t, 30*time.Second), cfg); err != nil {
		t.Fatal(err)
	}
	c2 := e.controller(task)
	if got := e.logs(c2); got != "to the other dir\n" {
		t.Errorf("after --log-dir changed: %q", got)
	}
	if err := c2.Remove(ctxT(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log left after Remove: %v", err)
	}
}

// Logs with Follow on a task not prepared yet waits until the task says
// where its log is, then reads it there.
func TestLogsFollowBeforePrepare(t *testing.T) {
	c, _ := logController(t)
	if err := os.MkdirAll(c.e.cfg.taskDir(c.id), 0o755); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	ctx := ctxT(t, 20*time.Second)
	done := make(chan error, 1)
	go func() {
		done <- c.Logs(ctx, worker.LogOptions{Tail: -1, Follow: true}, func(m *api.LogMessage) error {
			got <- string(m.Data)
			return nil
		})
	}()
	// The thing under test: Logs is already polling (two polls) when
	// log.json comes to name another file, and must read that one.
	time.Sleep(2 * logPoll)
	path := filepath.Join(t.TempDir(), "other", c.id+".cri")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	rec := logdriver.AppendRecord(nil, logdriver.Record{Time: time.Now(), Stream: logdriver.Stdout, Line: []byte("hello")})
	if err := os.WriteFile(path, rec, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeTaskLog(c.e.cfg.taskDir(c.id), taskLog{Kind: logRecords, Path: path, MaxSize: 1000, MaxFile: 2}); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-got:
		if l != "hello\n" {
			t.Errorf("followed %q", l)
		}
	case err := <-done:
		t.Fatalf("Logs returned before reading the log: %v", err)
	case <-ctx.Done():
		t.Fatal("Logs never read the log named once the task was prepared")
	}
}

// A reader of log.json never sees it half written (CI once saw an empty
// file, read as damaged, while the task was being prepared).
func TestTaskLogIsNeverReadTorn(t *testing.T) {
	c, _ := logController(t)
	dir := c.e.cfg.taskDir(c.id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tl := taskLog{Kind: logRecords, Path: filepath.Join(dir, "x.cri"), MaxSize: 1000, MaxFile: 2}
	if err := writeTaskLog(dir, tl); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	wrote := make(chan error, 1)
	go func() {
		defer close(wrote)
		for i := 0; i < 300; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := writeTaskLog(dir, tl); err != nil {
				wrote <- err
				return
			}
		}
	}()
	defer close(stop)
	for i := 0; i < 20000; i++ {
		if _, found, err := c.taskLog(); err != nil || !found {
			t.Fatalf("read %d while rewriting: found %v, %v", i, found, err)
		}
		select {
		case err, ok := <-wrote:
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return
			}
		default:
		}
	}
}
