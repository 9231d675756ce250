package orchestrator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// BenchmarkCreateService creates one service of N replicas on a standalone
// store and runs the orchestrator against a scheduler-like writer (assigns
// new tasks to nodes, round robin, in transactions of up to batch tasks) and
// an agent-like writer (reports assigned tasks RUNNING the same way), until
// every task runs and the orchestrator is idle. It reports the orchestrator's
// passes that read the service's tasks, the tasks they read, the passes
// skipped by the quiet filter, the full snapshots (a cut-off watch), and
// the process's CPU per task: before (the filter off and the old watch
// buffer), with the larger buffer alone, and after (both).
//
//	go test -run XXX -bench CreateService -benchtime 1x ./manager/orchestrator/
//
// SHOAL_BENCH_1M=1 adds a service of 1,000,000 replicas (about 6 GB).
func BenchmarkCreateService(b *testing.B) {
	variants := []struct {
		name    string
		noQuiet bool
		buffer  int
	}{
		{"before", true, raftstore.DefaultWatchBuffer}, // main's orchestrator
		{"buffer", true, 0},                            // the larger watch buffer alone
		{"after", false, 0},                            // and the quiet filter
	}
	sizes := []int{10_000, 100_000}
	if os.Getenv("SHOAL_BENCH_1M") != "" {
		sizes = append(sizes, 1_000_000)
	}
	for _, n := range sizes {
		for _, v := range variants {
			b.Run(fmt.Sprintf("tasks=%d/%s", n, v.name), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					r := runCreate(b, n, 1000, 200, func(o *Orchestrator) { o.noQuiet, o.watchBuffer = v.noQuiet, v.buffer }, false)
					b.ReportMetric(float64(r.passes), "passes")
					b.ReportMetric(float64(r.tasksRead), "tasks-read")
					b.ReportMetric(float64(r.skipped), "skipped")
					b.ReportMetric(float64(r.snapshots), "snapshots")
					b.ReportMetric(float64(r.cpu.Microseconds())/float64(n), "cpu-us/task")
					b.ReportMetric(r.wall.Seconds(), "wall-s")
				}
			})
		}
	}
}

// BenchmarkRollingUpdate creates one service of N replicas as
// BenchmarkCreateService does, then, once every task runs and the
// orchestrator is idle, updates its image with parallelism N/10, stop-first
// and no monitor (as the scale harness does), until the update has
// COMPLETED. An agent-like writer also reports SHUTDOWN for tasks told to
// stop. It reports the update's passes, tasks read, passes skipped, full
// snapshots, the process's CPU per task and the wall time.
//
//	go test -run XXX -bench RollingUpdate -benchtime 1x ./manager/orchestrator/
func BenchmarkRollingUpdate(b *testing.B) {
	sizes := []int{10_000, 100_000}
	if os.Getenv("SHOAL_BENCH_1M") != "" {
		sizes = append(sizes, 1_000_000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				r := runCreate(b, n, 1000, 200, func(*Orchestrator) {}, true)
				b.ReportMetric(float64(r.passes), "passes")
				b.ReportMetric(float64(r.idle), "idle-passes")
				b.ReportMetric(float64(r.tasksRead), "tasks-read")
				b.ReportMetric(float64(r.skipped), "skipped")
				b.ReportMetric(float64(r.snapshots), "snapshots")
				b.ReportMetric(float64(r.cpu.Microseconds())/float64(n), "cpu-us/task")
				b.ReportMetric(r.wall.Seconds(), "wall-s")
			}
		})
	}
}

type createRun struct {
	passes, tasksRead, skipped, snapshots, idle uint64
	cpu, wall                                   time.Duration
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runCreate is one create of a service of n replicas on nodes nodes, the
// writers committing up to batch tasks per transaction; with update, the
// create is not measured but a rolling update of the created service is.
func runCreate(tb testing.TB, n, nodes, batch int, configure func(*Orchestrator), update bool) createRun {
	store := raftstore.NewStandaloneStore(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nodeIDs := make([]string, nodes)
	if err := store.Update(ctx, func(tx *raftstore.Tx) error {
		for i := range nodeIDs {
			nodeIDs[i] = fmt.Sprintf("node%05d", i)
			if err := tx.Create(&api.Node{Id: nodeIDs[i], Spec: &api.NodeSpec{},
				Status: &api.NodeStatus{State: api.NodeStatus_READY}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	o := New(store, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	configure(o)

	// The writers watch with room for every task's events.
	created := store.Watch(raftstore.WatchOptions{Kinds: []string{raftstore.KindTask}, Buffer: 2*n + 1000,
		Filter: func(ev raftstore.Event) bool { return ev.Action == raftstore.ActionCreate }})
	assigned := store.Watch(raftstore.WatchOptions{Kinds: []string{raftstore.KindTask}, Buffer: 2*n + 1000,
		Filter: func(ev raftstore.Event) bool {
			// Assigned and meant to run: a stop-first replacement
			// (desired READY) starts once it is told to run.
			t := ev.Object.(*api.Task)
			return ev.Action == raftstore.ActionUpdate && t.GetStatus().GetState() == api.TaskState_ASSIGNED && t.DesiredState == api.TaskState_RUNNING
		}})
	stopped := store.Watch(raftstore.WatchOptions{Kinds: []string{raftstore.KindTask}, Buffer: 2*n + 1000,
		Filter: func(ev raftstore.Event) bool {
			if ev.Action != raftstore.ActionUpdate {
				return false
			}
			t, old := ev.Object.(*api.Task), ev.Old.(*api.Task)
			return t.DesiredState > api.TaskState_RUNNING && old.DesiredState <= api.TaskState_RUNNING &&
				!t.GetStatus().GetState().Terminal()
		}})
	defer created.Close()
	defer assigned.Close()
	defer stopped.Close()
	running := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); _ = o.Run(ctx) }()
	next := 0
	go func() {
		defer wg.Done()
		writeInBatches(ctx, tb, store, created, batch, func(t *api.Task) {
			t.NodeId = nodeIDs[next%len(nodeIDs)]
			next++
			t.Status = &api.TaskStatus{State: api.TaskState_ASSIGNED, Timestamp: t.Status.GetTimestamp()}
		}, nil)
	}()
	done := 0
	go func() {
		defer wg.Done()
		writeInBatches(ctx, tb, store, assigned, batch, func(t *api.Task) {
			t.Status = &api.TaskStatus{State: api.TaskState_RUNNING, Timestamp: t.Status.GetTimestamp()}
		}, func(k int) {
			if done += k; done == n {
				close(running)
			}
		})
	}()
	go func() {
		defer wg.Done()
		writeInBatches(ctx, tb, store, stopped, batch, func(t *api.Task) {
			t.Status = &api.TaskStatus{State: api.TaskState_SHUTDOWN, Timestamp: t.Status.GetTimestamp()}
		}, nil)
	}()

	cpu0, t0 := cpuTime(), time.Now()
	svc := &api.Service{Id: "svc1", SpecVersion: 1, Spec: &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "busybox"}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: uint64(n)}},
	}}
	if err := store.Update(ctx, func(tx *raftstore.Tx) error { return tx.Create(svc) }); err != nil {
		tb.Fatal(err)
	}
	select {
	case <-running:
	case <-time.After(10 * time.Minute):
		tb.Fatal("tasks not running after 10 minutes")
	}
	idle := func() { waitIdle(o) }
	idle()
	var base createRun
	if update {
		base = createRun{passes: o.stats.passes.Load(), tasksRead: o.stats.tasksRead.Load(), skipped: o.stats.skipped.Load(),
			snapshots: o.stats.snapshots.Load(), idle: o.stats.idle.Load()}
		cpu0, t0 = cpuTime(), time.Now()
		if err := store.Update(ctx, func(tx *raftstore.Tx) error {
			c := proto.Clone(tx.Service(svc.Id)).(*api.Service)
			c.PreviousSpec, c.PreviousSpecVersion = proto.Clone(c.Spec).(*api.ServiceSpec), c.SpecVersion
			c.SpecVersion++
			c.Spec.Task.Container.Image = "busybox:2"
			c.Spec.Update = &api.UpdateConfig{Parallelism: uint64(max(n/10, 1)), Monitor: durationpb.New(0)}
			return tx.Update(c)
		}); err != nil {
			tb.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Minute); ; {
			var st *api.UpdateStatus
			store.View(func(tx raftstore.ReadTx) { st = tx.Service(svc.Id).GetUpdateStatus() })
			if st.GetState() == api.UpdateStatus_COMPLETED {
				break
			}
			if st.GetState() == api.UpdateStatus_PAUSED || time.Now().After(deadline) {
				tb.Fatalf("update not completed: %v", st)
			}
			time.Sleep(20 * time.Millisecond)
		}
		idle()
	}
	r := createRun{passes: o.stats.passes.Load() - base.passes, tasksRead: o.stats.tasksRead.Load() - base.tasksRead,
		skipped: o.stats.skipped.Load() - base.skipped, snapshots: o.stats.snapshots.Load() - base.snapshots,
		idle: o.stats.idle.Load() - base.idle,
		cpu:  cpuTime() - cpu0, wall: time.Since(t0)}
	cancel()
	wg.Wait()
	return r
}

// waitIdle returns once the orchestrator has run no pass for 200 ms.
func waitIdle(o *Orchestrator) {
	for last := uint64(0); ; {
		time.Sleep(200 * time.Millisecond)
		cur := o.stats.passes.Load() + o.stats.skipped.Load()
		if cur == last {
			return
		}
		last = cur
	}
}

// writeInBatches takes tasks from w and writes change(copy) for up to batch
// of them per transaction, as soon as no further event waits.
func writeInBatches(ctx context.Context, tb testing.TB, store *raftstore.Store, w *raftstore.Watcher, batch int,
	change func(*api.Task), wrote func(int)) {
	var ids []string
	flush := func() {
		err := store.Update(ctx, func(tx *raftstore.Tx) error {
			for _, id := range ids {
				t := tx.Task(id)
				if t == nil {
					continue
				}
				c := raftstore.CloneTask(t)
				change(c)
				if err := tx.Update(c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && ctx.Err() == nil {
			tb.Error(err)
		}
		if wrote != nil && err == nil {
			wrote(len(ids))
		}
		ids = ids[:0]
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.C:
			if !ok {
				return
			}
			ids = append(ids, ev.Object.GetId())
			if len(ids) >= batch || len(w.C) == 0 {
				flush()
			}
		}
	}
}

// BenchmarkReconcileUpdating is one pass of Reconcile over a service of N
// replicas in the middle of a rolling update: a third of its slots updated
// (an old task shut down and a new one running), a tenth on their way (the
// old task shut down, the new one assigned), the rest running the old spec,
// each slot with two older tasks of history. It reports the CPU of one pass
// per task read.
//
//	go test -run XXX -bench ReconcileUpdating ./manager/orchestrator/
func BenchmarkReconcileUpdating(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
			in := updatingInput(n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a := Reconcile(in)
				if len(a.Create) != 0 || len(a.Update) != 0 || len(a.Delete) != 0 {
					b.Fatalf("a pass writes: create %d update %d delete %d", len(a.Create), len(a.Update), len(a.Delete))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(in.Tasks)), "ns/task-read")
		})
	}
}

func updatingInput(n int) Input {
	now := time.Unix(1_000_000, 0)
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(d)) }
	oldSpec := &api.TaskSpec{Container: &api.ContainerSpec{Image: "busybox"}}
	spec := &api.ServiceSpec{Annotations: &api.Annotations{Name: "web"},
		Task:   &api.TaskSpec{Container: &api.ContainerSpec{Image: "busybox:2"}},
		Mode:   &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: uint64(n)}},
		Update: &api.UpdateConfig{Parallelism: uint64(n / 10), Monitor: durationpb.New(0)}}
	svc := &api.Service{Id: "svc1", SpecVersion: 2, Spec: spec, Meta: &api.Meta{Version: 10},
		UpdateStatus: &api.UpdateStatus{State: api.UpdateStatus_UPDATING, StartedAt: ts(-time.Minute)}}
	nodes := map[string]*api.Node{}
	for i := 0; i < 1000; i++ {
		id := fmt.Sprintf("node%05d", i)
		nodes[id] = &api.Node{Id: id, Spec: &api.NodeSpec{}, Status: &api.NodeStatus{State: api.NodeStatus_READY}}
	}
	var tasks []*api.Task
	version := uint64(100)
	task := func(slot int, sv uint64, sp *api.TaskSpec, created time.Duration, desired, state api.TaskState) {
		version++
		tasks = append(tasks, &api.Task{Id: fmt.Sprintf("t%d", version), ServiceId: svc.Id, Slot: uint64(slot),
			NodeId: fmt.Sprintf("node%05d", slot%1000), Spec: sp, SpecVersion: sv, DesiredState: desired,
			Meta:   &api.Meta{Version: version, CreatedAt: ts(created)},
			Status: &api.TaskStatus{State: state, Timestamp: ts(created)}})
	}
	for slot := 1; slot <= n; slot++ {
		task(slot, 1, oldSpec, -time.Hour-2*time.Second, api.TaskState_SHUTDOWN, api.TaskState_FAILED)
		task(slot, 1, oldSpec, -time.Hour-time.Second, api.TaskState_SHUTDOWN, api.TaskState_FAILED)
		switch {
		case slot <= n/3:
			task(slot, 1, oldSpec, -time.Hour, api.TaskState_SHUTDOWN, api.TaskState_SHUTDOWN)
			task(slot, 2, spec.Task, -30*time.Second, api.TaskState_RUNNING, api.TaskState_RUNNING)
		case slot <= n/3+n/10:
			task(slot, 1, oldSpec, -time.Hour, api.TaskState_SHUTDOWN, api.TaskState_SHUTDOWN)
			task(slot, 2, spec.Task, -time.Second, api.TaskState_RUNNING, api.TaskState_ASSIGNED)
		default:
			task(slot, 1, oldSpec, -time.Hour, api.TaskState_RUNNING, api.TaskState_RUNNING)
		}
	}
	return Input{ServiceID: svc.Id, Service: svc, Tasks: tasks, Nodes: nodes, History: 5, Now: now}
}

// BenchmarkSteadyPass is one pass over a service of N replicas whose tasks
// all run, one per slot, on 10,000 nodes: what the leader pays for the
// service after a failover, a cut-off watch or a failed write (Reconcile,
// then the quiet state the pass leaves). It reports the time and the
// allocation of one pass per task read.
//
//	go test -run XXX -bench SteadyPass -benchmem ./manager/orchestrator/
//
// SHOAL_BENCH_1M=1 adds a service of 1,000,000 replicas.
func BenchmarkSteadyPass(b *testing.B) {
	sizes := []int{100_000}
	if os.Getenv("SHOAL_BENCH_1M") != "" {
		sizes = append(sizes, 1_000_000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
			in := steadyInput(n, 10_000)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a := Reconcile(in)
				if !a.Empty() {
					b.Fatalf("a pass writes: create %d update %d delete %d", len(a.Create), len(a.Update), len(a.Delete))
				}
				if q := newQuietState(in, nil, a.WakeAt); q == nil || q.count != n {
					b.Fatal("the steady service has no quiet state")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/task-read")
		})
	}
}

func steadyInput(n, nodeCount int) Input {
	now := time.Unix(1_000_000, 0)
	spec := &api.ServiceSpec{Annotations: &api.Annotations{Name: "web"},
		Task: &api.TaskSpec{Container: &api.ContainerSpec{Image: "busybox"}},
		Mode: &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: uint64(n)}}}
	svc := &api.Service{Id: "svc1", SpecVersion: 1, Spec: spec, Meta: &api.Meta{Version: 10}}
	nodes := map[string]*api.Node{}
	ids := make([]string, nodeCount)
	for i := range ids {
		ids[i] = fmt.Sprintf("node%05d", i)
		nodes[ids[i]] = &api.Node{Id: ids[i], Spec: &api.NodeSpec{}, Status: &api.NodeStatus{State: api.NodeStatus_READY}}
	}
	tasks := make([]*api.Task, n)
	for i := range tasks {
		at := timestamppb.New(now.Add(-time.Hour + time.Duration(i)*time.Microsecond))
		tasks[i] = &api.Task{Id: fmt.Sprintf("t%09d", i), ServiceId: svc.Id, Slot: uint64(i + 1), NodeId: ids[i%nodeCount],
			Spec: spec.Task, SpecVersion: 1, DesiredState: api.TaskState_RUNNING,
			Meta:   &api.Meta{Version: uint64(100 + i), CreatedAt: at},
			Status: &api.TaskStatus{State: api.TaskState_RUNNING, Timestamp: at}}
	}
	return Input{ServiceID: svc.Id, Service: svc, Tasks: tasks, Nodes: nodes, History: 5, Now: now}
}
