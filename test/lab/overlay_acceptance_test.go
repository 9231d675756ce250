package lab_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/lab"
)

// TestOverlay is issue 10's acceptance list on one 3-host swarm (h1 manager, h2 and h3 workers, real
// shoald and containerd): overlay connectivity and MTU, VIP and DNS, stale entries after SIGKILL,
// scale-down, a node kill and a partition, address reuse and exhaustion, isolation, a shoald restart,
// bad input, and no leaks at the end. The subtests share the cluster and run in order; the disruptive
// ones (restart, node kill, partition) come last, then the leak check.
//
// SHOAL_OVERLAY_CYCLES sets the address-reuse cycles (default 30; the full run is 300:
// `make test-overlay-long`).
func TestOverlay(t *testing.T) {
	c := newOvCluster(t, 3)
	h1, h2, h3 := c.l.Host(1), c.l.Host(2), c.l.Host(3)
	base := c.snapshotHosts(t)

	// The shared fixture: network appnet, a global client (one per node) and web (6 whoami replicas,
	// 2 per node). Made on first use so that a failure shows in every subtest that needs it.
	var (
		fixOnce sync.Once
		fixErr  error
		vip     netip.Addr
	)
	fixture := func(t *testing.T) {
		t.Helper()
		fixOnce.Do(func() {
			fixErr = func() error {
				if _, err := c.try(h1, "network", "create", "-d", "overlay", "appnet"); err != nil {
					return err
				}
				if _, err := c.try(h1, append([]string{"service", "create", "-d", "--name", "client", "--mode", "global",
					"--network", "appnet", c.busybox}, busyboxCmd...)...); err != nil {
					return err
				}
				if _, err := c.try(h1, "service", "create", "-d", "--name", "web", "--replicas", "6",
					"--replicas-max-per-node", "2", "--network", "appnet", c.whoami); err != nil {
					return err
				}
				if err := c.pollRunning("client", 3, 120*time.Second); err != nil {
					return err
				}
				if err := c.pollRunning("web", 6, 120*time.Second); err != nil {
					return err
				}
				var err error
				vip, err = c.serviceVIP("web", "appnet")
				return err
			}()
			if fixErr != nil {
				c.diagnose(t, "client", "web")
			}
		})
		if fixErr != nil {
			t.Fatalf("fixture (network appnet, services client and web): %v", fixErr)
		}
	}
	// clients returns the running client task's namespace on each node, found afresh.
	clients := func(t *testing.T) map[string]taskNS {
		t.Helper()
		ts := c.waitRunning(t, "client", 3, 60*time.Second)
		m := map[string]taskNS{}
		for _, tk := range ts {
			m[tk.Node] = c.mustNetns(t, tk)
		}
		return m
	}

	t.Run("bad input", func(t *testing.T) { c.testBadInput(t) })

	t.Run("tcp udp mtu", func(t *testing.T) {
		fixture(t)
		cl := clients(t)
		a, b := cl["h1"], cl["h2"]
		ipA, ipB := a.Task.Addrs["appnet"], b.Task.Addrs["appnet"]
		if !ipA.IsValid() || !ipB.IsValid() {
			t.Fatalf("client tasks without an appnet address: %v / %v", a.Task, b.Task)
		}
		// TCP: an echo server in b's namespace, a client in a's.
		ln, err := b.listen("tcp4", ":7001")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { defer conn.Close(); io.Copy(conn, conn) }()
			}
		}()
		lab.WaitFor(t, 10*time.Second, func() error {
			return echo(a, "tcp4", netip.AddrPortFrom(ipB, 7001).String())
		})
		// UDP, the same.
		pc, err := b.listenPacket(":7002")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], from)
			}
		}()
		lab.WaitFor(t, 10*time.Second, func() error {
			return echo(a, "udp4", netip.AddrPortFrom(ipB, 7002).String())
		})
		// MTU: the task's overlay interface has the underlay's MTU minus 50 (the lab's eth0: 1500), and
		// `network inspect` says the same when it shows one.
		ifname, mtu, err := a.ifaceFor(ipA)
		if err != nil {
			t.Fatal(err)
		}
		under := hostMTU(t, h1)
		if mtu != under-50 {
			t.Errorf("task interface %s has MTU %d, want underlay %d - 50", ifname, mtu, under)
		}
		if n, err := c.inspectJSON("network", "appnet"); err != nil {
			t.Errorf("network inspect appnet: %v", err)
		} else if v, ok := findKey(n, "mtu", "com.docker.network.driver.mtu"); ok && fmt.Sprint(v) != "0" && fmt.Sprint(v) != strconv.Itoa(mtu) {
			t.Errorf("network inspect shows MTU %v, the task's %s has %d", v, ifname, mtu)
		}
		lab.WaitFor(t, 5*time.Second, func() error { return a.ping(ipB, mtu-28, time.Second) })
		if err := a.ping(ipB, mtu-27, time.Second); err == nil {
			t.Errorf("a don't-fragment ping of MTU-27 = %d bytes to %s passed", mtu-27, ipB)
		} else {
			t.Logf("MTU %d on %s: ping -s %d passes; -s %d fails: %v", mtu, ifname, mtu-28, mtu-27, err)
		}
	})

	t.Run("vip and dns", func(t *testing.T) {
		fixture(t)
		cl := clients(t)["h1"]
		web := c.waitRunning(t, "web", 6, 30*time.Second)
		want := taskAddrs(web, "appnet")
		if len(want) != 6 {
			t.Fatalf("web tasks with appnet addresses: %v", web)
		}
		var ans dnsAnswer
		lab.WaitFor(t, 5*time.Second, func() error {
			var err error
			if ans, err = cl.lookup("web"); err != nil {
				return err
			}
			if addrSet(ans.Addrs) != vip.String() {
				return fmt.Errorf("web resolves to [%s] (rcode %d), want the VIP %s", addrSet(ans.Addrs), ans.Rcode, vip)
			}
			return nil
		})
		for _, ttl := range ans.TTLs {
			if ttl > 5 {
				t.Errorf("TTL %d > 5 s", ttl)
			}
		}
		lab.WaitFor(t, 5*time.Second, func() error {
			a, err := cl.lookup("tasks.web")
			if err != nil {
				return err
			}
			if addrSet(a.Addrs) != addrSet(want) {
				return fmt.Errorf("tasks.web = [%s], want the 6 task addresses [%s]", addrSet(a.Addrs), addrSet(want))
			}
			return nil
		})
		seen := map[string]int{}
		for i := 0; i < 60; i++ {
			h, err := cl.whoami(netip.AddrPortFrom(vip, 80).String(), 2*time.Second)
			if err != nil {
				t.Errorf("connection %d through VIP %s: %v", i, vip, err)
				continue
			}
			seen[h]++
		}
		if len(seen) != 6 {
			t.Errorf("60 connections through the VIP reached %d replicas, want 6: %v", len(seen), seen)
		}
		// The user surface: service ps shows the overlay addresses, network inspect the facts.
		out, err := c.try(h1, "service", "ps", "web", "-f", "desired-state=running", "--format", "{{.Addresses}}")
		if err != nil {
			t.Error(err)
		}
		for _, a := range want {
			if !containsIP(out, a) {
				t.Errorf("service ps --format {{.Addresses}} does not show %s:\n%s", a, out)
			}
		}
		if n, err := c.inspectJSON("network", "appnet"); err != nil {
			t.Error(err)
		} else {
			for _, k := range [][]string{{"subnet"}, {"gateway"}, {"vni", "vxlanid_list", "com.docker.network.driver.overlay.vxlanid_list"}} {
				if _, ok := findKey(n, k...); !ok {
					t.Errorf("network inspect appnet shows no %s", k[0])
				}
			}
		}
	})

	t.Run("dnsrr", func(t *testing.T) {
		fixture(t)
		cl := clients(t)["h1"]
		c.createService(t, "webrr", "--replicas", "3", "--replicas-max-per-node", "1", "--endpoint-mode", "dnsrr",
			"--network", "appnet", c.whoami)
		defer c.try(h1, "service", "rm", "webrr")
		rr := c.waitRunning(t, "webrr", 3, 90*time.Second)
		want := taskAddrs(rr, "appnet")
		lab.WaitFor(t, 5*time.Second, func() error {
			a, err := cl.lookup("webrr")
			if err != nil {
				return err
			}
			if len(want) != 3 || addrSet(a.Addrs) != addrSet(want) {
				return fmt.Errorf("webrr (dnsrr) = [%s], want the task addresses [%s]", addrSet(a.Addrs), addrSet(want))
			}
			return nil
		})
		for _, a := range want {
			if _, err := cl.whoami(netip.AddrPortFrom(a, 80).String(), 2*time.Second); err != nil {
				t.Errorf("dnsrr task %s: %v", a, err)
			}
		}
	})

	t.Run("sigkill leaves dns and vip within 1s", func(t *testing.T) {
		fixture(t)
		cl := clients(t)
		web := c.waitRunning(t, "web", 6, 30*time.Second)
		var victim ovTask
		for _, tk := range web {
			if tk.Node == "h2" {
				victim = tk
			}
		}
		ip := victim.Addrs["appnet"]
		if !ip.IsValid() {
			t.Fatalf("no web task with an appnet address on h2: %v", web)
		}
		lp, stop := runLoop(cl["h1"], netip.AddrPortFrom(vip, 80).String(), 20*time.Millisecond)
		defer stop()
		time.Sleep(300 * time.Millisecond)
		t0 := time.Now()
		if _, err := ctr(h2, "tasks", "kill", "-s", "SIGKILL", victim.ID); err != nil {
			t.Fatal(err)
		}
		gone := c.waitGone(t, cl, []netip.Addr{ip}, "tasks.web", 10*time.Second)
		for node, d := range gone {
			if d < 0 || d > time.Second {
				t.Errorf("client on %s: %s still in tasks.web or a VIP backend %v after SIGKILL (want < 1 s)", node, ip, d)
			}
		}
		t.Logf("SIGKILL of %s (%s on h2): gone from DNS and VIPs after %v", victim.ID[:12], ip, gone)
		time.Sleep(time.Until(t0.Add(2 * time.Second)))
		stop()
		if n := lp.failuresAfter(t0.Add(time.Second)); n > 0 {
			t.Errorf("%d connections through the VIP failed more than 1 s after the kill: %v", n, lp)
		}
		t.Logf("VIP loop across the kill: %v", lp)
		c.waitRunning(t, "web", 6, 60*time.Second)
	})

	t.Run("scale 6 to 2 without resets", func(t *testing.T) {
		fixture(t)
		cl := clients(t)
		before := c.waitRunning(t, "web", 6, 30*time.Second)
		target := netip.AddrPortFrom(vip, 80).String()
		l1, stop1 := runLoop(cl["h1"], target, 10*time.Millisecond)
		l3, stop3 := runLoop(cl["h3"], target, 10*time.Millisecond)
		defer stop1()
		defer stop3()
		// Order: a task leaves DNS and the VIPs before its container stops. The watcher lists the running
		// containers first, then asks the h1 client's DNS and reads its VIP rules: an address still there
		// whose container had already stopped is a task stopped before it left.
		stopW := make(chan struct{})
		var violations []string
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			for {
				select {
				case <-stopW:
					return
				case <-time.After(20 * time.Millisecond):
				}
				up, listed := map[string]bool{}, true
				for _, h := range c.l.Hosts {
					out, err := ctr(h, "tasks", "ls")
					listed = listed && err == nil
					for _, line := range strings.Split(out, "\n") {
						if f := strings.Fields(line); len(f) >= 3 && f[2] == "RUNNING" {
							up[f[0]] = true
						}
					}
				}
				a, derr := cl["h1"].lookup("tasks.web")
				backends, nerr := cl["h1"].natAddrs()
				if !listed || derr != nil || nerr != nil {
					continue
				}
				for _, tk := range before {
					ip := tk.Addrs["appnet"]
					if !up[tk.ID] && (slices.Contains(a.Addrs, ip) || slices.Contains(backends, ip)) && len(violations) < 10 {
						violations = append(violations, fmt.Sprintf("%s (%s on %s): container stopped, still in tasks.web %v / VIP backends %v",
							ip, tk.ID[:12], tk.Node, slices.Contains(a.Addrs, ip), slices.Contains(backends, ip)))
					}
				}
			}
		}()
		time.Sleep(300 * time.Millisecond)
		c.sh(h1, "service", "scale", "-d", "web=2")
		kept := c.waitRunning(t, "web", 2, 60*time.Second)
		lab.WaitFor(t, 60*time.Second, func() error { return c.noLiveBut("web", kept) })
		time.Sleep(2 * time.Second)
		close(stopW)
		<-watched
		stop1()
		stop3()
		for _, v := range violations {
			t.Errorf("scale-down: a task stopped before it left DNS and the VIP: %s", v)
		}
		for i, l := range []*loop{l1, l3} {
			if l.failures() > 0 {
				t.Errorf("client loop %d during the scale-down: %v", i+1, l)
			} else {
				t.Logf("client loop %d during the scale-down: %v", i+1, l)
			}
		}
		lab.WaitFor(t, 5*time.Second, func() error {
			a, err := cl["h1"].lookup("tasks.web")
			if err != nil {
				return err
			}
			if want := addrSet(taskAddrs(kept, "appnet")); addrSet(a.Addrs) != want {
				return fmt.Errorf("tasks.web = [%s] after the scale-down, want [%s]", addrSet(a.Addrs), want)
			}
			return nil
		})
		c.sh(h1, "service", "scale", "-d", "web=6")
		c.waitRunning(t, "web", 6, 90*time.Second)
	})

	t.Run("isolation", func(t *testing.T) { c.testIsolation(t) })

	t.Run("address reuse", func(t *testing.T) { c.testAddressReuse(t) })

	t.Run("address exhaustion", func(t *testing.T) { c.testExhaustion(t) })

	t.Run("shoald restart keeps connectivity", func(t *testing.T) {
		fixture(t)
		cl := clients(t)
		web := c.waitRunning(t, "web", 6, 30*time.Second)
		var direct netip.Addr
		for _, tk := range web {
			if tk.Node == "h2" {
				direct = tk.Addrs["appnet"]
			}
		}
		// Through the VIP from the restarting node's client, and from h1 straight to a task of h2.
		lv, stopV := runLoop(cl["h2"], netip.AddrPortFrom(vip, 80).String(), 20*time.Millisecond)
		ld, stopD := runLoop(cl["h1"], netip.AddrPortFrom(direct, 80).String(), 20*time.Millisecond)
		defer stopV()
		defer stopD()
		time.Sleep(500 * time.Millisecond)
		t0 := time.Now()
		if err := h2.Restart(); err != nil {
			t.Fatal(err)
		}
		restarted := time.Now()
		time.Sleep(3 * time.Second)
		stopV()
		stopD()
		t.Logf("restart of h2 took %v; VIP loop from h2: %v; direct loop h1 -> %s: %v",
			restarted.Sub(t0).Round(time.Millisecond), lv, direct, ld)
		for name, l := range map[string]*loop{"VIP loop on h2": lv, "direct loop h1->h2": ld} {
			if n := l.failuresAfter(restarted.Add(time.Second)); n > 0 {
				t.Errorf("%s: %d failures more than 1 s after the restart: %v", name, n, l)
			}
			if l.failures() > 0 {
				t.Logf("%s: %d failures during the restart (%v)", name, l.failures(), l)
			}
		}
		// The restarted node answers DNS again.
		lab.WaitFor(t, 10*time.Second, func() error {
			now := clients(t)["h2"]
			a, err := now.lookup("web")
			if err != nil {
				return err
			}
			if addrSet(a.Addrs) != vip.String() {
				return fmt.Errorf("web on h2 after the restart = [%s]", addrSet(a.Addrs))
			}
			return nil
		})
	})

	t.Run("node killed", func(t *testing.T) {
		fixture(t)
		cl := clients(t)
		web := c.waitRunning(t, "web", 6, 30*time.Second)
		var dead []netip.Addr
		for _, tk := range web {
			if tk.Node == "h3" {
				dead = append(dead, tk.Addrs["appnet"])
			}
		}
		if len(dead) == 0 {
			t.Fatalf("no web task on h3: %v", web)
		}
		others := map[string]taskNS{"h1": cl["h1"], "h2": cl["h2"]}
		if err := h3.Kill(); err != nil {
			t.Fatal(err)
		}
		const heartbeat = 5 * time.Second // api.DefaultHeartbeatPeriod
		gone := c.waitGone(t, others, dead, "tasks.web", 40*time.Second)
		var worst time.Duration
		for node, d := range gone {
			if d < 0 || d > 3*heartbeat {
				t.Errorf("client on %s: entries of h3's tasks %v still there %v after the kill (want within 3 heartbeats = %v)",
					node, dead, d, 3*heartbeat)
			}
			worst = max(worst, d)
		}
		t.Logf("h3 killed: its tasks' entries gone from h1 and h2 within %v", worst.Round(time.Millisecond))
		if err := h3.Start("--insecure-registry", c.registry); err != nil {
			t.Fatal(err)
		}
		c.waitReady(60 * time.Second)
		c.waitRunning(t, "client", 3, 90*time.Second)
		c.waitRunning(t, "web", 6, 90*time.Second)
	})

	t.Run("partition 30s and heal", func(t *testing.T) {
		fixture(t)
		c.waitRunning(t, "web", 6, 30*time.Second)
		if err := h3.Partition(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Second)
		if err := h3.Heal(); err != nil {
			t.Fatal(err)
		}
		healed := time.Now()
		var last error
		var history []string // what was still wrong, and when
		err := lab.Poll(60*time.Second, func() error {
			last = c.discoveryCorrect(vip)
			if last != nil {
				msg := last.Error()
				if n := len(history); n == 0 || !strings.HasSuffix(history[n-1], msg) {
					history = append(history, fmt.Sprintf("+%v %s", time.Since(healed).Round(10*time.Millisecond), msg))
				}
			}
			return last
		})
		took := time.Since(healed)
		if len(history) > 0 {
			t.Logf("after the heal:\n%s", strings.Join(history, "\n"))
		}
		if err != nil {
			c.diagnose(t, "web", "client")
			t.Fatalf("names and backends not correct 60 s after the heal: %v", last)
		}
		if took > 5*time.Second {
			t.Errorf("names and backends correct only %v after the heal (want within 5 s)", took.Round(time.Millisecond))
		}
		t.Logf("partition of h3 for 30 s: names and backends correct %v after the heal", took.Round(time.Millisecond))
		c.waitRunning(t, "web", 6, 60*time.Second)
	})

	t.Run("nothing leaked", func(t *testing.T) {
		for _, s := range []string{"web", "client", "webrr"} {
			c.try(h1, "service", "rm", s)
		}
		lab.WaitFor(t, 60*time.Second, func() error { return c.noLiveTasks() })
		lab.WaitFor(t, 30*time.Second, func() error {
			out, err := c.try(h1, "network", "ls", "-q")
			if err != nil {
				return err
			}
			for _, id := range strings.Fields(out) {
				c.try(h1, "network", "rm", id)
			}
			if out, _ := c.try(h1, "network", "ls", "-q"); strings.TrimSpace(out) != "" {
				return fmt.Errorf("networks left: %s", out)
			}
			return nil
		})
		var diff string
		err := lab.Poll(30*time.Second, func() error {
			diff = c.diffHosts(base, c.snapshotHosts(t))
			if diff != "" {
				return fmt.Errorf("%s", diff)
			}
			return nil
		})
		if err != nil {
			t.Errorf("left behind after service rm and network rm:\n%s", diff)
		}
	})
}

// nsDiag logs a task namespace's addresses, routes and nftables ruleset.
func nsDiag(t testing.TB, name string, ns taskNS) {
	t.Helper()
	for _, argv := range [][]string{{"ip", "-br", "addr"}, {"ip", "route"}, {"nft", "list", "ruleset"}} {
		out, err := ns.exec(argv...)
		t.Logf("%s: %s: %v\n%s", name, strings.Join(argv, " "), err, out)
	}
}

// echo sends a line from ns to addr over network and expects it back (1 s).
func echo(ns taskNS, network, addr string) error {
	conn, err := ns.dial(network, addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	msg := "hello over " + network + "\n"
	if _, err := io.WriteString(conn, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return fmt.Errorf("%s echo from %s: %w", network, addr, err)
	}
	if string(buf) != msg {
		return fmt.Errorf("%s echo from %s: %q", network, addr, buf)
	}
	return nil
}

// hostMTU is the MTU of h's eth0, the lab's underlay.
func hostMTU(t testing.TB, h *lab.Host) int {
	t.Helper()
	ifc, err := inNetnsIface(h.Path(), "eth0")
	if err != nil {
		t.Fatal(err)
	}
	return ifc.MTU
}

func inNetnsIface(path, name string) (*net.Interface, error) {
	var ifc *net.Interface
	err := inNetns(path, func() error {
		var err error
		ifc, err = net.InterfaceByName(name)
		return err
	})
	return ifc, err
}

// pollRunning waits until service has n running tasks and none other meant to run.
func (c *ovCluster) pollRunning(service string, n int, within time.Duration) error {
	return lab.Poll(within, func() error {
		all, err := c.allTasks(context.Background())
		if err != nil {
			return err
		}
		run, other := 0, 0
		for _, tk := range all {
			if tk.Service != service || tk.Desired != api.TaskState_RUNNING {
				continue
			}
			if tk.State == api.TaskState_RUNNING {
				run++
			} else {
				other++
			}
		}
		if run != n || other != 0 {
			return fmt.Errorf("%s: %d running, %d not yet, want %d", service, run, other, n)
		}
		return nil
	})
}

// noLiveBut checks that no task of service but keep may still hold a container.
func (c *ovCluster) noLiveBut(service string, keep []ovTask) error {
	all, err := c.allTasks(context.Background())
	if err != nil {
		return err
	}
	for _, tk := range all {
		if tk.Service == service && tk.live() && !slices.ContainsFunc(keep, func(k ovTask) bool { return k.ID == tk.ID }) {
			return fmt.Errorf("task still live: %v", tk)
		}
	}
	return nil
}

// noLiveTasks checks that no task may still hold a container.
func (c *ovCluster) noLiveTasks() error {
	all, err := c.allTasks(context.Background())
	if err != nil {
		return err
	}
	for _, tk := range all {
		if tk.live() {
			return fmt.Errorf("task still live: %v", tk)
		}
	}
	return nil
}

// waitGone watches, from each given client namespace in parallel, until none of ips is in name's DNS
// answer nor a dnat target of the namespace's nftables rules (the VIP backends), and returns how long that
// took for each node (-1: not within the bound).
func (c *ovCluster) waitGone(t testing.TB, clients map[string]taskNS, ips []netip.Addr, name string, within time.Duration) map[string]time.Duration {
	t.Helper()
	start := time.Now()
	var mu sync.Mutex
	res := map[string]time.Duration{}
	var wg sync.WaitGroup
	for node, ns := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := time.Duration(-1)
			var last string
			for time.Since(start) < within {
				a, err := ns.lookup(name)
				inDNS := err != nil || slices.ContainsFunc(a.Addrs, func(x netip.Addr) bool { return slices.Contains(ips, x) })
				backends, rerr := ns.natAddrs()
				inVIP := rerr != nil || slices.ContainsFunc(ips, func(x netip.Addr) bool { return slices.Contains(backends, x) })
				if !inDNS && !inVIP {
					d = time.Since(start)
					break
				}
				last = fmt.Sprintf("dns %v %v, VIP backends %v %v", a.Addrs, err, backends, rerr)
				time.Sleep(20 * time.Millisecond)
			}
			if d < 0 {
				t.Logf("client on %s, %v: last seen %s", node, ips, last)
			}
			mu.Lock()
			res[node] = d
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res
}

// discoveryCorrect checks, from a task on appnet on every node, that web resolves to the VIP, tasks.web to
// exactly the web tasks that serve, and that the VIP rules hold every serving task and no other web task
// address. A task serves when the managers want it running and its container runs (containerd's view:
// right after a heal the managers may not have heard from a node yet, while its containers run on).
func (c *ovCluster) discoveryCorrect(vip netip.Addr) error {
	all, err := c.allTasks(context.Background())
	if err != nil {
		return err
	}
	running := map[string]bool{} // container (task) IDs running on their node
	for _, h := range c.l.Hosts {
		out, err := ctr(h, "tasks", "ls")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[2] == "RUNNING" {
				running[f[0]] = true
			}
		}
	}
	var serving, other []netip.Addr
	// Per node, a task on appnet to ask from: the one ranked best of a client the managers want running, a
	// web task they want running, any container on appnet still running (after a heal the managers may
	// have replaced a node's tasks before the node hears of it; its DNS server must answer right anyway).
	rank := func(tk ovTask) int {
		switch {
		case tk.Service == "client" && tk.Desired == api.TaskState_RUNNING:
			return 3
		case tk.Desired == api.TaskState_RUNNING:
			return 2
		}
		return 1
	}
	clients := map[string]ovTask{}
	for _, tk := range all {
		ip, ok := tk.Addrs["appnet"]
		if ok && running[tk.ID] {
			if cur, have := clients[tk.Node]; !have || rank(tk) > rank(cur) {
				clients[tk.Node] = tk
			}
		}
		switch {
		case tk.Service != "web" || !ok:
		case running[tk.ID] && tk.Desired == api.TaskState_RUNNING:
			serving = append(serving, ip)
		default:
			other = append(other, ip)
		}
	}
	if len(clients) != len(c.l.Hosts) {
		return fmt.Errorf("running appnet containers (to ask from) on %d nodes only", len(clients))
	}
	for node, tk := range clients {
		ns, err := c.netns(tk)
		if err != nil {
			return err
		}
		a, err := ns.lookup("web")
		if err != nil || addrSet(a.Addrs) != vip.String() {
			return fmt.Errorf("%s: web = %v %v, want %s", node, a.Addrs, err, vip)
		}
		a, err = ns.lookup("tasks.web")
		if err != nil || addrSet(a.Addrs) != addrSet(serving) {
			var extra []string
			for _, ip := range a.Addrs {
				if !slices.Contains(serving, ip) {
					extra = append(extra, describeAddr(all, running, ip))
				}
			}
			return fmt.Errorf("%s: tasks.web = [%s] %v, want the serving tasks [%s]; extra: %s", node, addrSet(a.Addrs), err,
				addrSet(serving), strings.Join(extra, "; "))
		}
		backends, err := ns.natAddrs()
		if err != nil {
			return err
		}
		for _, ip := range serving {
			if !slices.Contains(backends, ip) {
				return fmt.Errorf("%s: serving task %s is no VIP backend", node, ip)
			}
		}
		for _, ip := range other {
			if slices.Contains(backends, ip) && !slices.Contains(serving, ip) {
				return fmt.Errorf("%s: task %s, not serving, is still a VIP backend", node, ip)
			}
		}
	}
	return nil
}

// describeAddr says which tasks hold ip on appnet: service, node, state, desired state, container.
func describeAddr(all []ovTask, running map[string]bool, ip netip.Addr) string {
	var out []string
	for _, tk := range all {
		if tk.Addrs["appnet"] == ip {
			out = append(out, fmt.Sprintf("%s (%s %s on %s, %s/%s, container running %v)", ip, tk.Service, tk.ID[:12],
				tk.Node, tk.State, tk.Desired, running[tk.ID]))
		}
	}
	if len(out) == 0 {
		return ip.String() + " (no task has it)"
	}
	return strings.Join(out, ", ")
}

// testBadInput: each bad request is refused with an error saying what is wrong, and nothing is created.
func (c *ovCluster) testBadInput(t *testing.T) {
	h1 := c.mgr()
	nets := func() string { out, _ := c.try(h1, "network", "ls", "-q"); return out }
	svcs := func() string { out, _ := c.try(h1, "service", "ls", "-q"); return out }
	if _, err := c.try(h1, "network", "create", "-d", "overlay", "--subnet", "10.77.0.0/24", "ok77"); err != nil {
		t.Fatalf("a valid network create failed: %v", err)
	}
	defer c.rmNetwork("ok77")
	if _, err := c.try(h1, "network", "create", "-d", "overlay", "--subnet", "10.78.0.0/29", "small78"); err != nil {
		t.Fatalf("a valid /29 network create failed: %v", err)
	}
	defer c.rmNetwork("small78")
	// The node-local task subnet of h1 (the executor's bridge, 10.213.X.0/24 by default).
	local := localSubnet(t, h1)
	n0, s0 := nets(), svcs()
	cases := []struct {
		name string
		argv []string
		want []string // each must appear in the error (case-insensitive)
	}{
		{"overlapping subnet", []string{"network", "create", "-d", "overlay", "--subnet", "10.77.0.128/25", "bad1"}, []string{"ok77"}},
		{"invalid subnet", []string{"network", "create", "-d", "overlay", "--subnet", "10.79.300.0/24", "bad2"}, []string{"10.79.300.0/24"}},
		{"invalid prefix length", []string{"network", "create", "-d", "overlay", "--subnet", "10.79.0.0/33", "bad3"}, []string{"10.79.0.0/33"}},
		{"gateway outside", []string{"network", "create", "-d", "overlay", "--subnet", "10.80.0.0/24", "--gateway", "10.81.0.1", "bad4"}, []string{"10.81.0.1"}},
		{"non-overlay driver", []string{"network", "create", "-d", "bridge", "bad5"}, []string{"bridge"}},
		{"encrypted", []string{"network", "create", "-d", "overlay", "--opt", "encrypted", "bad6"}, []string{"encrypt"}},
		{"subnet too small for the service", []string{"service", "create", "-d", "--name", "bad7", "--replicas", "12",
			"--network", "small78", c.busybox}, []string{"small78"}},
		{"unknown network", []string{"service", "create", "-d", "--name", "bad8", "--network", "nosuchnet", c.busybox}, []string{"nosuchnet"}},
	}
	if local.IsValid() {
		cases = append(cases, struct {
			name string
			argv []string
			want []string
		}{"overlaps a node's local subnet", []string{"network", "create", "-d", "overlay", "--subnet", local.String(), "bad9"}, []string{local.String()}})
	}
	for _, tc := range cases {
		out, err := c.try(h1, tc.argv...)
		if err == nil {
			t.Errorf("%s: accepted: %s", tc.name, strings.Join(tc.argv, " "))
			// Remove what was made, so the later subtests run on a clean cluster.
			name := tc.argv[len(tc.argv)-1]
			if tc.argv[0] == "service" {
				name = tc.argv[slices.Index(tc.argv, "--name")+1]
			}
			c.try(h1, tc.argv[0], "rm", name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(w)) {
				t.Errorf("%s: the error does not name %q: %v", tc.name, w, err)
			}
		}
		t.Logf("%s: %v %s", tc.name, err, out)
	}
	if n, s := nets(), svcs(); n != n0 || s != s0 {
		t.Errorf("refused requests created something: networks %q -> %q, services %q -> %q", n0, n, s0, s)
	}
	// The daemon refuses a non-overlay driver and encryption itself, not only the CLI.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, spec := range []*api.NetworkSpec{
		{Annotations: &api.Annotations{Name: "bad10"}, Driver: &api.Driver{Name: "bridge"}},
		{Annotations: &api.Annotations{Name: "bad11"}, Driver: &api.Driver{Name: "overlay"}, Encrypted: true},
	} {
		if _, err := c.ctl.CreateNetwork(ctx, &api.CreateNetworkRequest{Spec: spec}); err == nil {
			t.Errorf("the daemon accepted network %s (driver %s, encrypted %v)", spec.GetAnnotations().GetName(),
				spec.GetDriver().GetName(), spec.GetEncrypted())
			c.try(h1, "network", "rm", spec.GetAnnotations().GetName())
		}
	}
}

// rmNetwork removes a network, retrying for 30 s while tasks still hold it.
func (c *ovCluster) rmNetwork(name string) {
	lab.Poll(30*time.Second, func() error { _, err := c.try(c.mgr(), "network", "rm", name); return err })
}

// localSubnet is the subnet of h's node-local task bridge (a link named shoal-*), or invalid.
func localSubnet(t testing.TB, h *lab.Host) netip.Prefix {
	out, err := h.Exec(context.Background(), "ip", "-o", "-4", "addr", "show")
	if err != nil {
		t.Logf("ip addr on %s: %v", h.Name, err)
		return netip.Prefix{}
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && strings.HasPrefix(f[1], "shoal-") && f[2] == "inet" {
			if p, err := netip.ParsePrefix(f[3]); err == nil {
				return p.Masked()
			}
		}
	}
	t.Logf("no node-local bridge on %s yet:\n%s", h.Name, out)
	return netip.Prefix{}
}

// testIsolation: s1 on iso1 (h2), s2 on iso2 (h3), s12 on both (h1). s1 neither resolves nor reaches s2;
// s12 resolves and reaches both.
func (c *ovCluster) testIsolation(t *testing.T) {
	h1 := c.mgr()
	for _, n := range []string{"iso1", "iso2"} {
		c.sh(h1, "network", "create", "-d", "overlay", n)
	}
	defer func() {
		c.try(h1, "service", "rm", "s1", "s2", "s12")
		lab.Poll(30*time.Second, func() error {
			_, e1 := c.try(h1, "network", "rm", "iso1")
			_, e2 := c.try(h1, "network", "rm", "iso2")
			if e1 != nil && e2 != nil {
				return fmt.Errorf("%v %v", e1, e2)
			}
			return nil
		})
	}()
	c.createService(t, "s1", "--network", "iso1", "--constraint", "node.hostname==h2", c.whoami)
	c.createService(t, "s2", "--network", "iso2", "--constraint", "node.hostname==h3", c.whoami)
	c.createService(t, "s12", append([]string{"--network", "iso1", "--network", "iso2", "--constraint", "node.hostname==h1",
		c.busybox}, busyboxCmd...)...)
	s1 := c.waitRunning(t, "s1", 1, 90*time.Second)[0]
	s2 := c.waitRunning(t, "s2", 1, 90*time.Second)[0]
	s12 := c.waitRunning(t, "s12", 1, 90*time.Second)[0]
	ns1, ns12 := c.mustNetns(t, s1), c.mustNetns(t, s12)
	if len(s12.Addrs) != 2 {
		t.Errorf("s12 has addresses %v, want one on iso1 and one on iso2", s12.Addrs)
	}
	// A one-network task on h1 reaches s1 (whose only task is on h2) by name too: tells a multi-network
	// problem from a VIP whose service has no task on the client's node.
	c.createService(t, "c1", append([]string{"--network", "iso1", "--constraint", "node.hostname==h1", c.busybox},
		busyboxCmd...)...)
	defer c.try(h1, "service", "rm", "c1")
	nsc1 := c.mustNetns(t, c.waitRunning(t, "c1", 1, 90*time.Second)[0])
	if err := lab.Poll(10*time.Second, func() error {
		a, err := nsc1.lookup("s1")
		if err != nil || len(a.Addrs) != 1 {
			return fmt.Errorf("c1: s1 = %v %v", a.Addrs, err)
		}
		_, err = nsc1.whoami(netip.AddrPortFrom(a.Addrs[0], 80).String(), 2*time.Second)
		return err
	}); err != nil {
		t.Errorf("c1 (iso1 only, on h1) -> s1 (its only task on h2) by name: %v", err)
		nsDiag(t, "c1", nsc1)
	}
	// s12 reaches both, by name (VIP) and by task address.
	for _, tc := range []struct {
		name, net string
		tk        ovTask
	}{{"s1", "iso1", s1}, {"s2", "iso2", s2}} {
		var direct, byName error
		lab.Poll(10*time.Second, func() error {
			_, direct = ns12.whoami(netip.AddrPortFrom(tc.tk.Addrs[tc.net], 80).String(), 2*time.Second)
			a, err := ns12.lookup(tc.name)
			if err != nil || len(a.Addrs) != 1 {
				byName = fmt.Errorf("s12: %s = %v %v", tc.name, a.Addrs, err)
			} else if _, err := ns12.whoami(netip.AddrPortFrom(a.Addrs[0], 80).String(), 2*time.Second); err != nil {
				byName = fmt.Errorf("s12 -> %s by name (VIP %s): %w", tc.name, a.Addrs[0], err)
			} else {
				byName = nil
			}
			return errors.Join(direct, byName)
		})
		if direct != nil {
			t.Errorf("s12 (on iso1 and iso2) -> %s's task %s: %v", tc.name, tc.tk.Addrs[tc.net], direct)
		}
		if byName != nil {
			t.Error(byName)
		}
		if direct != nil || byName != nil {
			nsDiag(t, "s12", ns12)
		}
	}
	// s1 does not know s2 and cannot reach its task or VIP.
	if a, err := ns1.lookup("s2"); err == nil && len(a.Addrs) > 0 {
		t.Errorf("s1 (on iso1 only) resolves s2 (iso2) to %v", a.Addrs)
	}
	targets := []netip.Addr{s2.Addrs["iso2"]}
	if v, err := c.serviceVIP("s2", "iso2"); err == nil {
		targets = append(targets, v)
	}
	for _, ip := range targets {
		if _, err := ns1.whoami(netip.AddrPortFrom(ip, 80).String(), time.Second); err == nil {
			t.Errorf("s1 (iso1) reached %s on iso2", ip)
		}
	}
	// Nor does s2 reach s1's task.
	ns2 := c.mustNetns(t, s2)
	if _, err := ns2.whoami(netip.AddrPortFrom(s1.Addrs["iso1"], 80).String(), time.Second); err == nil {
		t.Errorf("s2 (iso2) reached s1's task %s on iso1", s1.Addrs["iso1"])
	}
}

// reuseCycles is the number of create/remove cycles of the address-reuse test.
func reuseCycles() int {
	if n, err := strconv.Atoi(os.Getenv("SHOAL_OVERLAY_CYCLES")); err == nil && n > 0 {
		return n
	}
	return 30
}

// testAddressReuse creates and removes one-replica services on a /28 as fast as the CLI goes, with at
// most 3 alive at a time, and checks after every step that no two live tasks hold the same address.
func (c *ovCluster) testAddressReuse(t *testing.T) {
	h1 := c.mgr()
	const net28 = "reuse28"
	c.sh(h1, "network", "create", "-d", "overlay", "--subnet", "10.90.0.0/28", net28)
	defer lab.Poll(60*time.Second, func() error { _, err := c.try(h1, "network", "rm", net28); return err })
	n := reuseCycles()
	start := time.Now()
	var names []string
	dups, checks, addressed := 0, 0, map[netip.Addr]bool{}
	check := func() {
		all, err := c.allTasks(context.Background())
		if err != nil {
			t.Errorf("list tasks: %v", err)
			return
		}
		checks++
		holder := map[netip.Addr]ovTask{}
		for _, tk := range all {
			ip, ok := tk.Addrs[net28]
			if !ok || !tk.live() {
				continue
			}
			addressed[ip] = true
			if o, dup := holder[ip]; dup {
				dups++
				if dups <= 5 {
					t.Errorf("two live tasks hold %s: %v and %v", ip, o, tk)
				}
			}
			holder[ip] = tk
		}
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("r%03d", i)
		if _, err := c.try(h1, append([]string{"service", "create", "-d", "--name", name, "--network", net28,
			"--endpoint-mode", "dnsrr", c.busybox}, busyboxCmd...)...); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		names = append(names, name)
		check()
		if len(names) > 3 {
			if _, err := c.try(h1, "service", "rm", names[0]); err != nil {
				t.Fatalf("cycle %d: %v", i, err)
			}
			names = names[1:]
			check()
		}
	}
	for _, name := range names {
		c.try(h1, "service", "rm", name)
	}
	check()
	lab.WaitFor(t, 90*time.Second, func() error {
		check()
		all, err := c.allTasks(context.Background())
		if err != nil {
			return err
		}
		for _, tk := range all {
			if _, ok := tk.Addrs[net28]; ok && tk.live() {
				return fmt.Errorf("still live: %v", tk)
			}
		}
		return nil
	})
	t.Logf("%d create/remove cycles on a /28 in %v (%d checks, %d distinct addresses used, %d duplicates)",
		n, time.Since(start).Round(time.Millisecond), checks, len(addressed), dups)
	if len(addressed) == 0 {
		t.Errorf("no task ever got an address on %s", net28)
	}
}

// testExhaustion fills a /28 with one-replica dnsrr services until the network is full: either a task
// gets no address (its error must name the network) or the next service is refused (naming the
// network). In the second case a task that needs an address anyway is made with a start-first update
// (the new task starts before the old one stops). Then one service is removed and the waiting task must
// run.
func (c *ovCluster) testExhaustion(t *testing.T) {
	h1 := c.mgr()
	const full = "ovfull28"
	c.sh(h1, "network", "create", "-d", "overlay", "--subnet", "10.91.0.0/28", full)
	var names []string
	defer func() {
		c.try(h1, append([]string{"service", "rm"}, names...)...)
		c.rmNetwork(full)
	}()
	// starvedTask finds a task of service meant to run that has no address on full and says why.
	starvedTask := func(service string) (ovTask, bool, error) {
		all, err := c.allTasks(context.Background())
		if err != nil {
			return ovTask{}, false, err
		}
		for _, tk := range all {
			if _, ok := tk.Addrs[full]; tk.Service == service && tk.Desired == api.TaskState_RUNNING && !ok && tk.Err != "" {
				return tk, true, nil
			}
		}
		return ovTask{}, false, nil
	}
	var starved ovTask
	refused := false
	for i := 1; i <= 16 && starved.ID == "" && !refused; i++ {
		name := fmt.Sprintf("f%02d", i)
		_, err := c.try(h1, append([]string{"service", "create", "-d", "--name", name, "--network", full,
			"--endpoint-mode", "dnsrr", c.busybox}, busyboxCmd...)...)
		if err != nil {
			refused = true
			if !strings.Contains(err.Error(), full) {
				t.Errorf("service create on the full network refused without naming it: %v", err)
			}
			t.Logf("after %d services the /28 is full: the next create is refused: %v", len(names), err)
			break
		}
		names = append(names, name)
		err = lab.Poll(30*time.Second, func() error {
			tk, ok, err := starvedTask(name)
			if err != nil || ok {
				starved = tk
				return err
			}
			ts, err := c.allTasks(context.Background())
			if err != nil {
				return err
			}
			for _, tk := range ts {
				if _, ok := tk.Addrs[full]; ok && tk.Service == name {
					return nil
				}
			}
			return fmt.Errorf("%s: no task with an address or an error yet", name)
		})
		if err != nil {
			c.diagnose(t, name)
			t.Fatal(err)
		}
	}
	if starved.ID == "" && !refused {
		t.Fatalf("16 one-replica services on a /28 all got addresses")
	}
	if starved.ID == "" {
		c.sh(h1, "service", "update", "-d", "--force", "--update-order", "start-first", names[0])
		if err := lab.Poll(30*time.Second, func() error {
			tk, ok, err := starvedTask(names[0])
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("no task of %s waiting for an address after a start-first update on the full network", names[0])
			}
			starved = tk
			return nil
		}); err != nil {
			c.diagnose(t, names[0])
			t.Fatal(err)
		}
	}
	if !strings.Contains(starved.Err, full) {
		t.Errorf("the task without an address says %q: it does not name network %s", starved.Err, full)
	}
	t.Logf("task waiting for an address: %v", starved)
	if out, err := c.try(h1, "service", "ps", "--no-trunc", starved.Service); err == nil {
		t.Logf("service ps %s:\n%s", starved.Service, out)
	}
	free := names[len(names)-1]
	if free == starved.Service {
		free = names[0]
	}
	t0 := time.Now()
	c.sh(h1, "service", "rm", free)
	names = slices.DeleteFunc(names, func(n string) bool { return n == free })
	if err := c.pollRunning(starved.Service, 1, 90*time.Second); err != nil {
		c.diagnose(t, starved.Service)
		t.Fatalf("after an address was freed: %v", err)
	}
	t.Logf("%s ran %v after an address was freed", starved.Service, time.Since(t0).Round(time.Millisecond))
}

// hostSnapshot is what a host namespace holds that an overlay may leave behind.
type hostSnapshot struct {
	links, tables, fdb []string
	mounts             int      // nsfs mounts under the host's data dir (task and network namespaces)
	nsFiles            []string // files in DATA-DIR/*/netns/ (the executor's task and the overlay's network namespaces)
}

func (c *ovCluster) snapshotHosts(t testing.TB) map[string]hostSnapshot {
	t.Helper()
	out := map[string]hostSnapshot{}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, h := range c.l.Hosts {
		var s hostSnapshot
		if o, err := h.Exec(context.Background(), "ip", "-o", "link", "show"); err == nil {
			for _, line := range strings.Split(strings.TrimSpace(o), "\n") {
				if f := strings.Fields(line); len(f) > 1 {
					s.links = append(s.links, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
				}
			}
		}
		if o, err := h.Exec(context.Background(), "nft", "list", "tables"); err == nil {
			s.tables = strings.Split(strings.TrimSpace(o), "\n")
		}
		if o, err := h.Exec(context.Background(), "bridge", "fdb", "show"); err == nil {
			for _, line := range strings.Split(o, "\n") {
				if strings.Contains(line, " dst ") {
					s.fdb = append(s.fdb, line)
				}
			}
		}
		for _, line := range strings.Split(string(mi), "\n") {
			f := strings.Fields(line)
			if len(f) > 8 && strings.HasPrefix(f[4], h.DataDir+"/") && slices.Contains(f, "nsfs") {
				s.mounts++
			}
		}
		s.nsFiles, _ = filepath.Glob(filepath.Join(h.DataDir, "*", "netns", "*"))
		slices.Sort(s.links)
		slices.Sort(s.tables)
		out[h.Name] = s
	}
	return out
}

func (c *ovCluster) diffHosts(before, after map[string]hostSnapshot) string {
	var b strings.Builder
	for _, h := range c.l.Hosts {
		x, y := before[h.Name], after[h.Name]
		for _, l := range y.links {
			if !slices.Contains(x.links, l) {
				fmt.Fprintf(&b, "%s: link %s\n", h.Name, l)
			}
		}
		for _, tb := range y.tables {
			// The masquerade of the node-local task bridge (Docker's docker_gwbridge role) belongs to the node,
			// made when its agent starts (maybe after the first snapshot), not to a network.
			nodeEgress := slices.ContainsFunc(x.links, func(l string) bool {
				return strings.HasPrefix(l, "shoal-") && strings.HasSuffix(tb, "shoal-egress-"+l)
			})
			if !slices.Contains(x.tables, tb) && !strings.Contains(tb, "shoal_lab") && !nodeEgress {
				fmt.Fprintf(&b, "%s: nft %s\n", h.Name, tb)
			}
		}
		for _, f := range y.fdb {
			if !slices.Contains(x.fdb, f) {
				fmt.Fprintf(&b, "%s: fdb %s\n", h.Name, f)
			}
		}
		for _, f := range y.nsFiles {
			if !slices.Contains(x.nsFiles, f) {
				fmt.Fprintf(&b, "%s: namespace file %s\n", h.Name, f)
			}
		}
		if y.mounts > x.mounts {
			fmt.Fprintf(&b, "%s: %d namespace mounts under the data dir (%d before the test)\n", h.Name, y.mounts, x.mounts)
		}
		if out, err := ctr(h, "tasks", "ls", "-q"); err == nil && strings.TrimSpace(out) != "" {
			fmt.Fprintf(&b, "%s: containers still running: %s\n", h.Name, strings.Fields(out))
		}
	}
	return b.String()
}
