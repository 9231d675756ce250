package logdriver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
)

// The test binary is also a driver: the process tests run it as the shim
// would, with this variable set.
const asDriver = "SHOAL_LOGDRIVER_TEST_AS_DRIVER"

func TestMain(m *testing.M) {
	if os.Getenv(asDriver) == "1" {
		Main(os.Args[1:])
	}
	os.Exit(m.Run())
}

// shim starts the test binary as the containerd shim starts a logging
// binary: pipes on fds 3 and 4, readiness on fd 5, an environment of
// CONTAINER_ID and CONTAINER_NAMESPACE only. It returns the write ends
// once the driver is ready.
func shim(t *testing.T, args ...string) (cmd *exec.Cmd, stdout, stderr *os.File, errBuf *bytes.Buffer) {
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
	cmd = exec.Command(exe, args...)
	cmd.Env = []string{"CONTAINER_ID=c1", "CONTAINER_NAMESPACE=ns", asDriver + "=1", "GORACE=atexit_sleep_ms=0"}
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	errBuf = &bytes.Buffer{}
	cmd.Stderr = errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("driver stderr: %s", errBuf.String())
		}
	})
	outR.Close()
	errR.Close()
	readyW.Close()
	if _, err := readyR.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("readiness pipe: %v, want EOF", err)
	}
	readyR.Close()
	return cmd, outW, errW, errBuf
}

func argv(path string, maxSize int64, maxFile int) []string {
	var out []string
	for k, v := range Args(path, maxSize, maxFile) {
		out = append(out, k, v)
	}
	return out
}

func TestDriverProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "task.cri")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// The driver appends to what is there.
	old := AppendRecord(nil, Record{Time: time.Unix(1, 0), Stream: Stdout, Line: []byte("earlier")})
	if err := os.WriteFile(path, old, 0o640); err != nil {
		t.Fatal(err)
	}
	cmd, out, errw, _ := shim(t, argv(path, 0, 1)...)
	before := time.Now()
	io.WriteString(out, "hello\n")
	io.WriteString(errw, "oops\n")
	// The lines are in the file while the pipes are still open.
	waitFor(t, func() bool {
		b, _ := os.ReadFile(path)
		return bytes.Count(b, []byte{'\n'}) == 3
	})
	// An unfinished line is written PartialFlush after it came.
	io.WriteString(out, "prompt> ")
	start := time.Now()
	waitFor(t, func() bool {
		b, _ := os.ReadFile(path)
		return bytes.Count(b, []byte{'\n'}) == 4
	})
	if waited := time.Since(start); waited < PartialFlush-50*time.Millisecond {
		t.Errorf("unfinished line written after %v, before PartialFlush", waited)
	}
	io.WriteString(out, "bye")
	out.Close()
	errw.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("driver exit: %v", err)
	}
	b, _ := os.ReadFile(path)
	rs := decodeAll(t, b)
	if len(rs) != 5 || string(rs[0].Line) != "earlier" {
		t.Fatalf("records %q", b)
	}
	got := map[string]Record{}
	for _, r := range rs[1:] {
		got[string(r.Line)] = r
		if r.Time.Before(before.Add(-time.Second)) || r.Time.After(time.Now()) {
			t.Errorf("record time %v", r.Time)
		}
	}
	if got["hello"].Stream != Stdout || got["oops"].Stream != Stderr || !got["bye"].Partial || got["hello"].Partial || !got["prompt> "].Partial {
		t.Errorf("records %q", b)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, cond, "the condition")
}

func TestDriverSIGTERM(t *testing.T) {
	// The shim closes its ends of the pipes, then sends SIGTERM: what is
	// still in the pipes is written before the driver exits.
	path := filepath.Join(t.TempDir(), "new", "task.cri") // the directory is made
	cmd, out, errw, _ := shim(t, argv(path, 0, 1)...)
	w := bufio.NewWriter(out)
	for i := 0; i < 1000; i++ {
		w.WriteString("line\n")
	}
	w.Flush()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The thing under test: SIGTERM arrives while the pipes still hold
	// data and are open; the driver drains them once the shim closes them.
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
	for _, args := range [][]string{{}, {"path"}, {"path", "relative.log"}, {"path", "/a", "path", "/b"},
		{"path", "/a", "max-size", "-1"}, {"path", "/a", "max-file", "0"}, {"path", "/a", "colour", "red"}} {
		cmd := exec.Command(exe, args...)
		cmd.Env = []string{asDriver + "=1"}
		err := cmd.Run()
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
	cmd, out, errw, _ := shim(t, argv(path, 0, 1)...)
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

func TestDriverOneProc(t *testing.T) {
	// The driver runs itself again with GOMAXPROCS=1, keeping its pid and
	// its pipes.
	path := filepath.Join(t.TempDir(), "t.cri")
	cmd, out, errw, _ := shim(t, argv(path, 0, 1)...)
	env, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(env, []byte("\x00GOMAXPROCS=1\x00")) && !bytes.HasSuffix(env, []byte("\x00GOMAXPROCS=1\x00")) {
		t.Errorf("driver environment %q has no GOMAXPROCS=1", env)
	}
	fmt.Fprintln(out, "still connected")
	out.Close()
	errw.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if rs := decodeAll(t, b); len(rs) != 1 || string(rs[0].Line) != "still connected" {
		t.Errorf("records %q", b)
	}
}
