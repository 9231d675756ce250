package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// HostNetnsLockPath is the file whose flock HostNetns takes.
var HostNetnsLockPath = filepath.Join(os.TempDir(), "shoal-test-hostnetns.lock")

// CleanupTB is the part of testing.TB HostNetns uses.
type CleanupTB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// hostNetnsWait bounds the wait for another test process's daemons.
const hostNetnsWait = 30 * time.Minute

var hostNet struct {
	mu    sync.Mutex
	users int
	f     *os.File
}

// HostNetns serializes, across test processes, the tests that run shoald
// in the machine's own network namespace: such daemons share that
// namespace's nftables tables (the mesh's shoal-ingress, the egress NAT),
// the VXLAN port and VNIs and the gossip port, so two swarms there at once
// break each other (go test runs packages in parallel). Tests in their own
// namespaces (test/lab) need no lock. Within one process it is shared (a
// package's tests run one at a time, and one test may start several
// daemons). Call it before starting the daemon: it is released in t's
// cleanup, after the cleanups registered later (the daemon's stop).
func HostNetns(t CleanupTB) {
	t.Helper()
	hostNet.mu.Lock()
	defer hostNet.mu.Unlock()
	if hostNet.users == 0 {
		f, err := os.OpenFile(HostNetnsLockPath, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatalf("host network namespace lock: %v", err)
		}
		deadline := time.Now().Add(hostNetnsWait)
		for {
			err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if err == nil {
				break
			}
			if err != syscall.EWOULDBLOCK || time.Now().After(deadline) {
				f.Close()
				t.Fatalf("host network namespace lock %s: %v (another test process has held it for %v: its daemons use the host's namespace)", HostNetnsLockPath, err, hostNetnsWait)
			}
			time.Sleep(100 * time.Millisecond)
		}
		hostNet.f = f
	}
	hostNet.users++
	t.Cleanup(func() {
		hostNet.mu.Lock()
		defer hostNet.mu.Unlock()
		if hostNet.users--; hostNet.users == 0 {
			_ = syscall.Flock(int(hostNet.f.Fd()), syscall.LOCK_UN)
			hostNet.f.Close()
			hostNet.f = nil
		}
	})
}

// hostNetnsHeld tells whether this process holds the lock (tests).
func hostNetnsHeld() (bool, error) {
	hostNet.mu.Lock()
	defer hostNet.mu.Unlock()
	if hostNet.users < 0 {
		return false, fmt.Errorf("negative users %d", hostNet.users)
	}
	return hostNet.users > 0, nil
}
