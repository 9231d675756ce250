package mesh

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/internal/testutil"
)

// TestConcurrentApply applies different tables to several namespaces at
// once (set IDs are per transaction; namespaces switch per thread).
func TestConcurrentApply(t *testing.T) {
	l := newLab(t) // only its namespaces are used
	nss := []string{"h1", "h2", "ext", "c2", "c3", "c4"}
	errs := make(chan error, len(nss)*5)
	for i, ns := range nss {
		go func() {
			for j := range 5 {
				ports := []Port{{Proto: "tcp", Published: uint16(31000 + i), Target: 80,
					Backends: []netip.Addr{netip.AddrFrom4([4]byte{10, 1, byte(i), byte(j + 1)}), netip.AddrFrom4([4]byte{10, 1, byte(i), 200})}}}
				errs <- Apply(l.path(ns), ports)
			}
		}()
	}
	for range len(nss) * 5 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i, ns := range nss {
		rs := nftList(t, l.name(ns))
		want := fmt.Sprintf("tcp . %d : goto port-tcp-%d", 31000+i, 31000+i)
		if !contains(rs, want) || !contains(rs, fmt.Sprintf("10.1.%d.5", i)) {
			t.Errorf("%s: ruleset lacks %q or the last Apply's backend:\n%s", ns, want, rs)
		}
		if err := Remove(l.path(ns)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEmptyPathIsCallersNamespace runs Apply, EnableLocalhost and Remove
// with netnsPath "" on a thread switched into a test namespace: they act
// there (the daemon's namespace in production).
func TestEmptyPathIsCallersNamespace(t *testing.T) {
	testutil.RequiresRoot(t)
	l := &lab{t: t, prefix: "meshe" + randHex()}
	l.newNS("n")
	l.ip("n", "link", "add", "ov0", "type", "veth", "peer", "name", "ov1")
	ports := []Port{{Proto: "udp", Published: 30500, Target: 53, Backends: []netip.Addr{netip.MustParseAddr("10.9.0.2")}}}
	if err := inNetns(l.path("n"), func() error {
		return errors.Join(Apply("", ports), EnableLocalhost("", "ov0"))
	}); err != nil {
		t.Fatal(err)
	}
	if rs := nftList(t, l.name("n")); !strings.Contains(rs, "udp . 30500 : goto port-udp-30500") {
		t.Fatalf("Apply(\"\") on a thread in the namespace did not program it:\n%s", rs)
	}
	for key, want := range map[string]string{"net.ipv4.ip_forward": "1", "net.ipv4.conf.ov0.route_localnet": "1", "net.ipv4.conf.ov1.route_localnet": "0"} {
		if got := strings.TrimSpace(output(t, "ip", "netns", "exec", l.name("n"), "sysctl", "-n", key)); got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
	if err := inNetns(l.path("n"), func() error { return Remove("") }); err != nil {
		t.Fatal(err)
	}
	if rs := nftList(t, l.name("n")); strings.TrimSpace(rs) != "" {
		t.Fatalf("after Remove(\"\"):\n%s", rs)
	}
}
