package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/overlay/datapath"
)

// CleanNode removes a bridge's egress NAT table even when the bridge is
// already gone (a killed daemon's table, whoever removed its bridge), in
// the calling thread's namespace, and leaves other tables alone.
func TestCleanNodeRemovesTheEgressTable(t *testing.T) {
	testutil.RequiresRoot(t)
	name := fmt.Sprintf("shoal-clean-%d", os.Getpid())
	if out, err := run("ip", "netns", "add", name); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = run("ip", "netns", "del", name) })
	ns := &NS{Netns: name}
	subnet := netip.MustParsePrefix("10.213.0.0/20")
	if err := ns.Do(func() error {
		if err := datapath.EnsureEgress("shoal-cln-a", subnet); err != nil {
			return err
		}
		return datapath.EnsureEgress("shoal-cln-b", subnet)
	}); err != nil {
		t.Fatal(err)
	}
	if err := ns.Do(func() error { return CleanNode("", "", t.TempDir(), "shoal-cln-a") }); err != nil {
		t.Fatal(err)
	}
	out, err := ns.Exec(context.Background(), "nft", "list", "tables")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, datapath.EgressTable("shoal-cln-a")) {
		t.Errorf("the cleaned bridge's egress table is still there:\n%s", out)
	}
	if !strings.Contains(out, datapath.EgressTable("shoal-cln-b")) {
		t.Errorf("another bridge's egress table went too:\n%s", out)
	}
}

// killShims kills a namespace's shims that containerd lost, and the
// processes still under them, and leaves other namespaces' shims alone.
func TestKillShimsKillsANamespacesShims(t *testing.T) {
	ns := fmt.Sprintf("shoal-shimtest-%d", os.Getpid())
	// A stand-in shim: sh, named as the runc v2 shim with its -namespace
	// argument, running a child as a shim runs a container.
	start := func(ns, sleep string) *exec.Cmd {
		cmd := exec.Command("/bin/sh")
		cmd.Args = []string{"containerd-shim-runc-v2", "-c", "sleep " + sleep + "; :", "-namespace", ns, "-id", "c1"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the clean-up kills the group, child too
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-exited })
		return cmd
	}
	mine, other := start(ns, "61"), start(ns+"-other", "62")
	// Both children running.
	testutil.EventuallyErr(t, 5*time.Second, 20*time.Millisecond, func() error {
		for _, s := range []string{"61", "62"} {
			if len(procsNamed("sleep", s)) == 0 {
				return fmt.Errorf("no sleep %s yet", s)
			}
		}
		return nil
	}, "the stand-in shims' children did not start")
	killShims(ns)
	testutil.EventuallyErr(t, 5*time.Second, 20*time.Millisecond, func() error {
		if !zombie(mine.Process.Pid) && syscall.Kill(mine.Process.Pid, 0) == nil {
			return fmt.Errorf("the namespace's shim %d is alive", mine.Process.Pid)
		}
		if p := procsNamed("sleep", "61"); len(p) > 0 {
			return fmt.Errorf("the process under it is alive: %v", p)
		}
		return nil
	}, "killShims left the namespace's shim or its child")
	if zombie(other.Process.Pid) || len(procsNamed("sleep", "62")) == 0 {
		t.Fatal("another namespace's shim or its child was killed")
	}
}

// procsNamed lists the live processes whose command line is exactly args.
func procsNamed(args ...string) []int {
	want := strings.Join(args, "\x00")
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.TrimRight(string(b), "\x00") == want && !zombie(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
