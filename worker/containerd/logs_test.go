package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
	"github.com/shoal-project/shoal/worker/containerd/logdriver"
)

// msgs collects a Logs read as "stream:data" strings and the messages.
func msgs(t *testing.T, c *controller, ctx context.Context, opts worker.LogOptions) ([]string, []*api.LogMessage) {
	t.Helper()
	var got []string
	var all []*api.LogMessage
	err := c.Logs(ctx, opts, func(m *api.LogMessage) error {
		got = append(got, streamName(m.Stream)+":"+string(m.Data))
		all = append(all, m)
		return nil
	})
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	return got, all
}

func streamName(s api.LogStream) string {
	switch s {
	case api.LogStream_LOG_STREAM_STDOUT:
		return "out"
	case api.LogStream_LOG_STREAM_STDERR:
		return "err"
	}
	return s.String()
}

func record(at time.Time, s logdriver.Stream, partial bool, line string) string {
	return string(logdriver.AppendRecord(nil, logdriver.Record{Time: at, Stream: s, Partial: partial, Line: []byte(line)}))
}

// The record format read back from a file written here: times and streams
// from the records, Since by record time, Tail in records, debris skipped.
func TestLogsRecordFile(t *testing.T) {
	c, _ := logController(t)
	path := c.e.cfg.recordLogPath(c.id)
	t0 := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	file := record(at(0), logdriver.Stdout, false, "one") +
		"not a record\n" + // debris: skipped
		record(at(1), logdriver.Stderr, false, "two") +
		strings.Repeat("y", logdriver.MaxRecord+10) + "\n" + // too long to be a record
		record(at(2), logdriver.Stdout, true, "thr") +
		record(at(2), logdriver.Stdout, false, "ee") +
		record(at(3), logdriver.Stderr, true, "end without newline") +
		record(at(4), logdriver.Stdout, false, "being written")[:20] // no newline yet
	if err := os.WriteFile(path, []byte(file), 0o640); err != nil {
		t.Fatal(err)
	}
	// A plain file beside it (cannot happen, but the records win).
	if err := os.WriteFile(c.e.cfg.logPath(c.id), []byte("plain\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, all := msgs(t, c, ctx, worker.LogOptions{Tail: -1})
	want := "out:one\n|err:two\n|out:thr|out:ee\n|err:end without newline"
	if strings.Join(got, "|") != want {
		t.Errorf("all = %q, want %q", strings.Join(got, "|"), want)
	}
	for i, sec := range []int{0, 1, 2, 2, 3} {
		if i < len(all) && !all[i].Timestamp.AsTime().Equal(at(sec)) {
			t.Errorf("message %d at %v, want %v", i, all[i].Timestamp.AsTime(), at(sec))
		}
	}
	for _, tc := range []struct {
		opts worker.LogOptions
		want string
	}{
		{worker.LogOptions{Tail: -1, Since: at(2)}, "out:thr|out:ee\n|err:end without newline"},
		{worker.LogOptions{Tail: -1, Since: at(2).Add(time.Nanosecond)}, "err:end without newline"},
		{worker.LogOptions{Tail: -1, Since: at(9)}, ""},
		{worker.LogOptions{Tail: 2}, "out:ee\n|err:end without newline"}, // the unfinished record is not counted
		{worker.LogOptions{Tail: 0}, ""},
		{worker.LogOptions{Tail: 4, Since: at(1)}, "out:thr|out:ee\n|err:end without newline"},
		{worker.LogOptions{Tail: 100}, want},
	} {
		if got, _ := msgs(t, c, ctx, tc.opts); strings.Join(got, "|") != tc.want {
			t.Errorf("%+v: %q, want %q", tc.opts, strings.Join(got, "|"), tc.want)
		}
	}

	// Following: the unfinished record comes once written, then new ones,
	// also when they arrive in pieces.
	fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	lines := make(chan string, 16)
	done := make(chan error, 1)
	go func() {
		done <- c.Logs(fctx, worker.LogOptions{Tail: 1, Follow: true, Since: at(4)}, func(m *api.LogMessage) error {
			lines <- streamName(m.Stream) + ":" + string(m.Data)
			return nil
		})
	}()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	next := record(at(5), logdriver.Stderr, false, "later")
	for _, w := range []string{record(at(4), logdriver.Stdout, false, "being written")[20:], next[:10], next[10:], record(at(3), logdriver.Stdout, false, "too old")} {
		// The thing under test: a record written in pieces that straddle
		// the follower's polls is read whole, once.
		time.Sleep(logPoll / 2)
		if _, err := f.WriteString(w); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"out:being written\n", "err:later\n"} {
		select {
		case l := <-lines:
			if l != want {
				t.Errorf("followed %q, want %q", l, want)
			}
		case <-fctx.Done():
			t.Fatalf("no followed %q", want)
		}
	}
	// Nothing more follows for two polls: the record older than Since is
	// skipped.
	testutil.Consistently(t, 2*logPoll, 10*time.Millisecond, func() bool { return len(lines) == 0 },
		"no record older than Since followed")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Logs after ctx end = %v", err)
	}
}

func TestLogDriverConfig(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec")
	if err := os.WriteFile(noexec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"relative/shoald", filepath.Join(dir, "missing"), noexec, dir} {
		c := Config{LogDriver: bad}
		if err := c.validate(); !errdefs.IsInvalidArgument(err) {
			t.Errorf("LogDriver %q: validate = %v", bad, err)
		}
	}
	exe := filepath.Join(dir, "driver")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := Config{LogDriver: exe}
	if err := c.validate(); err != nil {
		t.Errorf("LogDriver %q: %v", exe, err)
	}
}

// A container writing to both streams with pauses: records with the right
// streams and increasing times, which Since and Tail select by; the last
// output without a newline comes too; Remove deletes the file.
func TestLogsFromDriver(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 60*time.Second)
	start := time.Now()
	c, err, _ := e.run(e.task(busyboxRef, "sh", "-c",
		"echo out1; sleep 0.3; echo err1 >&2; sleep 0.3; echo out2; sleep 0.3; printf 'no newline' >&2"))
	if err != nil {
		t.Fatalf("Wait = %v", err)
	}
	if _, err := os.Stat(e.cfg.logPath(c.id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("plain log file with a driver: %v", err)
	}
	var got []string
	var all []*api.LogMessage
	// The unfinished line is written PartialFlush after the process wrote
	// it (the shim keeps the pipes open until the task is deleted).
	eventually(t, 10*time.Second, "four messages", func() bool {
		got, all = msgs(t, c, ctx, worker.LogOptions{Tail: -1})
		return len(got) >= 4
	})
	if want := "out:out1\n|err:err1\n|out:out2\n|err:no newline"; strings.Join(got, "|") != want {
		t.Fatalf("messages %q, want %q", strings.Join(got, "|"), want)
	}
	ts := make([]time.Time, len(all))
	for i, m := range all {
		ts[i] = m.Timestamp.AsTime()
		if ts[i].Before(start) || ts[i].After(time.Now()) {
			t.Errorf("message %d at %v, outside the run (%v..)", i, ts[i], start)
		}
		if i > 0 && ts[i].Sub(ts[i-1]) < 200*time.Millisecond {
			t.Errorf("message %d only %v after the previous one; the task slept 300ms", i, ts[i].Sub(ts[i-1]))
		}
	}
	for _, tc := range []struct {
		opts worker.LogOptions
		want string
	}{
		{worker.LogOptions{Tail: -1, Since: ts[1]}, "err:err1\n|out:out2\n|err:no newline"},
		{worker.LogOptions{Tail: -1, Since: ts[1].Add(time.Millisecond)}, "out:out2\n|err:no newline"},
		{worker.LogOptions{Tail: 1}, "err:no newline"},
		{worker.LogOptions{Tail: 3, Since: ts[2]}, "out:out2\n|err:no newline"},
	} {
		if got, _ := msgs(t, c, ctx, tc.opts); strings.Join(got, "|") != tc.want {
			t.Errorf("%+v: %q, want %q", tc.opts, strings.Join(got, "|"), tc.want)
		}
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.cfg.recordLogPath(c.id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log file after Remove: %v", err)
	}
	if got, _ := msgs(t, c, ctx, worker.LogOptions{Tail: -1}); len(got) != 0 {
		t.Errorf("logs after Remove: %q", got)
	}
}

// follow reads messages with Follow until n have come, and returns them
// as "stream:data".
func follow(t *testing.T, c *controller, opts worker.LogOptions, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opts.Follow = true
	var got []string
	errEnough := errors.New("enough")
	err := c.Logs(ctx, opts, func(m *api.LogMessage) error {
		got = append(got, streamName(m.Stream)+":"+string(m.Data))
		if len(got) == n {
			return errEnough
		}
		return nil
	})
	if !errors.Is(err, errEnough) {
		t.Fatalf("followed %q (%v), want %d messages", got, err, n)
	}
	return got
}

// checkTicks checks that each stream's messages of a tick task count up
// (the order across streams is the order the driver read them in, which
// is not the task's) and returns the highest count.
func checkTicks(t *testing.T, msgs []string, after int) int {
	t.Helper()
	last := map[string]int{"out": after - 1, "err": after - 1}
	top := 0
	for _, m := range msgs {
		stream, n := parseTick(t, m)
		if n <= last[stream] || (stream == "out") != strings.Contains(m, ":tick ") {
			t.Errorf("message %q after %d in %q", m, last[stream], msgs)
		}
		last[stream] = n
		top = max(top, n)
	}
	return top
}

// The driver is the shim's child: it keeps writing while no executor runs,
// and a fresh executor (a restarted shoald) reads on.
func TestLogDriverSurvivesRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	task := e.task(busyboxRef, "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; echo tock $i >&2; sleep 0.1; done")
	c := e.controller(task)
	mustPrepareStart(t, c)
	first := follow(t, c, worker.LogOptions{Tail: -1}, 4)
	checkTicks(t, first, 1)
	if pid := driverPid(t, e.cfg.recordLogPath(c.id)); pid == 0 {
		out, _ := exec.Command("sh", "-c", "ps -eo pid,ppid,args | grep -i logdriver").CombinedOutput()
		t.Errorf("no log driver process found for %s: %s", e.cfg.recordLogPath(c.id), out)
	} else if ppid := parentOf(t, pid); ppid == os.Getpid() {
		t.Errorf("the log driver %d is the executor's child", pid)
	}

	e.ex.Close()
	// The driver writes on while nobody watches: wait until the record
	// file has grown by a few lines' worth.
	size := func() int64 {
		fi, err := os.Stat(e.cfg.recordLogPath(c.id))
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	closedAt := size()
	testutil.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool { return size() > closedAt+512 },
		"the log driver to write while no executor runs")
	ex2, err := New(ctxT(t, 30*time.Second), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.ex = ex2
	c2 := e.controller(task)
	if err := c2.Start(ctxT(t, 10*time.Second)); !errors.Is(err, worker.ErrTaskStarted) {
		t.Fatalf("Start after restart = %v", err)
	}
	// What was written while down is there, in order, with its times.
	got, all := msgs(t, c2, ctxT(t, 10*time.Second), worker.LogOptions{Tail: -1})
	if len(got) < 10 || strings.Join(got[:4], "|") != strings.Join(first, "|") {
		t.Fatalf("after restart %d messages: %q", len(got), got)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Timestamp.AsTime().Before(all[i-1].Timestamp.AsTime()) {
			t.Errorf("message %d goes back in time", i)
		}
	}
	last := checkTicks(t, got, 1)
	// And more keeps coming, to the new executor's reader.
	checkTicks(t, follow(t, c2, worker.LogOptions{Tail: -1, Since: time.Now()}, 4), last)
}

func parseTick(t *testing.T, m string) (string, int) {
	t.Helper()
	stream, rest, _ := strings.Cut(m, ":")
	f := strings.Fields(rest)
	if len(f) != 2 {
		t.Fatalf("message %q", m)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("message %q", m)
	}
	return stream, n
}

// driverPid finds the process whose command line names path.
func driverPid(t *testing.T, path string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("\x00"+logdriver.ArgPath+"\x00"+path+"\x00")) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		return pid
	}
	return 0
}

func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid ...: comm may hold spaces, so cut after ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// Without a driver (tools and tests of other packages), the shim's plain
// file: both streams as stdout, read as before.
func TestLogsWithoutDriver(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ex.Close()
	cfg := e.cfg
	cfg.LogDriver = ""
	ex, err := New(ctxT(t, 30*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.ex = ex
	// The sleep at the end: the 1.6 shim's copier of a plain file can lose
	// stderr output written just before the exit (its stdout copier, at
	// EOF, closes the file both share).
	c, werr, _ := e.run(e.task(busyboxRef, "sh", "-c", "echo a; sleep 0.2; echo b >&2; sleep 0.5"))
	if werr != nil {
		t.Fatal(werr)
	}
	// The shim copies the output into the file on its own time: the last
	// line may land after the exit is reported.
	var got []string
	testutil.Eventually(t, 10*time.Second, 50*time.Millisecond, func() bool {
		got, _ = msgs(t, c, ctxT(t, 10*time.Second), worker.LogOptions{Tail: -1})
		return len(got) >= 2
	}, "both lines in the log file")
	if strings.Join(got, "|") != "out:a\n|out:b\n" {
		b, _ := os.ReadFile(e.cfg.logPath(c.id))
		t.Errorf("messages %q, file %q", got, b)
	}
	if _, err := os.Stat(e.cfg.recordLogPath(c.id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record file without a driver: %v", err)
	}
	if err := c.Remove(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.cfg.logPath(c.id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("plain log after Remove: %v", err)
	}
}
