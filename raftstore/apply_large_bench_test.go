package raftstore

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// BenchmarkApplyAt100kTasks times Apply of one transaction of 1,000 task
// updates (each moved to another node and status) spread at random over a
// store of 100 services × 1,000 running tasks: what a replica pays per
// dispatcher batch at scale, where each write lands in another part of the
// trees. cpu-ns/task as in BenchmarkStoreApply. Run:
//
//	go test -run XXX -bench ApplyAt100kTasks -benchtime 10x -count 3 ./raftstore/
func BenchmarkApplyAt100kTasks(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	b.ReportAllocs()
	var cpu cpuClock
	s := NewStandaloneStore(nil)
	fillStore(b, s, 100, 1000)
	var ids []string
	s.View(func(tx ReadTx) {
		for _, t := range tx.Tasks() {
			ids = append(ids, t.Id)
		}
	})
	rng := rand.New(rand.NewSource(1))
	index := s.Version()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		actions := make([]*api.StoreAction, 0, benchBatch)
		seen := map[string]bool{}
		s.View(func(tx ReadTx) {
			for len(actions) < benchBatch {
				id := ids[rng.Intn(len(ids))]
				if seen[id] {
					continue
				}
				seen[id] = true
				t := tx.Task(id)
				u := running(t, fmt.Sprintf("node%021d", (i+len(actions)+7)%1000), now)
				actions = append(actions, &api.StoreAction{Kind: api.StoreAction_UPDATE, Object: Wrap(u), ExpectedVersion: t.Meta.Version})
			}
		})
		index = cpu.applyTimed(b, s, index, actions)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/task")
	cpu.report(b, b.N*benchBatch)
}
