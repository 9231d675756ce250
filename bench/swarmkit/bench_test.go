package swarmkit

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-events"
	"github.com/moby/swarmkit/v2/api"
	"github.com/moby/swarmkit/v2/manager/scheduler"
	"github.com/moby/swarmkit/v2/manager/state"
	"github.com/moby/swarmkit/v2/manager/state/store"
	"github.com/sirupsen/logrus"
)

// BenchmarkSwarmKitScheduler drives SwarmKit's scheduler through its public
// API (store.NewMemoryStore, scheduler.New, Run, Stop) on the cases of
// shoal's BenchmarkSchedLoop (manager/schedloop/bench_test.go), same names,
// nodes, services, tasks, reservations and constraints:
//
//	cd bench/swarmkit && go test -run '^$' -bench SwarmKitScheduler -benchtime 1x -count 3 .
//
// The store has a proposer that encodes every transaction as SwarmKit's raft
// leader does (an InternalRaftRequest, marshalled) and then commits it: the
// write path of a one-manager cluster without the log's fsync, as shoal's
// standalone store is. One op is one whole case; placements/s is tasks over
// the op's time.
//
//   - events/…: the scheduler runs on a store that holds the nodes and has
//     placed one warm-up task. The timer starts, the benchmark creates the
//     tasks in transactions of 1,000 (shoal's raftstore.BatchItems), and the
//     timer stops when a watch of the store has seen every task ASSIGNED to a
//     node. It includes the creating commits, the event stream into the
//     scheduler, its commit debounce (a fixed 50 ms after the last commit,
//     at most 1 s: a constant in Scheduler.Run that the API cannot change),
//     planning, the placement commits (store.Batch: one update per task,
//     committed 200 at a time) and their events to the benchmark's watch.
//   - snapshot/…: the store holds nodes and pending tasks before Run starts.
//     The timer covers Run reading the snapshot, its first tick (planning)
//     and the placement commits, until the watch has seen every task
//     ASSIGNED. This path has no debounce.
func BenchmarkSwarmKitScheduler(b *testing.B) {
	logrus.SetLevel(logrus.ErrorLevel)
	for _, c := range benchCases() {
		b.Run("events/"+c.name, func(b *testing.B) { runCase(b, c, false) })
		b.Run("snapshot/"+c.name, func(b *testing.B) { runCase(b, c, true) })
	}
}

// benchCase is one shape; manager/schedloop/bench_test.go has the same
// list.
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

// createBatch is how many objects the benchmark creates per transaction.
const createBatch = 1000

func benchNode(i int) *api.Node {
	id := fmt.Sprintf("node-%05d", i)
	return &api.Node{
		ID: id,
		Spec: api.NodeSpec{
			Annotations: api.Annotations{Name: id, Labels: map[string]string{
				"zone": fmt.Sprintf("zone-%d", i%3), "rack": fmt.Sprintf("rack-%d", i%7),
			}},
			Availability: api.NodeAvailabilityActive,
		},
		Description: &api.NodeDescription{
			Hostname:  id,
			Platform:  &api.Platform{OS: "linux", Architecture: "amd64"},
			Resources: &api.Resources{NanoCPUs: 16e9, MemoryBytes: 64 << 30},
			Engine:    &api.EngineDescription{},
		},
		Status: api.NodeStatus{State: api.NodeStatus_READY},
	}
}

// benchTasks makes the case's pending tasks; task i belongs to service
// i % services. Tasks of a service share a spec version, so SwarmKit
// schedules them as one group, as shoal does.
func benchTasks(c benchCase, prefix string) []*api.Task {
	out := make([]*api.Task, c.tasks)
	for i := range out {
		placement := &api.Placement{}
		if c.constraint != "" {
			placement.Constraints = []string{c.constraint}
		}
		svc := fmt.Sprintf("svc-%05d", i%c.services)
		out[i] = &api.Task{
			ID: fmt.Sprintf("%s%06d", prefix, i), ServiceID: svc,
			SpecVersion: &api.Version{Index: 1}, Slot: uint64(i/c.services + 1),
			ServiceAnnotations: api.Annotations{Name: svc},
			Spec: api.TaskSpec{
				Runtime:   &api.TaskSpec_Container{Container: &api.ContainerSpec{Image: "busybox"}},
				Resources: &api.ResourceRequirements{Reservations: &api.Resources{NanoCPUs: 1e7, MemoryBytes: 16 << 20}},
				Placement: placement,
			},
			Status:       api.TaskStatus{State: api.TaskStatePending},
			DesiredState: api.TaskStateRunning,
		}
	}
	return out
}

// encodingProposer stands in for SwarmKit's raft on the leader: it encodes
// each transaction as the leader does before proposing it, then commits it.
type encodingProposer struct {
	mu    sync.Mutex
	index uint64
}

func (p *encodingProposer) ProposeValue(_ context.Context, actions []api.StoreAction, cb func()) error {
	p.mu.Lock()
	p.index++
	r := &api.InternalRaftRequest{ID: p.index, Action: actions}
	p.mu.Unlock()
	if _, err := r.Marshal(); err != nil {
		return err
	}
	cb()
	return nil
}

func (p *encodingProposer) GetVersion() *api.Version {
	p.mu.Lock()
	defer p.mu.Unlock()
	return &api.Version{Index: p.index}
}

func (p *encodingProposer) ChangesBetween(api.Version, api.Version) ([]state.Change, error) {
	return nil, fmt.Errorf("not kept")
}

func createTasks(b *testing.B, s *store.MemoryStore, tasks []*api.Task) {
	for start := 0; start < len(tasks); start += createBatch {
		batch := tasks[start:min(start+createBatch, len(tasks))]
		if err := s.Update(func(tx store.Tx) error {
			for _, t := range batch {
				if err := store.CreateTask(tx, t); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// waitAssigned returns once want distinct tasks were seen ASSIGNED to a
// node, or fails the benchmark at ctx's deadline.
func waitAssigned(b *testing.B, ctx context.Context, watch chan events.Event, seen map[string]bool, want int) {
	for len(seen) < want {
		select {
		case ev := <-watch:
			if e, ok := ev.(api.EventUpdateTask); ok && e.Task.NodeID != "" && e.Task.Status.State == api.TaskStateAssigned {
				seen[e.Task.ID] = true
			}
		case <-ctx.Done():
			b.Fatalf("%d of %d tasks assigned before the deadline", len(seen), want)
		}
	}
}

func runCase(b *testing.B, c benchCase, snapshot bool) {
	placed := 0
	for range b.N {
		b.StopTimer()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		s := store.NewMemoryStore(&encodingProposer{})
		if err := s.Update(func(tx store.Tx) error {
			for i := range c.nodes {
				if err := store.CreateNode(tx, benchNode(i)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		tasks := benchTasks(c, "task-")
		sched := scheduler.New(s)
		watch, cancelWatch := state.Watch(s.WatchQueue(), api.EventUpdateTask{})
		seen := map[string]bool{}
		var wg sync.WaitGroup
		start := func() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = sched.Run(ctx)
			}()
		}
		want := len(tasks)
		if snapshot {
			createTasks(b, s, tasks)
			b.StartTimer()
			start()
		} else {
			// One task placed from the snapshot proves the scheduler is
			// past reading it, so it sees the tasks below as events.
			createTasks(b, s, benchTasks(benchCase{services: 1, tasks: 1}, "warm-"))
			start()
			waitAssigned(b, ctx, watch, seen, 1)
			want++
			b.StartTimer()
			createTasks(b, s, tasks)
		}
		waitAssigned(b, ctx, watch, seen, want)
		b.StopTimer()
		placed += len(tasks)
		sched.Stop()
		wg.Wait()
		cancelWatch()
		cancel()
		_ = s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "placements/s")
}
