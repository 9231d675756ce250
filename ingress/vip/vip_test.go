package vip

import (
	"net/netip"
	"strings"
	"testing"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

const golden = `table ip shoal-vip {
	map vips {
		type ipv4_addr : verdict
		elements = { 10.0.1.3 : goto svc-db, 10.0.1.2 : goto svc-web }
	}
	set novip {
		type ipv4_addr
		elements = { 10.0.1.4 }
	}
	chain nat-output {
		type nat hook output priority -100; policy accept;
		ip daddr vmap @vips
	}
	chain filter-output {
		type filter hook output priority 0; policy accept;
		ip daddr @novip meta l4proto tcp reject with tcp reset
		ip daddr @novip reject
	}
	chain svc-db {
		numgen random mod 1 vmap { 0 : goto be-db-0 }
	}
	chain be-db-0 {
		dnat to 10.0.1.20
	}
	chain svc-web {
		numgen random mod 3 vmap { 0 : goto be-web-0, 1 : goto be-web-1, 2 : goto be-web-2 }
	}
	chain be-web-0 {
		dnat to 10.0.1.10
	}
	chain be-web-1 {
		dnat to 10.0.1.11
	}
	chain be-web-2 {
		dnat to 10.0.1.12
	}
}
`

func TestRulesGolden(t *testing.T) {
	got, err := Rules([]Service{
		// unsorted backends with a duplicate: sorted and deduplicated
		{ID: "web", VIP: netip.MustParseAddr("10.0.1.2"), Backends: addrs("10.0.1.12", "10.0.1.10", "10.0.1.11", "10.0.1.10")},
		{ID: "db", VIP: netip.MustParseAddr("10.0.1.3"), Backends: addrs("10.0.1.20")},
		{ID: "idle", VIP: netip.MustParseAddr("10.0.1.4")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != golden {
		t.Fatalf("Rules:\n%s\nwant:\n%s", got, golden)
	}
}

func TestRulesChainNames(t *testing.T) {
	// Swarm-style 25-character IDs sharing their first 16 characters.
	a := "abcdefghijklmnopqrstuvwxy"
	b := "abcdefghijklmnopZZZZZZZZZ"
	got, err := Rules([]Service{
		{ID: a, VIP: netip.MustParseAddr("10.0.1.2"), Backends: addrs("10.0.1.10")},
		{ID: b, VIP: netip.MustParseAddr("10.0.1.3"), Backends: addrs("10.0.1.11")},
		{ID: "we ird/id", VIP: netip.MustParseAddr("10.0.1.5"), Backends: addrs("10.0.1.11")},
	})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, line := range strings.Split(got, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "chain" {
			if len(f[1]) > maxChainName {
				t.Errorf("chain %q longer than %d", f[1], maxChainName)
			}
			if names[f[1]] {
				t.Errorf("chain %q twice", f[1])
			}
			names[f[1]] = true
		}
	}
	if !names["svc-we.ird.id"] {
		t.Errorf("chains %v: want svc-we.ird.id", names)
	}
}

func TestRulesValidation(t *testing.T) {
	v := netip.MustParseAddr("10.0.1.2")
	for name, svcs := range map[string][]Service{
		"empty id":     {{VIP: v}},
		"duplicate id": {{ID: "a", VIP: v}, {ID: "a", VIP: netip.MustParseAddr("10.0.1.3")}},
		"shared vip":   {{ID: "a", VIP: v}, {ID: "b", VIP: v}},
		"ipv6 vip":     {{ID: "a", VIP: netip.MustParseAddr("fd00::1")}},
		"zero vip":     {{ID: "a"}},
		"ipv6 backend": {{ID: "a", VIP: v, Backends: addrs("fd00::2")}},
		"zero backend": {{ID: "a", VIP: v, Backends: []netip.Addr{{}}}},
	} {
		if _, err := Rules(svcs); err == nil {
			t.Errorf("%s: no error", name)
		} else if err := Apply("/nonexistent", svcs); err == nil || !strings.Contains(err.Error(), "vip:") {
			t.Errorf("%s: Apply: %v", name, err)
		}
	}
}
