package testutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// recorder is a TB that records instead of stopping the goroutine.
type recorder struct {
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	if r.skipped == "" && r.failed == "" {
		r.skipped = fmt.Sprintf(format, args...)
	}
}
func (r *recorder) Fatalf(format string, args ...any) {
	if r.skipped == "" && r.failed == "" {
		r.failed = fmt.Sprintf(format, args...)
	}
}

func asUID(t *testing.T, uid int) {
	old := geteuid
	geteuid = func() int { return uid }
	t.Cleanup(func() { geteuid = old })
}

func TestRequiresRootSkipsOrFails(t *testing.T) {
	asUID(t, 1000)
	t.Setenv(StrictEnv, "")
	var r recorder
	RequiresRoot(&r)
	if !strings.Contains(r.skipped, "requires root") || r.failed != "" {
		t.Errorf("non-root, not strict: skipped %q failed %q, want a skip naming root", r.skipped, r.failed)
	}
	t.Setenv(StrictEnv, "1")
	r = recorder{}
	RequiresRoot(&r)
	if !strings.Contains(r.failed, "requires root") || !strings.Contains(r.failed, StrictEnv) || r.skipped != "" {
		t.Errorf("non-root, strict: skipped %q failed %q, want a failure naming root and %s", r.skipped, r.failed, StrictEnv)
	}
	asUID(t, 0)
	r = recorder{}
	RequiresRoot(&r)
	if r != (recorder{}) {
		t.Errorf("root: %+v, want neither skip nor failure", r)
	}
}

func TestRequiresContainerd(t *testing.T) {
	asUID(t, 0)
	t.Setenv(StrictEnv, "")
	missing := filepath.Join(t.TempDir(), "none.sock")
	t.Setenv(ContainerdAddressEnv, missing)
	var r recorder
	if got := RequiresContainerd(&r); got != missing {
		t.Errorf("address %q, want %q from $%s", got, missing, ContainerdAddressEnv)
	}
	if !strings.Contains(r.skipped, "requires containerd") || !strings.Contains(r.skipped, missing) {
		t.Errorf("skipped %q, want the reason with the address", r.skipped)
	}

	// A socket that answers passes the gate.
	sock := filepath.Join(t.TempDir(), "c.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv(ContainerdAddressEnv, sock)
	r = recorder{}
	RequiresContainerd(&r)
	if r != (recorder{}) {
		t.Errorf("listening socket: %+v, want neither skip nor failure", r)
	}

	// Not root: skipped for root first, whatever the socket.
	asUID(t, 1000)
	r = recorder{}
	RequiresContainerd(&r)
	if !strings.Contains(r.skipped, "requires root") {
		t.Errorf("non-root: skipped %q, want root named", r.skipped)
	}
}

func TestContainerdAddressDefault(t *testing.T) {
	t.Setenv(ContainerdAddressEnv, "")
	if got := ContainerdAddress(); got != DefaultContainerdAddress {
		t.Errorf("ContainerdAddress() = %q, want %q", got, DefaultContainerdAddress)
	}
}

func TestEventually(t *testing.T) {
	var n atomic.Int32
	var r recorder
	Eventually(&r, 5*time.Second, time.Millisecond, func() bool { return n.Add(1) >= 3 }, "three calls")
	if r.failed != "" || n.Load() != 3 {
		t.Errorf("failed %q after %d calls, want success on the third", r.failed, n.Load())
	}

	r = recorder{}
	start := time.Now()
	Eventually(&r, 30*time.Millisecond, 5*time.Millisecond, func() bool { return false }, "the %s", "impossible")
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Errorf("gave up after %s, before the timeout", el)
	}
	if want := "timed out after 30ms waiting for the impossible"; r.failed != want {
		t.Errorf("failed %q, want %q", r.failed, want)
	}

	r = recorder{}
	EventuallyErr(&r, 20*time.Millisecond, 5*time.Millisecond, func() error { return errors.New("still 2 tasks") }, "one task")
	if !strings.HasSuffix(r.failed, "waiting for one task: still 2 tasks") {
		t.Errorf("failed %q, want the last error", r.failed)
	}
}

func TestConsistently(t *testing.T) {
	var r recorder
	var n atomic.Int32
	start := time.Now()
	Consistently(&r, 40*time.Millisecond, 5*time.Millisecond, func() bool { n.Add(1); return true }, "steady")
	if r.failed != "" {
		t.Errorf("failed %q on a condition that always holds", r.failed)
	}
	if el := time.Since(start); el < 40*time.Millisecond || n.Load() < 2 {
		t.Errorf("returned after %s and %d checks, want the whole 40ms and several checks", el, n.Load())
	}

	r = recorder{}
	n.Store(0)
	Consistently(&r, 5*time.Second, time.Millisecond, func() bool { return n.Add(1) < 4 }, "replicas at %d", 3)
	if !strings.HasPrefix(r.failed, "replicas at 3 stopped holding after") || n.Load() != 4 {
		t.Errorf("failed %q after %d checks, want a failure at the fourth check", r.failed, n.Load())
	}

	r = recorder{}
	ConsistentlyErr(&r, time.Second, time.Millisecond, func() error { return errors.New("a new task") }, "no change")
	if !strings.HasPrefix(r.failed, "no change stopped holding") || !strings.HasSuffix(r.failed, ": a new task") {
		t.Errorf("failed %q, want the error", r.failed)
	}
}

func TestEventuallyClockAdvancesInSteps(t *testing.T) {
	clk := clockwork.NewFakeClock()
	start := clk.Now()
	fired := make(chan struct{})
	timer := clk.AfterFunc(100*time.Millisecond, func() { close(fired) })
	defer timer.Stop()
	done := func() bool {
		select {
		case <-fired:
			return true
		default:
			return false
		}
	}
	var r recorder
	EventuallyClock(&r, clk, 10*time.Millisecond, time.Second, 50*time.Millisecond, done, "the timer")
	if r.failed != "" {
		t.Fatalf("failed %q", r.failed)
	}
	// The timer fires in the step that reaches its deadline, not later.
	if got := clk.Since(start); got != 100*time.Millisecond {
		t.Errorf("fake time advanced %s, want exactly 100ms (ten steps)", got)
	}

	r = recorder{}
	before := clk.Now()
	EventuallyClock(&r, clk, 10*time.Millisecond, 50*time.Millisecond, time.Millisecond, func() bool { return false }, "never")
	if want := "never did not happen within 50ms of fake time"; r.failed != want {
		t.Errorf("failed %q, want %q", r.failed, want)
	}
	if got := clk.Since(before); got != 50*time.Millisecond {
		t.Errorf("fake time advanced %s, want 50ms", got)
	}
}

func TestHostNetnsSharedInProcessExclusiveAcross(t *testing.T) {
	saved := HostNetnsLockPath
	t.Cleanup(func() { HostNetnsLockPath = saved })
	HostNetnsLockPath = filepath.Join(t.TempDir(), "lock")
	other := func() error { // another process's attempt: a second open file description
		f, err := os.OpenFile(HostNetnsLockPath, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			return err
		}
		return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}
	t.Run("held", func(t *testing.T) {
		HostNetns(t)
		HostNetns(t) // a second daemon of the same test: no deadlock
		if held, err := hostNetnsHeld(); !held || err != nil {
			t.Fatalf("held %v %v", held, err)
		}
		if err := other(); err != syscall.EWOULDBLOCK {
			t.Fatalf("another file description got the lock: %v", err)
		}
	})
	if held, err := hostNetnsHeld(); held || err != nil {
		t.Fatalf("after the subtest: held %v %v", held, err)
	}
	if err := other(); err != nil {
		t.Fatalf("the lock was not released: %v", err)
	}
}

func TestSortedLines(t *testing.T) {
	if got := SortedLines(" b \n\na\n  \nc"); strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("SortedLines: %q", got)
	}
	if got := SortedLines(""); len(got) != 0 {
		t.Fatalf("SortedLines of nothing: %q", got)
	}
}
