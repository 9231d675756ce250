package scheduler

import (
	"math/rand"
	"runtime"
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

// BenchmarkViewHeap reports the view's heap per task at 100,000 running
// tasks (100 services of 1,000 replicas, slots 1..1,000, 25-character
// random IDs as the store's) on 10,000 nodes: "rebuild" feeds them to
// UpsertTask as a new leader's scheduler does from the store; "placed"
// places them with Schedule, 1,000 at a time, then feeds their RUNNING
// versions, as the loop does. The tasks and nodes are made before the
// first reading, so only the view's own memory counts. Run (results in
// BENCHMARKS.md):
//
//	go test -run XXX -bench ViewHeap -benchtime 1x -count 3 ./scheduler/
func BenchmarkViewHeap(b *testing.B) {
	const services, perService, nodes = 100, 1000, 10000
	rng := rand.New(rand.NewSource(1))
	nodeList := make([]*api.Node, nodes)
	for i := range nodeList {
		nodeList[i] = testNode(randomID(rng), resources(16e9, 64*gib))
	}
	pending := make([]*api.Task, 0, services*perService)
	for range services {
		tmpl := testTask("", randomID(rng), reserve(1e7, 16<<20))
		for slot := range perService {
			pending = append(pending, &api.Task{
				Id: randomID(rng), ServiceId: tmpl.ServiceId, SpecVersion: 1, Slot: uint64(slot + 1),
				Spec: tmpl.Spec, Status: tmpl.Status, DesiredState: api.TaskState_RUNNING,
			})
		}
	}
	runningStatus := &api.TaskStatus{State: api.TaskState_RUNNING}
	running := func(t *api.Task, node string) *api.Task {
		return &api.Task{Id: t.Id, ServiceId: t.ServiceId, SpecVersion: t.SpecVersion, Slot: t.Slot,
			Spec: t.Spec, DesiredState: t.DesiredState, NodeId: node, Status: runningStatus}
	}
	b.Run("rebuild", func(b *testing.B) {
		tasks := make([]*api.Task, len(pending))
		for i, t := range pending {
			tasks[i] = running(t, nodeList[i%nodes].Id)
		}
		for range b.N {
			before := heapInUse()
			v := newTestView(nodeList...)
			for _, t := range tasks {
				v.UpsertTask(t)
			}
			b.ReportMetric(float64(heapInUse()-before)/float64(len(tasks)), "heap-B/task")
			runtime.KeepAlive(v)
		}
	})
	b.Run("placed", func(b *testing.B) {
		perTask := int64(taskSize())
		for range b.N {
			runs := make([]*api.Task, 0, len(pending))
			before := heapInUse()
			v := newTestView(nodeList...)
			for i := 0; i < len(pending); i += 1000 {
				p := v.Schedule(pending[i:i+1000], t0)
				if len(p.Assigned) != 1000 {
					b.Fatalf("placed %d of 1000", len(p.Assigned))
				}
				for _, a := range p.Assigned {
					r := running(a.Task, a.NodeID)
					runs = append(runs, r)
					v.UpsertTask(r)
				}
			}
			// The running copies are the store's, not the view's.
			runsHeap := int64(len(runs)) * perTask
			b.ReportMetric(float64(heapInUse()-before-runsHeap)/float64(len(runs)), "heap-B/task")
			runtime.KeepAlive(v)
			runtime.KeepAlive(runs)
		}
	})
}

// taskSize is the heap an *api.Task takes (its size class), and a slice
// entry for it, in BenchmarkViewHeap's "placed".
func taskSize() int {
	before := heapInUse()
	ts := make([]*api.Task, 10000)
	for i := range ts {
		ts[i] = &api.Task{}
	}
	n := int(heapInUse()-before) / len(ts)
	runtime.KeepAlive(ts)
	return n
}

// heapInUse is the heap's live bytes after a collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

const idAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// randomID is a 25-character ID like the store's.
func randomID(rng *rand.Rand) string {
	b := make([]byte, 25)
	for i := range b {
		b[i] = idAlphabet[rng.Intn(len(idAlphabet))]
	}
	return string(b)
}
