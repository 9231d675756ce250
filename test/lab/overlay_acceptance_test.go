package lab_test

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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
