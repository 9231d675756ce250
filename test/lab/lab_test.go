package lab_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/lab"
)

func TestLab(t *testing.T) {
	l := lab.New(t, standinConfig(3))
	if err := l.StartAll(); err != nil {
		t.Fatal(err)
	}
	h1, h2, h3 := l.Host(1), l.Host(2), l.Host(3)
	ctx := context.Background()
	// allReachable waits until every host answers every other one.
	allReachable := func(t *testing.T) {
		t.Helper()
		for _, a := range l.Hosts {
			for _, b := range l.Others(a) {
				lab.WaitFor(t, 5*time.Second, func() error { return reachable(&a.NS, b) })
			}
		}
	}

	t.Run("layout", func(t *testing.T) {
		for _, h := range l.Hosts {
			a := l.Subnet.Addr().As4()
			a[3] += byte(10 + h.Index)
			if want := fmt.Sprintf("%d.%d.%d.%d:4242", a[0], a[1], a[2], a[3]); h.APIAddr != want {
				t.Errorf("%s: APIAddr %s, want %s", h.Name, h.APIAddr, want)
			}
			out, err := h.Exec(ctx, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
			if err != nil || !strings.Contains(out, h.Addr.String()+"/24") {
				t.Errorf("%s: eth0 in the namespace: %q %v", h.Name, out, err)
			}
			if got, err := control(h); err != nil || got != "control "+h.Name {
				t.Errorf("%s: control socket from the test namespace: %q %v (want hostname %s)", h.Name, got, err, h.Name)
			}
			if _, err := os.Stat(filepath.Join(h.DataDir, "standin.pid")); err != nil {
				t.Errorf("%s: data dir not passed: %v", h.Name, err)
			}
			if !strings.HasPrefix(h.ContainerdNamespace, "lab-"+l.Prefix+"-") {
				t.Errorf("%s: containerd namespace %q", h.Name, h.ContainerdNamespace)
			}
		}
	})

	t.Run("reach", func(t *testing.T) {
		allReachable(t)
		// The same through Exec and busybox nc (which sends nothing and prints what it receives).
		out, err := h1.Exec(ctx, "busybox", "nc", "-w", "2", h2.Addr.String(), "4242")
		if err != nil || strings.TrimSpace(out) != "hello from "+h2.APIAddr {
			t.Errorf("busybox nc from h1 to h2: %q %v", out, err)
		}
	})

	t.Run("addresses only inside the lab", func(t *testing.T) {
		for _, argv := range [][]string{{"ip", "-4", "addr"}, {"ip", "-4", "route", "show", "table", "all"}} {
			b, err := runRoot(argv...)
			if err != nil {
				t.Fatal(err)
			}
			prefix := strings.TrimSuffix(l.Subnet.Addr().String(), ".0")
			if strings.Contains(b, prefix+".") {
				t.Errorf("%s in the root namespace shows the lab subnet %s:\n%s", argv, l.Subnet, b)
			}
		}
		for _, dev := range []string{l.Bridge, l.Outside.Veth, h1.Veth, h2.Veth, h3.Veth} {
			if b, _ := runRoot("ip", "addr", "show", "dev", dev); strings.Contains(b, "inet") {
				t.Errorf("%s has an address:\n%s", dev, b)
			}
		}
	})

	t.Run("outside", func(t *testing.T) {
		ln, err := l.Outside.Listen("tcp", ":5000")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintln(c, "registry")
				c.Close()
			}
		}()
		for _, h := range l.Hosts {
			out, err := h.Exec(ctx, "busybox", "nc", "-w", "2", l.Outside.Addr.String(), "5000")
			if err != nil || strings.TrimSpace(out) != "registry" {
				t.Errorf("%s -> outside: %q %v", h.Name, out, err)
			}
		}
		if err := reachable(l.Outside, h3); err != nil {
			t.Error(err)
		}
		// A partition does not cut the Outside namespace off.
		if err := h1.Partition(); err != nil {
			t.Fatal(err)
		}
		defer h1.Heal()
		if err := reachable(l.Outside, h1); err != nil {
			t.Errorf("outside during h1's partition: %v", err)
		}
	})

	t.Run("partition", func(t *testing.T) {
		if err := h1.Partition(h2); err != nil {
			t.Fatal(err)
		}
		for _, e := range []error{unreachable(&h1.NS, h2), unreachable(&h2.NS, h1),
			reachable(&h1.NS, h3), reachable(&h3.NS, h1), reachable(&h2.NS, h3)} {
			if e != nil {
				t.Error(e)
			}
		}
		if err := h1.Heal(); err != nil {
			t.Fatal(err)
		}
		allReachable(t)

		if err := h2.Partition(); err != nil { // from everyone
			t.Fatal(err)
		}
		for _, e := range []error{unreachable(&h1.NS, h2), unreachable(&h2.NS, h3),
			unreachable(&h3.NS, h2), reachable(&h1.NS, h3)} {
			if e != nil {
				t.Error(e)
			}
		}
		if err := h2.Heal(); err != nil {
			t.Fatal(err)
		}
		for _, h := range l.Hosts {
			if out, err := h.Exec(ctx, "nft", "list", "tables"); err != nil || strings.Contains(out, "shoal_lab") {
				t.Errorf("%s: table left after Heal: %q %v", h.Name, out, err)
			}
		}
		allReachable(t)
	})

	t.Run("drop inbound", func(t *testing.T) {
		if err := h3.DropInbound(h1); err != nil {
			t.Fatal(err)
		}
		out, _ := h3.Exec(ctx, "nft", "list", "table", "inet", "shoal_lab")
		if !strings.Contains(out, "ip saddr "+h1.Addr.String()+" drop") || strings.Contains(out, h2.Addr.String()) {
			t.Errorf("h3's table:\n%s", out)
		}
		if out, _ := h1.Exec(ctx, "nft", "list", "tables"); strings.Contains(out, "shoal_lab") {
			t.Errorf("one-way drop put a table into h1")
		}
		for _, e := range []error{unreachable(&h1.NS, h3), reachable(&h2.NS, h3), reachable(&h3.NS, h2)} {
			if e != nil {
				t.Error(e)
			}
		}
		if err := l.HealAll(); err != nil {
			t.Fatal(err)
		}
		allReachable(t)
	})

	t.Run("loss", func(t *testing.T) {
		if err := h1.Loss(30, h2); err != nil {
			t.Fatal(err)
		}
		for _, h := range []*lab.Host{h1, h2} {
			out, err := h.Exec(ctx, "nft", "list", "table", "inet", "shoal_lab")
			if err != nil || !strings.Contains(out, "numgen random mod 100 < 30 drop") {
				t.Errorf("%s's table: %q %v", h.Name, out, err)
			}
		}
		if err := h1.Loss(100, h2); err != nil {
			t.Fatal(err)
		}
		if err := unreachable(&h1.NS, h2); err != nil {
			t.Error(err)
		}
		if err := h1.Loss(0, h2); err != nil {
			t.Fatal(err)
		}
		allReachable(t)
		if err := h1.Loss(101); err == nil {
			t.Error("Loss(101) accepted")
		}
	})

	t.Run("link", func(t *testing.T) {
		if err := h2.LinkDown(); err != nil {
			t.Fatal(err)
		}
		for _, e := range []error{unreachable(&h1.NS, h2), unreachable(&h2.NS, h3), reachable(&h1.NS, h3)} {
			if e != nil {
				t.Error(e)
			}
		}
		if err := h2.LinkUp(); err != nil {
			t.Fatal(err)
		}
		allReachable(t)
	})

	t.Run("kill", func(t *testing.T) {
		pid := h2.PID()
		if err := h2.Kill(); err != nil {
			t.Fatal(err)
		}
		if h2.Running() || h2.PID() != 0 {
			t.Fatal("h2 running after Kill")
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			t.Errorf("pid %d still exists after Kill", pid)
		}
		st, err := h2.WaitExit(0)
		if err != nil || st.ExitCode() != -1 || !strings.Contains(st.String(), "killed") {
			t.Errorf("exit state after Kill: %v %v", st, err)
		}
		if err := unreachable(&h1.NS, h2); err != nil {
			t.Error(err)
		}
		if _, err := control(h2); err == nil {
			t.Error("control socket answers after Kill")
		}
		if err := h2.Kill(); err != nil {
			t.Errorf("second Kill: %v", err)
		}
		if err := h2.Start(); err != nil {
			t.Fatal(err)
		}
		if h2.PID() == pid || !h2.Running() {
			t.Errorf("after Start: pid %d (was %d), running %v", h2.PID(), pid, h2.Running())
		}
		if err := h2.Start(); err == nil {
			t.Error("Start of a running host succeeded")
		}
		allReachable(t)
	})

	t.Run("pause", func(t *testing.T) {
		if err := h3.Pause(); err != nil {
			t.Fatal(err)
		}
		// The kernel still completes TCP handshakes; the stopped daemon does not answer.
		if err := unreachable(&h1.NS, h3); err != nil {
			t.Error(err)
		}
		if !h3.Running() {
			t.Error("a paused host is not Running")
		}
		if err := h3.Resume(); err != nil {
			t.Fatal(err)
		}
		lab.WaitFor(t, 5*time.Second, func() error { return reachable(&h1.NS, h3) })
		// Kill works on a paused host too.
		if err := h3.Pause(); err != nil {
			t.Fatal(err)
		}
		if err := h3.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := h3.Start(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("stop and restart", func(t *testing.T) {
		pid := h1.PID()
		if err := h1.Restart(); err != nil {
			t.Fatal(err)
		}
		if h1.PID() == pid || !h1.Running() {
			t.Errorf("after Restart: pid %d (was %d)", h1.PID(), pid)
		}
		logs := h1.Logs()
		if !strings.Contains(logs, "standin: SIGTERM, bye") || strings.Count(logs, "=== lab: h1 start #") != 2 {
			t.Errorf("h1's log after Restart:\n%s", logs)
		}
		if err := h1.Stop(); err != nil {
			t.Fatal(err)
		}
		if st, err := h1.WaitExit(0); err != nil || st.ExitCode() != 0 {
			t.Errorf("Stop: exit %v %v, want a clean exit", st, err)
		}
		// A daemon that ignores SIGTERM is killed after StopTimeout.
		h1.Env = []string{"LAB_STANDIN_IGNORE_TERM=1"}
		defer func() { h1.Env = nil }()
		if err := h1.Start(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := h1.Stop(); err != nil {
			t.Fatal(err)
		}
		if st, _ := h1.WaitExit(0); st == nil || st.ExitCode() != -1 || time.Since(start) < 2*time.Second {
			t.Errorf("Stop of a SIGTERM-ignoring daemon: %v after %v", st, time.Since(start))
		}
		h1.Env = nil
		if err := h1.Start(); err != nil {
			t.Fatal(err)
		}
		allReachable(t)
	})

	t.Run("start failure", func(t *testing.T) {
		if err := h3.Stop(); err != nil {
			t.Fatal(err)
		}
		err := h3.Start("--fail")
		if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "failing as asked") {
			t.Fatalf("Start of a failing daemon: %v", err)
		}
		if st, err := h3.WaitExit(time.Second); err != nil || st.ExitCode() != 3 {
			t.Errorf("WaitExit: %v %v", st, err)
		}
		if err := h3.Restart(); err == nil {
			t.Error("Restart reuses the last arguments: it should fail again")
		}
		if err := h3.Start(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("shoal cli", func(t *testing.T) {
		if _, err := h1.Shoal(ctx, "node", "ls"); err == nil {
			t.Error("Shoal without Config.ShoalPath succeeded")
		}
		cfg := standinConfig(1)
		cfg.ShoalPath = "/bin/echo" // prints the arguments the CLI would get
		l2 := lab.New(t, cfg)
		out, err := l2.Host(1).Shoal(ctx, "node", "ls")
		if want := "-H unix://" + l2.Host(1).ControlSocket + " node ls\n"; err != nil || out != want {
			t.Errorf("Shoal: %q %v, want %q", out, err, want)
		}
	})

	t.Run("log tail", func(t *testing.T) {
		if tail := h3.LogTail(1); !strings.HasPrefix(tail, "standin: up on "+h3.APIAddr) {
			t.Errorf("LogTail(1) = %q", tail)
		}
		n := len(strings.Split(strings.TrimSpace(h3.Logs()), "\n"))
		if got := len(strings.Split(h3.LogTail(3), "\n")); got != min(3, n) {
			t.Errorf("LogTail(3) has %d lines", got)
		}
	})
}

// TestCleanup runs a lab with everything in use (processes, a leftover process in a namespace, nft
// tables, an Outside listener, a non-empty containerd namespace) in a subtest, and checks that nothing of
// it remains once the subtest is over.
func TestCleanup(t *testing.T) {
	testutil.RequiresRoot(t) // lab.New would skip the subtest only
	var (
		l         *lab.Lab
		pids      []int
		withCtr   bool
		listening string
	)
	t.Run("lab", func(t *testing.T) {
		cfg := standinConfig(2)
		cfg.Name = "clean"
		cfg.Env = append(cfg.Env, "LAB_STANDIN_CHILD=1")
		l = lab.New(t, cfg)
		if err := l.StartAll(); err != nil {
			t.Fatal(err)
		}
		for _, h := range l.Hosts {
			pids = append(pids, h.PID(), readPid(t, filepath.Join(h.DataDir, "child.pid")))
		}
		if err := l.Host(1).Partition(); err != nil {
			t.Fatal(err)
		}
		ln, err := l.Outside.Listen("tcp", ":5000")
		if err != nil {
			t.Fatal(err)
		}
		listening = ln.Addr().String()
		if _, err := runRoot("ctr", "version"); err == nil {
			withCtr = true
			fillContainerdNamespace(t, l.Host(1).ContainerdNamespace)
		} else {
			t.Logf("containerd not answering; not checking containerd cleanup: %v", err)
		}
	})
	if l == nil {
		t.Fatal("lab not made")
	}
	checkGone(t, l.Prefix, l.Dir)
	for _, pid := range pids {
		if st := procState(pid); st != "" && st != "Z" {
			t.Errorf("pid %d still running (state %s)", pid, st)
		}
	}
	if withCtr {
		if out, _ := runRoot("ctr", "namespaces", "ls", "-q"); strings.Contains(out, l.Prefix) {
			t.Errorf("containerd namespace left:\n%s", out)
		}
	}
	t.Logf("lab %s (outside listener %s) left nothing behind", l.Prefix, listening)
}

// fillContainerdNamespace puts a snapshot chain, a blob and a lease into containerd namespace ns.
func fillContainerdNamespace(t *testing.T, ns string) {
	t.Helper()
	for _, argv := range [][]string{
		{"ctr", "-n", ns, "snapshots", "prepare", "a"},
		{"ctr", "-n", ns, "snapshots", "commit", "base", "a"},
		{"ctr", "-n", ns, "snapshots", "prepare", "top", "base"},
		{"ctr", "-n", ns, "leases", "create", "--id", "keep"},
	} {
		if _, err := runRoot(argv...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := runRootInput("blob", "ctr", "-n", ns, "content", "ingest", "b"); err != nil {
		t.Fatal(err)
	}
}

func checkGone(t *testing.T, prefix, dir string) {
	t.Helper()
	for _, argv := range [][]string{{"ip", "netns", "list"}, {"ip", "-o", "link"}} {
		out, err := runRoot(argv...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, prefix) {
			t.Errorf("%s shows %s after cleanup:\n%s", strings.Join(argv, " "), prefix, out)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("lab dir %s still there (%v)", dir, err)
	}
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	lab.WaitFor(t, 5*time.Second, func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		pid, err = strconv.Atoi(string(b))
		return err
	})
	return pid
}

func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return f[0]
}
