package schedloop_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/manager/schedloop"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// BenchmarkSchedLoop times the scheduling loop end to end on a standalone
// store (the state machine without raft: each transaction is encoded,
// deflated over 16 KiB, decoded and applied, as on a one-manager cluster
// without the log's fsync). bench/swarmkit runs the same cases through
// SwarmKit's scheduler, with the same names; scripts/bench-compare.sh runs
// both and prints them side by side (results in BENCHMARKS.md):
//
//	go test -run '^$' -bench SchedLoop -benchtime 1x -count 3 ./manager/schedloop/
//
// Nodes have 16 CPUs and 64 GiB and labels zone (3 values) and rack (7);
// tasks are PENDING, desired RUNNING, and reserve 0.01 CPU and 16 MiB. One
// op is one whole case; placements/s is tasks over the op's time.
//
//   - events/…: the loop runs on a store that holds the nodes and has
//     placed one warm-up task (so the loop is watching). The timer starts,
//     the benchmark creates the tasks in transactions of
//     raftstore.BatchItems, and the timer stops when a watch of the store
//     has seen every task ASSIGNED to a node. It includes the creating
//     commits, the event stream into the loop, planning, the placement
//     commits (raftstore.BatchItems tasks per transaction) and their events
//     to the benchmark's watch. The loop plans as soon as its event queue
//     drains after a commit: no fixed wait.
//   - snapshot/…: the store holds nodes and pending tasks before the loop
//     starts. The timer covers Run reading the snapshot into a view,
//     planning, and the placement commits, until the watch has seen every
//     task ASSIGNED. With a real clock the loop waits its 50 ms quiet period
//     before the first pass over a snapshot; this benchmark uses a fake
//     clock and advances it whenever the loop waits, so no wait is timed.
func BenchmarkSchedLoop(b *testing.B) {
	for _, c := range benchCases() {
		b.Run("events/"+c.name, func(b *testing.B) { runCase(b, c, false) })
		b.Run("snapshot/"+c.name, func(b *testing.B) { runCase(b, c, true) })
	}
}

// benchCase is one shape; bench/swarmkit has the same list.
type benchCase struct {
	name                   string
	nodes, services, tasks int    // tasks in all, spread evenly over services
	constraint             string // placement constraint of every task
}

func benchCases() []benchCase {
	return []benchCase{
		{name: "1svc_x_10k_tasks/1k_nodes", nodes: 1000, services: 1, tasks: 10000},
		{name: "10k_svcs_x_1_task/1k_nodes", nodes: 1000, services: 10000, tasks: 10000},
		{name: "10k_svcs_x_1_task/10k_nodes", nodes: 10000, services: 10000, tasks: 10000},
		{name: "10k_svcs_x_1_task_constraint_third/1k_nodes", nodes: 1000, services: 10000, tasks: 10000,
			constraint: "node.labels.zone==zone-1"},
		{name: "1svc_x_10k_tasks_constraint_third/1k_nodes", nodes: 1000, services: 1, tasks: 10000,
			constraint: "node.labels.zone==zone-1"},
		{name: "1svc_x_100k_tasks/1k_nodes", nodes: 1000, services: 1, tasks: 100000},
	}
}

func benchNode(i int) *api.Node {
	id := fmt.Sprintf("node-%05d", i)
	return &api.Node{
		Id: id,
		Spec: &api.NodeSpec{
			Annotations: &api.Annotations{Name: id, Labels: map[string]string{
				"zone": fmt.Sprintf("zone-%d", i%3), "rack": fmt.Sprintf("rack-%d", i%7),
			}},
			Availability: api.Availability_ACTIVE,
		},
		Description: &api.NodeDescription{
			Hostname:  id,
			Platform:  &api.Platform{Os: "linux", Architecture: "amd64"},
			Resources: &api.Resources{NanoCpus: 16e9, MemoryBytes: 64 << 30},
			Engine:    &api.EngineDescription{},
		},
		Status: &api.NodeStatus{State: api.NodeStatus_READY},
	}
}

// benchTasks makes the case's pending tasks; task i belongs to service
// i % services. Each task has its own copy of its service's task template
// and annotations (benchServices), as tasks decoded from the orchestrator's
// creates do; the store shares equal copies (raftstore/share.go), as it
// does in a cluster. SwarmKit's tasks carry the same fields.
func benchTasks(c benchCase, prefix string) []*api.Task {
	out := make([]*api.Task, c.tasks)
	for i := range out {
		svc := fmt.Sprintf("svc-%05d", i%c.services)
		out[i] = &api.Task{
			Id: fmt.Sprintf("%s%06d", prefix, i), ServiceId: svc,
			SpecVersion: 1, Slot: uint64(i/c.services + 1),
			ServiceAnnotations: &api.Annotations{Name: svc},
			Spec:               benchTaskSpec(c),
			Status:             &api.TaskStatus{State: api.TaskState_PENDING},
			DesiredState:       api.TaskState_RUNNING,
		}
	}
	return out
}

// benchTaskSpec is the task template of every service of the case.
func benchTaskSpec(c benchCase) *api.TaskSpec {
	placement := &api.Placement{}
	if c.constraint != "" {
		placement.Constraints = []string{c.constraint}
	}
	return &api.TaskSpec{
		Container: &api.ContainerSpec{Image: "busybox"},
		Resources: &api.ResourceRequirements{Reservations: &api.Resources{NanoCpus: 1e7, MemoryBytes: 16 << 20}},
		Placement: placement,
	}
}

func benchServices(c benchCase) []*api.Service {
	out := make([]*api.Service, c.services)
	for i := range out {
		id := fmt.Sprintf("svc-%05d", i)
		out[i] = &api.Service{Id: id, Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: id}, Task: benchTaskSpec(c)}}
	}
	return out
}

// createAll writes objects in transactions of raftstore.BatchItems.
func createAll[T raftstore.Object](b *testing.B, ctx context.Context, s *raftstore.Store, objs []T) {
	for start := 0; start < len(objs); start += raftstore.BatchItems {
		batch := objs[start:min(start+raftstore.BatchItems, len(objs))]
		if err := s.Update(ctx, func(tx *raftstore.Tx) error {
			for _, o := range batch {
				if err := tx.Create(o); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// assignedWatch counts tasks seen ASSIGNED to a node, and is done when n
// distinct tasks have been.
type assignedWatch struct {
	w    *raftstore.Watcher
	seen map[string]bool
}

func watchAssigned(s *raftstore.Store, buffer int) *assignedWatch {
	w := s.Watch(raftstore.WatchOptions{
		Kinds:  []string{raftstore.KindTask},
		Buffer: buffer,
		Filter: func(ev raftstore.Event) bool {
			t, ok := ev.Object.(*api.Task)
			return ok && ev.Action == raftstore.ActionUpdate && t.NodeId != "" && t.GetStatus().GetState() == api.TaskState_ASSIGNED
		},
	})
	return &assignedWatch{w: w, seen: map[string]bool{}}
}

// wait returns once n distinct tasks were seen assigned, or fails the
// benchmark at ctx's deadline.
func (a *assignedWatch) wait(b *testing.B, ctx context.Context, n int) {
	for len(a.seen) < n {
		select {
		case ev, ok := <-a.w.C:
			if !ok {
				b.Fatalf("watch ended after %d of %d assignments: %v", len(a.seen), n, a.w.Err())
			}
			a.seen[ev.Object.GetId()] = true
		case <-ctx.Done():
			b.Fatalf("%d of %d tasks assigned before the deadline", len(a.seen), n)
		}
	}
}

func runCase(b *testing.B, c benchCase, snapshot bool) {
	nodes := make([]*api.Node, c.nodes)
	placed := 0
	warns := &warnCounter{}
	for range b.N {
		b.StopTimer()
		for i := range nodes {
			nodes[i] = benchNode(i)
		}
		tasks := benchTasks(c, "task-")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		store := raftstore.NewStandaloneStore(nil)
		createAll(b, ctx, store, nodes)
		// The store creates tasks only for services that exist.
		createAll(b, ctx, store, benchServices(c))
		// A real clock for events (a watch cut off for falling behind
		// restarts from a snapshot, which waits the quiet period as in
		// production); a fake one for snapshot, to skip that wait.
		var clock clockwork.Clock = clockwork.NewRealClock()
		fake := clockwork.NewFakeClock()
		if snapshot {
			clock = fake
		}
		loop := schedloop.New(store, clock, slog.New(warns))
		watch := watchAssigned(store, c.tasks+16)
		var wg sync.WaitGroup
		start := func() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// The loop's goroutines (and the store writes they make)
				// carry this label: go tool pprof -tagfocus loop=run
				// leaves out the untimed setup.
				pprof.Do(ctx, pprof.Labels("loop", "run"), func(ctx context.Context) { _ = loop.Run(ctx) })
			}()
		}
		want := len(tasks)
		if snapshot {
			createAll(b, ctx, store, tasks)
			b.StartTimer()
			start()
			// The loop arms its quiet-period timer after reading the
			// snapshot (and again after any restart): skip each wait
			// as soon as the loop waits.
			wg.Add(1)
			go func() {
				defer wg.Done()
				for fake.BlockUntilContext(ctx, 1) == nil {
					fake.Advance(time.Second)
				}
			}()
		} else {
			// One task placed from the snapshot proves the loop is past
			// reading it, so it sees the tasks below as events.
			createAll(b, ctx, store, benchTasks(benchCase{services: 1, tasks: 1}, "warm-"))
			start()
			watch.wait(b, ctx, 1)
			want++
			b.StartTimer()
			createAll(b, ctx, store, tasks)
		}
		watch.wait(b, ctx, want)
		b.StopTimer()
		placed += len(tasks)
		cancel()
		wg.Wait()
		watch.w.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "placements/s")
	// The loop warns when its watch was cut off for falling behind and it
	// re-reads the whole store: worth seeing beside the time.
	b.ReportMetric(float64(warns.n.Load())/float64(b.N), "warnings/op")
}

// warnCounter is a slog handler that counts warnings and drops every
// record.
type warnCounter struct{ n atomic.Int64 }

func (w *warnCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnCounter) Handle(context.Context, slog.Record) error {
	w.n.Add(1)
	return nil
}
func (w *warnCounter) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnCounter) WithGroup(string) slog.Handler      { return w }
