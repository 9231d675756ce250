package logdriver

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary is also a driver, as shoald is: the process tests run it
// with Command as the shim would.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Command {
		Main(os.Args[2:])
	}
	os.Exit(m.Run())
}

// clock hands out times one millisecond apart.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func decodeAll(t *testing.T, b []byte) []Record {
	t.Helper()
	var out []Record
	for _, l := range bytes.SplitAfter(b, []byte{'\n'}) {
		if len(l) == 0 {
			continue
		}
		if l[len(l)-1] != '\n' {
			t.Fatalf("unterminated record %q", l)
		}
		r, err := Decode(l[:len(l)-1])
		if err != nil {
			t.Fatalf("Decode(%q): %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

// chunks is a reader that returns one chunk per Read, so line splitting is
// tested across reads.
type chunks []string

func (c *chunks) Read(p []byte) (int, error) {
	if len(*c) == 0 {
		return 0, io.EOF
	}
	n := copy(p, (*c)[0])
	if n == len((*c)[0]) {
		*c = (*c)[1:]
	} else {
		(*c)[0] = (*c)[0][n:]
	}
	return n, nil
}

func TestCopySplitsLines(t *testing.T) {
	long := strings.Repeat("a", MaxLine) + strings.Repeat("b", MaxLine) + "cc"
	out := chunks{"one\ntw", "o\n\nthr", "ee", "\n" + long[:100], long[100:] + "\n", strings.Repeat("z", MaxLine), "\nno newline"}
	var w bytes.Buffer
	clk := &clock{t: time.Unix(1000, 0)}
	if err := Copy(&w, &out, nil, clk.now); err != nil {
		t.Fatal(err)
	}
	rs := decodeAll(t, w.Bytes())
	var got []string
	for _, r := range rs {
		if r.Stream != Stdout {
			t.Errorf("stream %v", r.Stream)
		}
		s := string(r.Line)
		if len(s) > 10 {
			s = s[:1] + "*" + string(rune('0'+len(s)/MaxLine))
		}
		if r.Partial {
			s += "+"
		}
		got = append(got, s)
	}
	// a*1 is MaxLine a's, b*1 MaxLine b's, z*1 a line of exactly MaxLine.
	want := "one|two||three|a*1+|b*1+|cc|z*1|no newline+"
	if strings.Join(got, "|") != want {
		t.Errorf("records %q, want %q", strings.Join(got, "|"), want)
	}
	for i := 1; i < len(rs); i++ {
		if rs[i].Time.Before(rs[i-1].Time) {
			t.Errorf("time went back at record %d", i)
		}
	}
	// "two" and the empty line were completed by the same read: same time.
	if !rs[1].Time.Equal(rs[2].Time) || !rs[0].Time.Before(rs[1].Time) {
		t.Errorf("times %v %v %v", rs[0].Time, rs[1].Time, rs[2].Time)
	}
}

func TestCopyStreamsAndWriteErrors(t *testing.T) {
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	var w lockedBuffer
	done := make(chan error, 1)
	go func() { done <- Copy(&w, outR, errR, time.Now) }()
	for i := 0; i < 50; i++ {
		io.WriteString(outW, "out\n")
		io.WriteString(errW, "err\n")
	}
	outW.Close()
	errW.CloseWithError(errors.New("boom"))
	if err := <-done; err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Copy = %v, want the read error", err)
	}
	n := map[Stream]int{}
	for _, r := range decodeAll(t, w.Bytes()) {
		if want := map[Stream]string{Stdout: "out", Stderr: "err"}[r.Stream]; string(r.Line) != want || r.Partial {
			t.Errorf("record %+v", r)
		}
		n[r.Stream]++
	}
	if n[Stdout] != 50 || n[Stderr] != 50 {
		t.Errorf("records per stream %v", n)
	}

	// A writer that fails does not stop the copy; its error is reported.
	fail := errors.New("disk full")
	in := chunks{"a\n", "b\n"}
	calls := 0
	err := Copy(writerFunc(func(p []byte) (int, error) { calls++; return 0, fail }), &in, nil, time.Now)
	if !errors.Is(err, fail) || calls != 2 || len(in) != 0 {
		t.Errorf("Copy to a failing writer = %v after %d writes", err, calls)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.b.Bytes()...)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// shim starts the test binary as the containerd shim starts a logging
// binary: pipes on fds 3 and 4, readiness on fd 5. It returns the write
// ends once the driver is ready.
func shim(t *testing.T, args ...string) (cmd *exec.Cmd, stdout, stderr *os.File) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(exe, append([]string{Command}, args...)...)
	cmd.Env = []string{"CONTAINER_ID=c1", "CONTAINER_NAMESPACE=ns", "GORACE=atexit_sleep_ms=0"}
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	var stderrBuf bytes.Buffer
	cmd.Stderr = &stderrBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("driver stderr: %s", stderrBuf.String())
		}
	})
	outR.Close()
	errR.Close()
	readyW.Close()
	if _, err := readyR.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("readiness pipe: %v, want EOF", err)
	}
	readyR.Close()
	return cmd, outW, errW
}

func TestDriverProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "task.log")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// The driver appends to what is there.
	old := AppendRecord(nil, Record{Time: time.Unix(1, 0), Stream: Stdout, Line: []byte("earlier")})
	if err := os.WriteFile(path, old, 0o640); err != nil {
		t.Fatal(err)
	}
	cmd, out, errw := shim(t, path)
	before := time.Now()
	io.WriteString(out, "hello\n")
	io.WriteString(errw, "oops\n")
	// The lines are in the file while the pipes are still open.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if bytes.Count(b, []byte{'\n'}) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("file %q", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	io.WriteString(out, "bye")
	out.Close()
	errw.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("driver exit: %v", err)
	}
	b, _ := os.ReadFile(path)
	rs := decodeAll(t, b)
	if len(rs) != 4 || string(rs[0].Line) != "earlier" {
		t.Fatalf("records %q", b)
	}
	got := map[string]Record{}
	for _, r := range rs[1:] {
		got[string(r.Line)] = r
		if r.Time.Before(before.Add(-time.Second)) || r.Time.After(time.Now()) {
			t.Errorf("record time %v", r.Time)
		}
	}
	if got["hello"].Stream != Stdout || got["oops"].Stream != Stderr || !got["bye"].Partial || got["hello"].Partial {
		t.Errorf("records %q", b)
	}
}

func TestDriverSIGTERM(t *testing.T) {
	// The shim closes its ends of the pipes, then sends SIGTERM: what is
	// still in the pipes is written before the driver exits.
	path := filepath.Join(t.TempDir(), "new", "task.log") // the directory is made
	cmd, out, errw := shim(t, path)
	w := bufio.NewWriter(out)
	for i := 0; i < 1000; i++ {
		w.WriteString("line\n")
	}
	w.Flush()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	out.Close()
	errw.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("driver exit after SIGTERM: %v", err)
	}
	b, _ := os.ReadFile(path)
	if n := len(decodeAll(t, b)); n != 1000 {
		t.Errorf("%d records after SIGTERM, want 1000", n)
	}
}

func TestDriverCommandLine(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{Command}, {Command, "relative.log"}, {Command, "/a", "/b"}} {
		err := exec.Command(exe, args...).Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%q: %v, want exit 2", args, err)
		}
	}
}

func TestDriverUnwritableFile(t *testing.T) {
	// The log cannot be opened (a directory is in the way): the driver
	// still reads the pipes, so the container is not blocked, and exits 1.
	path := t.TempDir()
	cmd, out, errw := shim(t, path)
	if _, err := out.Write(bytes.Repeat([]byte("x\n"), 64<<10)); err != nil { // more than a pipe holds
		t.Fatalf("write to the pipe: %v", err)
	}
	out.Close()
	errw.Close()
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("driver exit = %v, want 1", err)
	}
}

func TestCopyFlushesUnfinishedLines(t *testing.T) {
	r, w := io.Pipe()
	var buf lockedBuffer
	done := make(chan error, 1)
	go func() { done <- Copy(&buf, r, nil, time.Now) }()
	io.WriteString(w, "name? ")
	start := time.Now()
	for len(buf.Bytes()) == 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the unfinished line was never written")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if waited := time.Since(start); waited < PartialFlush-50*time.Millisecond {
		t.Errorf("unfinished line written after %v, before PartialFlush", waited)
	}
	// Quick writes do not split a line.
	io.WriteString(w, "jo")
	io.WriteString(w, "e\n")
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rec := range decodeAll(t, buf.Bytes()) {
		got = append(got, string(rec.Data()))
	}
	if strings.Join(got, "|") != "name? |joe\n" {
		t.Errorf("records %q", got)
	}
}
