package mesh

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/shoal-project/shoal/internal/testutil"
)

// BenchmarkApply measures one Apply (one nftables transaction replacing
// the table) in a fresh namespace with n published ports of one backend
// each (n one-replica services) and with 3 backends each. Every iteration
// alternates between the full list and the list with one backend of port 0
// gone (a task's death), so each Apply is a real change:
//
//	go test -run '^$' -bench Apply -benchtime 20x ./ingress/mesh/
//
// It is the in-process part of the routing mesh's rule update time: the
// lab's BenchmarkMesh/rules adds the way from the kill to the Apply (the
// worker's report, the manager, the agents on every node).
//
// Until 2 December 2026 Apply failed from 50 ports of 1 backend and from
// 20 ports of 3 (netlink receive: no buffer space available), and at 1,000
// ports with "sendmsg: message too long": the netlink socket buffers were
// the defaults (ingress/internal/nftconn now raises them; TestApplyManyPorts
// keeps it so).
func BenchmarkApply(b *testing.B) {
	testutil.RequiresRoot(b)
	l := &lab{t: b, prefix: "meshap" + randHex()}
	l.newNS("h")
	ns := l.path("h")
	for _, n := range []int{3, 30, 100, 1000} {
		for _, per := range []int{1, 3} {
			b.Run(fmt.Sprintf("ports=%d/backends=%d", n, per), func(b *testing.B) {
				full := benchPorts(n, per)
				less := benchPorts(n, per)
				less[0].Backends = less[0].Backends[1:]
				if err := Apply(ns, full); err != nil {
					b.Fatalf("Apply with %d ports of %d backends: %v", n, per, err)
				}
				i := 0
				for b.Loop() {
					ports := full
					if i%2 == 0 {
						ports = less
					}
					i++
					if err := Apply(ns, ports); err != nil {
						b.Fatalf("Apply with %d ports of %d backends: %v", n, per, err)
					}
				}
			})
		}
	}
	if err := Remove(ns); err != nil {
		b.Fatal(err)
	}
}

// TestApplyManyPorts: one transaction of 1,000 published ports of 3
// backends each is applied, changed and removed (the default netlink
// buffers failed from about 20 such ports).
func TestApplyManyPorts(t *testing.T) {
	testutil.RequiresRoot(t)
	l := &lab{t: t, prefix: "meshmany" + randHex()}
	l.newNS("h")
	ns := l.path("h")
	full := benchPorts(1000, 3)
	if err := Apply(ns, full); err != nil {
		t.Fatalf("Apply with 1,000 ports of 3 backends: %v", err)
	}
	less := benchPorts(1000, 3)
	less[999].Backends = less[999].Backends[:1]
	if err := Apply(ns, less); err != nil {
		t.Fatalf("Apply after a change: %v", err)
	}
	if err := Remove(ns); err != nil {
		t.Fatal(err)
	}
}

// benchPorts is n TCP ports from 20000, each with per backends on
// 10.200.0.0/16.
func benchPorts(n, per int) []Port {
	ports := make([]Port, n)
	k := 0
	for i := range ports {
		p := Port{Proto: "tcp", Published: uint16(20000 + i), Target: 80}
		for j := 0; j < per; j++ {
			k++
			p.Backends = append(p.Backends, netip.AddrFrom4([4]byte{10, 200, byte(k >> 8), byte(k)}))
		}
		ports[i] = p
	}
	return ports
}
