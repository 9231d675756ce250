package raftstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// BenchmarkReplicatedWrites measures committed writes per second and commit
// latency for 3 members over loopback gRPC with real fsync, at 1, 16 and 256
// concurrent proposers. Each write creates one object carrying 256 bytes of
// data. Run with e.g. -benchtime=5000x so every level does the same work.
// entries/append is the leader's mean entries per write of its log (the
// batch raft forms while the previous write is under way).
//
// The three members share this process, so it runs with benchProcs
// processors (GOMAXPROCS) for them: what three manager processes have, and
// what etcd's three members have in BenchmarkEtcdPut.
func BenchmarkReplicatedWrites(b *testing.B) {
	for _, proposers := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("proposers=%d", proposers), func(b *testing.B) {
			// Here: the testing package sets GOMAXPROCS (-test.cpu) before
			// every sub-benchmark.
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(benchProcs(3)))
			c := newGRPCCluster(b, 3, func(cfg *Config) { cfg.Tick = 100 * time.Millisecond })
			l := c.leader()
			appends0, appended0 := l.node.appends.Load(), l.node.appended.Load()
			value := make([]byte, 256)
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			var wg sync.WaitGroup
			var failed atomic.Int64
			b.ResetTimer()
			start := time.Now()
			for p := 0; p < proposers; p++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						t0 := time.Now()
						err := l.store.Update(context.Background(), func(tx *Tx) error {
							return tx.Create(&api.Config{Id: fmt.Sprintf("c%08d", i), Spec: &api.ConfigSpec{Data: value,
								Annotations: &api.Annotations{Name: fmt.Sprintf("c%08d", i)}}})
						})
						lat[i] = time.Since(t0)
						if err != nil {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if failed.Load() > 0 {
				b.Fatalf("%d writes failed", failed.Load())
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			if appends := l.node.appends.Load() - appends0; appends > 0 {
				b.ReportMetric(float64(l.node.appended.Load()-appended0)/float64(appends), "entries/append")
			}
		})
	}
}

// benchProcs is the processors (Go's GOMAXPROCS) for members managers
// sharing one process: what members processes would have on this machine,
// one per CPU each (the benchmark's name keeps the testing package's -N
// suffix). It matters because a goroutine in fdatasync keeps its processor
// until the scheduler takes it back (tens of µs to milliseconds later):
// with one machine's processors for three members, two members syncing at
// once leave the third member and the transport's goroutines one processor,
// or none (BENCHMARKS.md, "Raft store: committed writes", has the numbers).
func benchProcs(members int) int { return members * runtime.NumCPU() }

// BenchmarkFdatasync measures the machine's fdatasync after a 2.3 KB
// append, the unit the commit latency is compared with.
func BenchmarkFdatasync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "sync"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 2300)
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := fdatasync(f); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkQuorumFdatasync measures the disk's limit for one commit of 3
// members on one machine: three files in the directory the raft logs of
// BenchmarkReplicatedWrites use (b.TempDir(), same disk), one writer
// goroutine each; an iteration appends a 2.3 KB record to all three at once
// and its timer stops when two of the three have synced (a quorum of two).
// fsyncs=1 is one append + fdatasync per file (a log that needs one sync
// per write); fsyncs=2 adds a 4 KiB write at the start of the file and a
// second fdatasync (what a bbolt transaction costs: its pages, then its
// meta page). Every iteration waits for the third file too, so each file
// has one write in flight.
func BenchmarkQuorumFdatasync(b *testing.B) {
	for _, syncs := range []int{1, 2} {
		b.Run(fmt.Sprintf("fsyncs=%d", syncs), func(b *testing.B) {
			dir := b.TempDir()
			record := make([]byte, 2300)
			meta := make([]byte, 4096)
			start := make([]chan struct{}, 3)
			done := make(chan error, 3)
			var wg sync.WaitGroup
			for i := range start {
				f, err := os.Create(filepath.Join(dir, fmt.Sprintf("log%d", i)))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := f.Write(meta); err != nil {
					b.Fatal(err)
				}
				start[i] = make(chan struct{})
				wg.Add(1)
				go func(ch chan struct{}) {
					defer wg.Done()
					defer f.Close()
					for range ch {
						_, err := f.Write(record)
						if err == nil {
							err = fdatasync(f)
						}
						if err == nil && syncs == 2 {
							if _, err = f.WriteAt(meta, 0); err == nil {
								err = fdatasync(f)
							}
						}
						done <- err
					}
				}(start[i])
			}
			defer func() {
				for _, ch := range start {
					close(ch)
				}
				wg.Wait()
			}()
			lat := make([]time.Duration, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				for _, ch := range start {
					ch <- struct{}{}
				}
				for k := 0; k < 3; k++ {
					if err := <-done; err != nil {
						b.Fatal(err)
					}
					if k == 1 {
						lat[i] = time.Since(t0)
					}
				}
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
