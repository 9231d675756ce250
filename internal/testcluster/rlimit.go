package testcluster

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// childFileLimit is the open-file limit a fleet or manager process asks
// for. A fleet process holds, like every real agent, a connection to each
// manager its nodes have had a session with: 10,000 nodes and 3 managers
// are 30,000 sockets, more than this machine's default limit (20,000), and
// a fleet that ran out failed 163,043 session attempts with "too many open
// files" in one 1M failover run. Each manager holds one connection per
// node that has used it.
const childFileLimit = 1 << 20

// raiseFileLimit raises this process's open-file limit towards want,
// within the kernel's ceiling (fs.nr_open); raising the hard limit needs
// root (CAP_SYS_RESOURCE), without which the soft limit goes up to the
// hard one. It returns the limit in force.
func raiseFileLimit(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read the open-file limit: %w", err)
	}
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if ceiling, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && want > ceiling {
			want = ceiling
		}
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	next := syscall.Rlimit{Cur: want, Max: max(want, lim.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &next); err != nil {
		// Not root: as far as the hard limit lets.
		soft := syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err2 := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &soft); err2 != nil {
			return lim.Cur, fmt.Errorf("raise the open-file limit from %d: %w", lim.Cur, err2)
		}
		return lim.Max, fmt.Errorf("raise the open-file limit to %d (it stays at %d; run as root or raise the hard limit with ulimit -Hn): %w", want, lim.Max, err)
	}
	return want, nil
}

// fleetConnBudget is the connections a fleet process may keep open: its
// open-file limit less a reserve for what else it opens (its pipes, the
// sockets of dials in progress).
func fleetConnBudget() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return 0
	}
	const reserve = 1024
	return max(int(lim.Cur)-reserve, 1)
}
