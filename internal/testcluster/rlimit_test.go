package testcluster

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The children raise their open-file limit: as root up to what they ask
// for, within the kernel's ceiling; otherwise an error that says so.
func TestRaiseFileLimit(t *testing.T) {
	var before syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &before); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &before) })
	b, err := os.ReadFile("/proc/sys/fs/nr_open")
	if err != nil {
		t.Fatal(err)
	}
	ceiling, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	got, err := raiseFileLimit(ceiling + 1000)
	var now syscall.Rlimit
	if err2 := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now); err2 != nil {
		t.Fatal(err2)
	}
	if now.Cur != got {
		t.Fatalf("reported %d, in force %d", got, now.Cur)
	}
	// Raising the hard limit needs CAP_SYS_RESOURCE, which root in a
	// container may lack (this machine's hard limit is 20,000): then the
	// soft limit goes up to the hard one, with an error that says so.
	if err != nil {
		if got != before.Max || !strings.Contains(err.Error(), "ulimit -Hn") {
			t.Fatalf("refused: limit %d (want the hard limit %d), err %v", got, before.Max, err)
		}
		return
	}
	if got != ceiling {
		t.Fatalf("limit %d, want the ceiling %d", got, ceiling)
	}
	if got2, err := raiseFileLimit(100); err != nil || got2 != got {
		t.Fatalf("asking for less changed it: %d, %v", got2, err)
	}
}
