package mesh

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

func a(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestRulesGolden(t *testing.T) {
	got, err := Rules([]Port{
		{Proto: "udp", Published: 30090, Target: 9000, Backends: []netip.Addr{a("10.200.0.13"), a("10.200.0.12"), a("10.200.0.12")}},
		{Proto: "tcp", Published: 30081, Target: 8080, Backends: []netip.Addr{a("10.200.0.14")}, HostMode: true},
		{Proto: "tcp", Published: 30080, Target: 8080, Backends: []netip.Addr{a("10.200.0.14"), a("10.200.0.12")}, Masquerade: true},
		{Proto: "tcp", Published: 30082, Target: 80},
		{Proto: "udp", Published: 30082, Target: 80},
		{Proto: "tcp", Published: 30083, Target: 80, HostMode: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `table ip shoal-ingress {
	map nodeports {
		type inet_proto . inet_service : verdict
		elements = { tcp . 30080 : goto port-tcp-30080, tcp . 30081 : goto port-tcp-30081, udp . 30090 : goto port-udp-30090 }
	}
	set closed {
		type inet_proto . inet_service
		elements = { tcp . 30082, udp . 30082 }
	}
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		fib daddr type local meta l4proto . th dport vmap @nodeports
	}
	chain output {
		type nat hook output priority -100; policy accept;
		fib daddr type local meta l4proto . th dport vmap @nodeports
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		meta mark & 0x10000000 == 0x10000000 masquerade
		ip saddr 127.0.0.0/8 oifname != "lo" ct status dnat masquerade
	}
	chain input {
		type filter hook input priority 0; policy accept;
		meta l4proto . th dport @closed meta l4proto tcp reject with tcp reset
		meta l4proto . th dport @closed reject
	}
	chain forward {
		type filter hook forward priority 0; policy accept;
		ct status dnat fib daddr . iif oif != 0 meta mark set meta mark | 0x10000000
	}
	chain guard {
		type filter hook prerouting priority -300; policy accept;
		iifname != "lo" ip daddr 127.0.0.0/8 drop
	}
	chain port-tcp-30080 {
		meta mark set meta mark | 0x10000000
		numgen random mod 2 vmap { 0 : goto be-tcp-30080-0, 1 : goto be-tcp-30080-1 }
	}
	chain be-tcp-30080-0 {
		dnat to 10.200.0.12:8080
	}
	chain be-tcp-30080-1 {
		dnat to 10.200.0.14:8080
	}
	chain port-tcp-30081 {
		goto be-tcp-30081-0
	}
	chain be-tcp-30081-0 {
		dnat to 10.200.0.14:8080
	}
	chain port-udp-30090 {
		numgen random mod 2 vmap { 0 : goto be-udp-30090-0, 1 : goto be-udp-30090-1 }
	}
	chain be-udp-30090-0 {
		dnat to 10.200.0.12:9000
	}
	chain be-udp-30090-1 {
		dnat to 10.200.0.13:9000
	}
}
`
	if got != want {
		t.Errorf("Rules:\n%s\nwant:\n%s", got, want)
	}
	empty, err := Rules(nil)
	if err != nil || !strings.Contains(empty, "map nodeports {\n\t\ttype inet_proto . inet_service : verdict\n\t}") {
		t.Errorf("Rules(nil) = %q, %v", empty, err)
	}
}

func TestReturnRulesGolden(t *testing.T) {
	got, err := ReturnRules(Return{Interface: "eth1", Subnet: netip.MustParsePrefix("10.200.0.0/24"), Nodes: []IngressNode{
		{MAC: net.HardwareAddr{2, 0x42, 10, 200, 0, 3}, Addr: a("10.200.0.3")},
		{MAC: net.HardwareAddr{2, 0x42, 10, 200, 0, 2}, Addr: a("10.200.0.2")},
	}, UDPPorts: []uint16{9000, 53, 9000}})
	if err != nil {
		t.Fatal(err)
	}
	want := `table ip shoal-ret {
	map node-macs {
		type ether_addr : mark
		elements = { 02:42:0a:c8:00:02 : 0x10002, 02:42:0a:c8:00:03 : 0x10003 }
	}
	chain pre {
		type filter hook prerouting priority -150; policy accept;
		iifname "eth1" ct state new ip saddr != 10.200.0.0/24 ct mark set ether saddr map @node-macs
	}
	chain out {
		type route hook output priority -150; policy accept;
		ct mark != 0x0 meta mark set ct mark
	}
}
ip rule: 100: from all fwmark 0x10002 lookup 65538
ip rule: 100: from all fwmark 0x10003 lookup 65539
ip rule: 101: from all lookup main suppress_prefixlength 0
ip rule: 102: from all ipproto udp sport 53 lookup 65536
ip rule: 102: from all ipproto udp sport 9000 lookup 65536
ip rule: 32800: from all lookup 65536
ip route: default via 10.200.0.2 dev eth1 table 65538
ip route: default via 10.200.0.3 dev eth1 table 65539
ip route: default dev eth1 scope link table 65536
`
	if got != want {
		t.Errorf("ReturnRules:\n%s\nwant:\n%s", got, want)
	}
}

func TestValidation(t *testing.T) {
	be := []netip.Addr{a("10.0.0.2")}
	for name, ports := range map[string][]Port{
		"proto":       {{Proto: "sctp", Published: 1, Target: 1, Backends: be}},
		"published 0": {{Proto: "tcp", Target: 1, Backends: be}},
		"target 0":    {{Proto: "tcp", Published: 1, Backends: be}},
		"twice":       {{Proto: "tcp", Published: 1, Target: 1}, {Proto: "tcp", Published: 1, Target: 2, Backends: be}},
		"v6 backend":  {{Proto: "tcp", Published: 1, Target: 1, Backends: []netip.Addr{a("fd00::1")}}},
		"loopback":    {{Proto: "tcp", Published: 1, Target: 1, Backends: []netip.Addr{a("127.0.0.1")}}},
		"zero addr":   {{Proto: "tcp", Published: 1, Target: 1, Backends: []netip.Addr{{}}}},
	} {
		if _, err := Rules(ports); err == nil {
			t.Errorf("%s: Rules accepted %+v", name, ports)
		} else if err := Apply("/nonexistent", ports); err == nil || strings.Contains(err.Error(), "nonexistent") {
			t.Errorf("%s: Apply did not validate before touching the namespace: %v", name, err)
		}
	}
	// tcp and udp on one port number are two ports.
	if _, err := Rules([]Port{{Proto: "tcp", Published: 1, Target: 1}, {Proto: "udp", Published: 1, Target: 1}}); err != nil {
		t.Errorf("tcp+udp on one number: %v", err)
	}

	sub := netip.MustParsePrefix("10.200.0.0/24")
	m := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	for name, c := range map[string]struct {
		ifName string
		subnet netip.Prefix
		nodes  []IngressNode
	}{
		"no interface":  {"", sub, nil},
		"long name":     {"abcdefghijklmnop", sub, nil},
		"v6 subnet":     {"eth1", netip.MustParsePrefix("fd00::/64"), nil},
		"wide subnet":   {"eth1", netip.MustParsePrefix("10.0.0.0/7"), nil},
		"bad MAC":       {"eth1", sub, []IngressNode{{MAC: net.HardwareAddr{1, 2}, Addr: a("10.200.0.2")}}},
		"outside":       {"eth1", sub, []IngressNode{{MAC: m, Addr: a("10.201.0.2")}}},
		"duplicate MAC": {"eth1", sub, []IngressNode{{MAC: m, Addr: a("10.200.0.2")}, {MAC: m, Addr: a("10.200.0.3")}}},
		"network addr":  {"eth1", sub, []IngressNode{{MAC: m, Addr: a("10.200.0.0")}}},
		"duplicate IP":  {"eth1", sub, []IngressNode{{MAC: m, Addr: a("10.200.0.2")}, {MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, Addr: a("10.200.0.2")}}},
	} {
		if _, err := ReturnRules(Return{Interface: c.ifName, Subnet: c.subnet, Nodes: c.nodes}); err == nil {
			t.Errorf("%s: ReturnRules accepted it", name)
		}
	}
}
