package etcd

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// BenchmarkEtcdPut measures committed writes per second and their latency
// on a fresh 3-member etcd cluster per case, at 1, 16 and 256 concurrent
// writers sharing one client connected to the leader. Each write is a Put of
// a new key with a 256-byte value; its timer runs from the call to the
// client's answer (etcd answers once the entry is applied on the leader, as
// shoal does). Run with e.g. -benchtime=5000x so every case does the same
// work. The etcd binary is $ETCD, else etcd on $PATH (Debian's etcd-server).
func BenchmarkEtcdPut(b *testing.B) {
	bin := os.Getenv("ETCD")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("etcd"); err != nil {
			b.Fatalf("no etcd binary (install etcd-server: scripts/install-deps.sh --bench-etcd, or set ETCD): %v", err)
		}
	}
	for _, writers := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("proposers=%d", writers), func(b *testing.B) {
			leader := startCluster(b, bin, 3)
			cli, err := clientv3.New(clientv3.Config{Endpoints: []string{leader}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				b.Fatal(err)
			}
			defer cli.Close()
			value := string(make([]byte, 256))
			lat := make([]time.Duration, b.N)
			var next, failed atomic.Int64
			var firstErr atomic.Value
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						t0 := time.Now()
						_, err := cli.Put(ctx, fmt.Sprintf("c%08d", i), value)
						lat[i] = time.Since(t0)
						cancel()
						if err != nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, err)
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if failed.Load() > 0 {
				b.Fatalf("%d writes failed, the first with: %v", failed.Load(), firstErr.Load())
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// startCluster starts n etcd members on loopback, each with a data
// directory under b.TempDir() (removed with it), stops them when the
// benchmark ends, and returns the client URL of the elected leader.
func startCluster(b *testing.B, bin string, n int) string {
	b.Helper()
	dir := b.TempDir()
	peers := make([]string, n)
	clients := make([]string, n)
	for i := range n {
		peers[i] = "http://" + freeAddr(b)
		clients[i] = "http://" + freeAddr(b)
	}
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("m%d=%s", i, peers[i]))
	}
	for i := range n {
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("m%d.log", i)))
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(bin,
			"--name", fmt.Sprintf("m%d", i),
			"--data-dir", filepath.Join(dir, fmt.Sprintf("m%d", i)),
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", "shoal-bench",
			"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			_ = logf.Close()
		})
	}
	// The leader: the member whose status names itself as leader.
	cli, err := clientv3.New(clientv3.Config{Endpoints: clients, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, ep := range clients {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cli.Status(ctx, ep)
			cancel()
			if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
				return ep
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "m0.log"))
	b.Fatalf("the etcd cluster elected no leader in 30 s; m0's log:\n%s", out)
	return ""
}

func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
