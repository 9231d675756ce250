package raftstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// benchWatchNodes is the nodes (one assignments watcher each) of
// BenchmarkApplyWithNodeWatchers.
const benchWatchNodes = 5000

// BenchmarkApplyWithNodeWatchers is Apply of a 1,000-task transaction (each
// task moved to another node and reported running) with 5,000 watchers,
// one per node, as the dispatcher's assignments watches: "filter" selects
// each node's tasks with a Filter (every watcher's Filter runs for every
// event), "nodeid" with WatchOptions.NodeID (the store finds the watchers
// of the event's nodes); "none" has no watcher (Apply alone). The timer
// covers Apply only (decode, tree writes, publish, broadcast under the lock);
// building the transaction and draining the watchers are outside it.
func BenchmarkApplyWithNodeWatchers(b *testing.B) {
	for _, mode := range []string{"none", "filter", "nodeid"} {
		b.Run(mode, func(b *testing.B) {
			now := time.Unix(1_800_000_000, 0)
			sv := benchService(1)
			s := NewStandaloneStore(nil)
			if err := s.Update(context.Background(), func(tx *Tx) error {
				if err := tx.Create(sv); err != nil {
					return err
				}
				for j := range benchBatch {
					if err := tx.Create(benchTask(sv, j+1, now)); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			node := func(i int) string { return fmt.Sprintf("node%021d", i%benchWatchNodes) }
			watchers := make([]*Watcher, benchWatchNodes)
			if mode == "none" {
				watchers = nil
			}
			for i := range watchers {
				n := node(i)
				opts := WatchOptions{Kinds: []string{KindTask}}
				if mode == "nodeid" {
					opts.NodeID = n
				} else {
					opts.Filter = func(ev Event) bool {
						t, _ := ev.Object.(*api.Task)
						o, _ := ev.Old.(*api.Task)
						return (t != nil && t.NodeId == n) || (o != nil && o.NodeId == n)
					}
				}
				watchers[i] = s.Watch(opts)
			}
			defer func() {
				for _, w := range watchers {
					w.Close()
				}
			}()
			var tasks []*api.Task
			s.View(func(tx ReadTx) { tasks = tx.Tasks() })
			index := s.Version()
			var cpu cpuClock
			delivered := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				actions := make([]*api.StoreAction, len(tasks))
				for j, t := range tasks {
					u := running(t, node(i*benchBatch+j*7), now)
					actions[j] = &api.StoreAction{Kind: api.StoreAction_UPDATE, Object: Wrap(u), ExpectedVersion: index}
				}
				index = cpu.applyTimed(b, s, index, actions)
				b.StopTimer()
				for _, w := range watchers {
				drain:
					for {
						select {
						case <-w.C:
							delivered++
						default:
							break drain
						}
					}
					if err := w.Err(); err != nil {
						b.Fatalf("a watcher was cut off: %v", err)
					}
				}
				s.View(func(tx ReadTx) { tasks = tx.Tasks() })
				b.StartTimer()
			}
			b.StopTimer()
			if delivered == 0 && mode != "none" {
				b.Fatal("no event reached the watchers")
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/tx")
			b.ReportMetric(float64(delivered)/float64(b.N), "events/tx")
			cpu.report(b, b.N*benchBatch)
		})
	}
}

// BenchmarkNodeWatcherHeap reports the heap of an idle NodeID watcher (the
// dispatcher keeps one per node on the leader), at 10,000 of them:
//
//	go test -run XXX -bench NodeWatcherHeap -benchtime 1x -count 3 ./raftstore/
func BenchmarkNodeWatcherHeap(b *testing.B) {
	const watchers = 10000
	nodes := make([]string, watchers)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("node-%05d", i)
	}
	for range b.N {
		s := NewStandaloneStore(nil)
		ws := make([]*Watcher, 0, watchers)
		before := heapInUse()
		for _, n := range nodes {
			ws = append(ws, s.Watch(WatchOptions{Kinds: []string{KindTask}, NodeID: n}))
		}
		b.ReportMetric(float64(heapInUse()-before)/watchers, "heap-B/watcher")
		for _, w := range ws {
			w.Close()
		}
	}
}
