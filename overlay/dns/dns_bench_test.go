package dns

import (
	"slices"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netns"
)

// benchConns opens n UDP DNS connections to 127.0.0.11:53 inside the
// namespace at path.
func benchConns(b *testing.B, path string, n int) []*mdns.Conn {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Close()
	c := &mdns.Client{Net: "udp"}
	conns := make([]*mdns.Conn, n)
	err = inNetns(ns, func() error {
		for i := range conns {
			var err error
			if conns[i], err = c.Dial("127.0.0.11:53"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

func benchTask(b *testing.B) string {
	path := taskNetns(b)
	s := newServer(b, Config{Resolver: newFake(), Upstreams: []string{"192.0.2.53"}})
	if err := s.AddTask("bench", path); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkDNSAnswer: one client in the task namespace asks tasks.web (3 A
// records) back to back over UDP through the DNAT.
func BenchmarkDNSAnswer(b *testing.B) {
	conn := benchConns(b, benchTask(b), 1)[0]
	c := &mdns.Client{Net: "udp", Timeout: time.Second}
	m := new(mdns.Msg).SetQuestion("tasks.web.", mdns.TypeA)
	b.ResetTimer()
	for range b.N {
		r, _, err := c.ExchangeWithConn(m, conn)
		if err != nil || len(r.Answer) != 3 {
			b.Fatalf("%v %v", r, err)
		}
	}
}

// BenchmarkDNSLatency1000qps: queries for tasks.web paced at 1,000 per
// second from one task (8 client sockets); reports the answer latency
// percentiles (p50-µs, p99-µs) and the achieved rate.
func BenchmarkDNSLatency1000qps(b *testing.B) {
	conns := benchConns(b, benchTask(b), 8)
	m := new(mdns.Msg).SetQuestion("tasks.web.", mdns.TypeA)
	work := make(chan struct{}, 1000)
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	var failed int
	var wg sync.WaitGroup
	for _, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &mdns.Client{Net: "udp", Timeout: time.Second}
			for range work {
				start := time.Now()
				r, _, err := c.ExchangeWithConn(m, conn)
				d := time.Since(start)
				mu.Lock()
				if err != nil || len(r.Answer) != 3 {
					failed++
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	b.ResetTimer()
	start := time.Now()
	// Paced on an absolute schedule (query i at start + i ms), so a late
	// wake-up is caught up instead of lowering the rate.
	for i := range b.N {
		if d := time.Until(start.Add(time.Duration(i) * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed > 0 {
		b.Errorf("%d of %d queries failed", failed, b.N)
	}
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "qps")
}
