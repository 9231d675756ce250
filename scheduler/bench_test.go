package scheduler

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// Schedule benchmarks time Schedule alone, on a fresh view per iteration
// (building the view is outside the timer), and report placements per
// second; view updates are nanoseconds and need the default benchtime. Run
// (results in BENCHMARKS.md):
//
//	go test -run XXX -bench Schedule -benchtime 3x -count 3 ./scheduler/
//	go test -run XXX -bench ViewUpdate -count 3 ./scheduler/

// benchNodes makes n ready nodes with 16 CPUs and 64 GiB, spread over
// three zones.
func benchNodes(n int) []*api.Node {
	out := make([]*api.Node, n)
	for i := range out {
		out[i] = testNode(fmt.Sprintf("node-%05d", i), resources(16e9, 64*gib),
			labels("zone", fmt.Sprintf("zone-%d", i%3), "rack", fmt.Sprintf("rack-%d", i%7)))
	}
	return out
}

// benchTasks makes services × perService pending tasks; tasks of one
// service share a spec, as the store's do in effect.
func benchTasks(services, perService int, opts ...taskOpt) []*api.Task {
	out := make([]*api.Task, 0, services*perService)
	for s := range services {
		tmpl := testTask("", fmt.Sprintf("svc-%04d", s), append([]taskOpt{reserve(1e7, 16<<20)}, opts...)...)
		for i := range perService {
			t := &api.Task{
				Id: fmt.Sprintf("svc-%04d.%d", s, i), ServiceId: tmpl.ServiceId, SpecVersion: 1,
				Spec: tmpl.Spec, Status: tmpl.Status, Endpoint: tmpl.Endpoint, NodeId: tmpl.NodeId,
			}
			out = append(out, t)
		}
	}
	return out
}

func runSchedule(b *testing.B, nodes []*api.Node, pending []*api.Task, wantPlaced int) {
	b.ReportAllocs()
	placed := 0
	for range b.N {
		b.StopTimer()
		v := newTestView(nodes...)
		b.StartTimer()
		p := v.Schedule(pending, t0)
		b.StopTimer()
		if len(p.Assigned) != wantPlaced {
			b.Fatalf("placed %d, want %d (%v)", len(p.Assigned), wantPlaced, reasons(p))
		}
		placed += len(p.Assigned)
		b.StartTimer()
	}
	b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "placements/s")
}

func BenchmarkSchedule(b *testing.B) {
	nodes1k, nodes10k := benchNodes(1000), benchNodes(10000)
	oneThird := func(t *api.Task) { t.Spec.Placement.Constraints = []string{"node.labels.zone==zone-1"} }
	for _, bc := range []struct {
		name                string
		nodes               []*api.Node
		services, perSvc    int
		opts                []taskOpt
		placedIfNotAll, pin int
	}{
		{name: "1svc_x_100k_tasks/1k_nodes", nodes: nodes1k, services: 1, perSvc: 100000},
		{name: "1svc_x_100k_tasks/10k_nodes", nodes: nodes10k, services: 1, perSvc: 100000},
		{name: "1k_svcs_x_100_tasks/1k_nodes", nodes: nodes1k, services: 1000, perSvc: 100},
		{name: "1k_svcs_x_100_tasks/10k_nodes", nodes: nodes10k, services: 1000, perSvc: 100},
		{name: "10_svcs_x_1k_tasks/1k_nodes", nodes: nodes1k, services: 10, perSvc: 1000},
		// SwarmKit's own benchmark shape: every task its own service.
		{name: "ungrouped_10k_tasks/1k_nodes", nodes: nodes1k, services: 10000, perSvc: 1},
		{name: "ungrouped_10k_tasks/10k_nodes", nodes: nodes10k, services: 10000, perSvc: 1},
		{name: "ungrouped_10k_tasks_constraint_third/1k_nodes", nodes: nodes1k, services: 10000, perSvc: 1, opts: []taskOpt{oneThird}},
		{name: "1svc_x_100k_tasks_spread_zone_rack/1k_nodes", nodes: nodes1k, services: 1, perSvc: 100000,
			opts: []taskOpt{prefs("node.labels.zone", "node.labels.rack")}},
		{name: "1k_svcs_x_100_tasks_spread_zone/10k_nodes", nodes: nodes10k, services: 1000, perSvc: 100,
			opts: []taskOpt{prefs("node.labels.zone")}},
		{name: "1k_svcs_x_100_tasks_maxreplicas_1/10k_nodes", nodes: nodes10k, services: 1000, perSvc: 100,
			opts: []taskOpt{maxReplicas(1)}},
	} {
		pending := benchTasks(bc.services, bc.perSvc, bc.opts...)
		b.Run(bc.name, func(b *testing.B) { runSchedule(b, bc.nodes, pending, len(pending)) })
	}
	// A global service: one pinned task per node, validated only.
	b.Run("global_10k_pinned/10k_nodes", func(b *testing.B) {
		pending := benchTasks(1, len(nodes10k))
		for i, t := range pending {
			t.NodeId = nodes10k[i].Id
		}
		runSchedule(b, nodes10k, pending, len(pending))
	})
}

// BenchmarkViewUpdate measures what the scheduler loop pays per store
// event.
func BenchmarkViewUpdate(b *testing.B) {
	nodes := benchNodes(1000)
	v := newTestView(nodes...)
	tasks := benchTasks(100, 100)
	for i, t := range tasks {
		t.NodeId = nodes[i%len(nodes)].Id
		t.Status = &api.TaskStatus{State: api.TaskState_RUNNING}
		v.UpsertTask(t)
	}
	// A status update that changes what the task holds: each op feeds the
	// next version of one task, alternately ended (COMPLETE: releases its
	// node's reservations, port and service count) and assigned again
	// (ASSIGNED on the same node: charges them). Both versions are built
	// outside the timer.
	ended, assigned := make([]*api.Task, len(tasks)), make([]*api.Task, len(tasks))
	for i, t := range tasks {
		e, a := proto.Clone(t).(*api.Task), proto.Clone(t).(*api.Task)
		e.Status = &api.TaskStatus{State: api.TaskState_COMPLETE}
		a.Status = &api.TaskStatus{State: api.TaskState_ASSIGNED}
		ended[i], assigned[i] = e, a
	}
	b.Run("task_status_update", func(b *testing.B) {
		for i := range b.N {
			k := i % len(tasks)
			if (i/len(tasks))%2 == 0 {
				v.UpsertTask(ended[k])
			} else {
				v.UpsertTask(assigned[k])
			}
		}
		b.StopTimer()
		// Leave every task held, as the next benchmarks expect.
		for _, t := range tasks {
			v.UpsertTask(t)
		}
	})
	// The same, with the node's move in the load index that the update
	// defers to the next Schedule call (flushIndex) done at once: what a
	// node changed once between two Schedule calls costs in all.
	b.Run("task_status_update_and_index_move", func(b *testing.B) {
		for i := range b.N {
			k := i % len(tasks)
			if (i/len(tasks))%2 == 0 {
				v.UpsertTask(ended[k])
			} else {
				v.UpsertTask(assigned[k])
			}
			v.flushIndex()
		}
		b.StopTimer()
		for _, t := range tasks {
			v.UpsertTask(t)
		}
		v.flushIndex()
	})
	// A status update on the same node that keeps what it holds (ASSIGNED
	// → PREPARING → RUNNING): the view returns early.
	b.Run("task_status_update_same_node", func(b *testing.B) {
		for i := range b.N {
			v.UpsertTask(tasks[i%len(tasks)])
		}
	})
	b.Run("task_remove_and_add", func(b *testing.B) {
		for i := range b.N {
			t := tasks[i%len(tasks)]
			v.RemoveTask(t.Id)
			v.UpsertTask(t)
		}
	})
	b.Run("node_update", func(b *testing.B) {
		for i := range b.N {
			v.UpsertNode(nodes[i%len(nodes)])
		}
	})
}
