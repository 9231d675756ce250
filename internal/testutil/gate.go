package testutil

import (
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// StrictEnv names the environment variable that turns a gate's skip into a
// failure. The root tiers of the Makefile set it to 1.
const StrictEnv = "SHOAL_TEST_ROOT"

// ContainerdAddressEnv names the environment variable that, when set,
// overrides the containerd socket the tests use.
const ContainerdAddressEnv = "CONTAINERD_ADDRESS"

// DefaultContainerdAddress is containerd's socket as Debian's package runs it.
const DefaultContainerdAddress = "/run/containerd/containerd.sock"

// TB is the part of testing.TB the helpers use; tests of the helpers pass a
// recorder.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Strict reports whether gates fail instead of skipping
// (SHOAL_TEST_ROOT=1).
func Strict() bool { return os.Getenv(StrictEnv) == "1" }

// skip skips t with the reason, or fails it in strict mode.
func skip(t TB, reason string) {
	t.Helper()
	if Strict() {
		t.Fatalf("%s (%s=1: the root tier must not skip)", reason, StrictEnv)
		return
	}
	t.Skipf("skipping: %s", reason)
}

// geteuid is os.Geteuid, replaced by the helpers' tests.
var geteuid = os.Geteuid

// RequiresRoot skips t unless the test runs as root (network namespaces,
// bridges, mounts, containerd). Under SHOAL_TEST_ROOT=1 it fails instead.
func RequiresRoot(t TB) {
	t.Helper()
	if geteuid() != 0 {
		skip(t, "test requires root")
	}
}

// ContainerdAddress is the socket tests dial: $CONTAINERD_ADDRESS when set,
// else DefaultContainerdAddress.
func ContainerdAddress() string {
	if a := os.Getenv(ContainerdAddressEnv); a != "" {
		return a
	}
	return DefaultContainerdAddress
}

var probes sync.Map // address -> error (nil when it answered)

// ContainerdReachable dials containerd's socket once per address and
// process; it returns why the socket does not answer, or nil.
func ContainerdReachable(address string) error {
	if v, ok := probes.Load(address); ok {
		err, _ := v.(error)
		return err
	}
	var err error
	c, derr := net.DialTimeout("unix", address, 2*time.Second)
	if derr != nil {
		err = fmt.Errorf("containerd is not reachable at %s: %w", address, derr)
	} else {
		_ = c.Close()
	}
	v, _ := probes.LoadOrStore(address, err)
	err, _ = v.(error)
	return err
}

// RequiresContainerd skips t unless the test runs as root and containerd
// answers on ContainerdAddress(). Under SHOAL_TEST_ROOT=1 it fails
// instead. It returns the address to dial.
func RequiresContainerd(t TB) string {
	t.Helper()
	RequiresRoot(t)
	addr := ContainerdAddress()
	if err := ContainerdReachable(addr); err != nil {
		skip(t, fmt.Sprintf("test requires containerd: %v (start it with `containerd >/tmp/containerd.log 2>&1 &`; make test does)", err))
	}
	return addr
}
