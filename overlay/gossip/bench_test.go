package gossip

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// BenchmarkConvergence measures, on a 5-node cluster over the in-memory
// transport with the default configuration (but SuspicionMult 4, see start), the time from one node
// publishing N entries of a new network to every node holding all N
// (ms/converge), the bytes all nodes sent meanwhile (bytes/converge) and
// until every broadcast queue was empty again (bytes/drained). Bytes are
// what memberlist hands the transport (encrypted, compressed), its own
// probes included. path=direct is the default (writes go to every member
// over TCP, direct.go); path=gossip disables it (UDP gossip and push-pull
// only, as in clusters above 128 members).
//
//	go test -run '^$' -bench BenchmarkConvergence -benchtime 3x ./overlay/gossip/
func BenchmarkConvergence(b *testing.B) {
	for _, path := range []string{"direct", "gossip"} {
		for _, n := range []int{10, 100, 1000} {
			b.Run(fmt.Sprintf("path=%s/entries=%d", path, n), func(b *testing.B) {
				mn := newMemNet()
				nodes := cluster(b, mn, 5, func(c *Config) {
					c.PushPullInterval = 0 // default
					if path == "gossip" {
						c.DirectThreshold = math.MaxInt
					}
				})
				var totalMS, convBytes, drainBytes float64
				b.ResetTimer()
				for i := range b.N {
					network := fmt.Sprintf("net-%d", i)
					before := mn.bytes.Load()
					begin := time.Now()
					for k := range n {
						nodes[0].Publish(Entry{
							Network: network, Key: fmt.Sprintf("task-%05d-abcdefghijklmnopqrstuvwx", k),
							IP: fmt.Sprintf("10.%d.%d.%d", i%250, k/250, k%250), MAC: "02:42:0a:00:01:05", VTEP: "192.168.10.21",
							ServiceID: "svc-0123456789abcdefghijklm", ServiceName: "web", TaskName: fmt.Sprintf("web.%d", k),
							VIP: "10.0.1.2",
						})
					}
					wait(b, begin, func() bool {
						for _, x := range nodes[1:] {
							if len(x.Entries(network)) != n {
								return false
							}
						}
						return true
					})
					totalMS += float64(time.Since(begin)) / float64(time.Millisecond)
					convBytes += float64(mn.bytes.Load() - before)
					wait(b, begin, func() bool {
						for _, x := range nodes {
							x.mu.Lock()
							fresh := len(x.fresh)
							x.mu.Unlock()
							if fresh > 0 || x.q.NumQueued() > 0 {
								return false
							}
						}
						return true
					})
					drainBytes += float64(mn.bytes.Load() - before)
				}
				b.ReportMetric(totalMS/float64(b.N), "ms/converge")
				b.ReportMetric(convBytes/float64(b.N), "bytes/converge")
				b.ReportMetric(drainBytes/float64(b.N), "bytes/drained")
			})
		}
	}
}

func wait(b *testing.B, begin time.Time, cond func() bool) {
	for !cond() {
		if time.Since(begin) > 2*time.Minute {
			b.Fatal("not reached in 2 min")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
