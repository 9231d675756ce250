package mesh

import (
	"fmt"
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
