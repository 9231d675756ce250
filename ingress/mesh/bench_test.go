package mesh

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// BenchmarkConnect measures TCP connection setup (connect, read the
// backend's greeting line, close) from the lab's outside namespace, through
// the mesh on h1 (published port, one backend) and directly to the same
// backend routed through h1 (ext has a route to the overlay via h1), for a
// backend on h1 (local) and one on h2 (remote, across the VXLAN). The
// topology is built once, outside the timed loops.
func BenchmarkConnect(b *testing.B) {
	l := newLab(b)
	l.returnPaths()
	run(b, "ip", "-n", l.name("ext"), "route", "add", ovSubnet, "via", ulH1)
	ports := []Port{
		{Proto: "tcp", Published: 30100, Target: beTCP, Backends: addrs("c4")},
		{Proto: "tcp", Published: 30101, Target: beTCP, Backends: addrs("c2")},
	}
	if err := Apply(l.path("h1"), ports); err != nil {
		b.Fatal(err)
	}
	// Interleaved: each iteration connects once through the mesh and once
	// directly to the same backend, so load on a shared machine hits both
	// alike; reports the medians (ns) of each path.
	for _, c := range []struct {
		name       string
		port       int
		backendKey string
	}{{"interleaved-local", 30100, "c4"}, {"interleaved-remote", 30101, "c2"}} {
		b.Run(c.name, func(b *testing.B) {
			var mesh, direct []time.Duration
			for b.Loop() {
				start := time.Now()
				if _, err := l.ask("ext", ulH1, c.port, 2*time.Second); err != nil {
					b.Fatal(err)
				}
				mesh = append(mesh, time.Since(start))
				start = time.Now()
				if _, err := l.ask("ext", backendIP[c.backendKey], beTCP, 2*time.Second); err != nil {
					b.Fatal(err)
				}
				direct = append(direct, time.Since(start))
			}
			b.ReportMetric(float64(median(mesh)), "mesh-median-ns")
			b.ReportMetric(float64(median(direct)), "direct-median-ns")
		})
	}
	for _, c := range []struct {
		name string
		addr string
		port int
	}{
		{"mesh-local", ulH1, 30100},
		{"direct-local", backendIP["c4"], beTCP},
		{"mesh-remote", ulH1, 30101},
		{"direct-remote", backendIP["c2"], beTCP},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := l.ask("ext", c.addr, c.port, 2*time.Second); err != nil {
					b.Fatal(fmt.Errorf("%s: %w", c.name, err))
				}
			}
		})
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

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
