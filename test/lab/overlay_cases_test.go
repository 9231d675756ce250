package lab_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/lab"
)

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
	// The node-local task subnet of h1 (the executor's bridge, a free /20 of 10.213.0.0/16 by default).
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
	defer func() { // also when a cycle fails: the later subtests expect no r* service
		for _, name := range names {
			c.try(h1, "service", "rm", name)
		}
	}()
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
		// The tasks of the service removed in the previous cycle hold their
		// addresses until they have stopped, and the /28 has room for few
		// more: a create refused for want of addresses ("has 0 free
		// addresses", the Control API's check) is retried until they free.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			_, err := c.try(h1, append([]string{"service", "create", "-d", "--name", name, "--network", net28,
				"--endpoint-mode", "dnsrr", c.busybox}, busyboxCmd...)...)
			if err == nil {
				break
			}
			if !strings.Contains(err.Error(), "free addresses") || time.Now().After(deadline) {
				t.Fatalf("cycle %d: %v", i, err)
			}
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
