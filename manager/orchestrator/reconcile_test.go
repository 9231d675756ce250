package orchestrator

import (
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/shoal-project/shoal/proto"
)

// sim is a tiny cluster: it applies Reconcile's actions like the store, and
// moves tasks like agents would (assigned tasks start, tasks asked to stop
// stop), with a clock the test advances.
type sim struct {
	t     *testing.T
	now   time.Time
	svc   *api.Service
	tasks map[string]*api.Task
	nodes map[string]*api.Node
	seq   int
	// fail marks images whose containers exit at once.
	fail map[string]bool
}

func newSim(t *testing.T, replicas uint64) *sim {
	s := &sim{t: t, now: time.Unix(1000, 0), tasks: map[string]*api.Task{}, nodes: map[string]*api.Node{}, fail: map[string]bool{}}
	for _, id := range []string{"n1", "n2", "n3"} {
		s.nodes[id] = &api.Node{Id: id, Status: &api.NodeStatus{State: api.NodeStatus_READY}, Spec: &api.NodeSpec{}}
	}
	s.svc = &api.Service{Id: "svc", SpecVersion: 1, Meta: &api.Meta{Version: 1}, Spec: &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "img:1"}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: replicas}},
	}}
	return s
}

func (s *sim) input() Input {
	var tasks []*api.Task
	for _, t := range s.tasks {
		tasks = append(tasks, t)
	}
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].Id < tasks[j].Id })
	return Input{ServiceID: "svc", Service: s.svc, Tasks: tasks, Nodes: s.nodes, History: 5, Now: s.now}
}

// step reconciles once and applies the result.
func (s *sim) step() Actions {
	a := Reconcile(s.input())
	for _, t := range a.Update {
		s.tasks[t.Id] = t
	}
	for _, t := range a.Create {
		s.seq++
		t.Id = fmt.Sprintf("t%03d", s.seq)
		t.Meta = &api.Meta{CreatedAt: timestamppb.New(s.now), Version: uint64(s.seq)}
		s.tasks[t.Id] = t
	}
	for _, t := range a.Delete {
		delete(s.tasks, t.Id)
	}
	if a.Service != nil {
		s.svc = a.Service
	}
	return a
}

// agents moves every task one realistic step: placed tasks run (or fail),
// tasks asked to stop stop, READY tasks are prepared.
func (s *sim) agents() {
	for _, t := range s.tasks {
		st := t.GetStatus().GetState()
		set := func(state api.TaskState, err string) {
			t.Status = &api.TaskStatus{State: state, Timestamp: timestamppb.New(s.now), Err: err}
		}
		switch {
		case t.DesiredState >= api.TaskState_SHUTDOWN && !st.Terminal():
			set(api.TaskState_SHUTDOWN, "")
		case st < api.TaskState_ASSIGNED:
			t.NodeId = "n1"
			set(api.TaskState_ASSIGNED, "")
		case t.DesiredState == api.TaskState_READY && st < api.TaskState_READY:
			set(api.TaskState_READY, "")
		case t.DesiredState == api.TaskState_RUNNING && st < api.TaskState_RUNNING:
			if s.fail[t.Spec.Container.Image] {
				set(api.TaskState_FAILED, "task: non-zero exit (1)")
			} else {
				set(api.TaskState_RUNNING, "")
			}
		}
	}
}

func (s *sim) run(rounds int, tick time.Duration) {
	for i := 0; i < rounds; i++ {
		s.step()
		s.agents()
		s.now = s.now.Add(tick)
	}
}

func (s *sim) running(version uint64) int {
	n := 0
	for _, t := range s.tasks {
		if t.GetStatus().GetState() == api.TaskState_RUNNING && (version == 0 || t.SpecVersion == version) {
			n++
		}
	}
	return n
}

func (s *sim) update(image string, cfg *api.UpdateConfig) {
	prev := proto.Clone(s.svc.Spec).(*api.ServiceSpec)
	s.svc = proto.Clone(s.svc).(*api.Service)
	s.svc.PreviousSpec = prev
	s.svc.Spec.Task.Container.Image = image
	s.svc.Spec.Update = cfg
	s.svc.SpecVersion++
	s.svc.UpdateStatus = nil
}

func TestReplicasAreCreatedAndScaledDown(t *testing.T) {
	s := newSim(t, 3)
	s.run(3, time.Second)
	if s.running(0) != 3 {
		t.Fatalf("%d running, want 3", s.running(0))
	}
	s.svc.Spec.GetReplicated().Replicas = 1
	s.run(3, time.Second)
	if s.running(0) != 1 || len(s.tasks) != 1 {
		t.Fatalf("after scale down: %d running, %d tasks", s.running(0), len(s.tasks))
	}
}

func TestRestartAfterDelayAndMaxAttempts(t *testing.T) {
	s := newSim(t, 1)
	s.svc.Spec.Task.Restart = &api.RestartPolicy{Condition: api.RestartPolicy_ANY, Delay: durationpb.New(5 * time.Second), MaxAttempts: 2}
	s.fail["img:1"] = true
	s.run(3, 100*time.Millisecond) // create, assign, fail
	a := s.step()
	if len(a.Create) != 0 || a.WakeAt.IsZero() {
		t.Fatalf("restart before the delay: %+v", a)
	}
	s.now = a.WakeAt
	s.run(20, 6*time.Second)
	var attempts int
	for range s.tasks {
		attempts++
	}
	if attempts != 3 { // the first run and 2 restarts
		t.Fatalf("%d tasks, want 3 (max attempts 2)", attempts)
	}
}

func TestTasksMoveOffADownNodeAtOnce(t *testing.T) {
	s := newSim(t, 2)
	s.run(3, time.Second)
	s.nodes["n1"].Status.State = api.NodeStatus_DOWN
	a := s.step()
	if len(a.Create) != 2 {
		t.Fatalf("%d replacements, want 2 without delay", len(a.Create))
	}
}

func TestRollingUpdateStopFirstKeepsFloor(t *testing.T) {
	s := newSim(t, 6)
	s.run(3, time.Second)
	s.update("img:2", &api.UpdateConfig{Parallelism: 2, Delay: durationpb.New(time.Second), Monitor: durationpb.New(time.Second)})
	minRunning := 6
	for i := 0; i < 60 && s.svc.GetUpdateStatus().GetState() != api.UpdateStatus_COMPLETED; i++ {
		s.step()
		if n := s.running(0); n < minRunning {
			minRunning = n
		}
		s.agents()
		if n := s.running(0); n < minRunning {
			minRunning = n
		}
		s.now = s.now.Add(500 * time.Millisecond)
	}
	if s.svc.GetUpdateStatus().GetState() != api.UpdateStatus_COMPLETED {
		t.Fatalf("update did not complete: %v", s.svc.GetUpdateStatus())
	}
	if s.running(2) != 6 {
		t.Fatalf("%d running the new spec, want 6", s.running(2))
	}
	if minRunning < 4 {
		t.Fatalf("running dropped to %d during a stop-first update of parallelism 2", minRunning)
	}
}

func TestRollingUpdateStartFirstKeepsCeiling(t *testing.T) {
	s := newSim(t, 6)
	s.run(3, time.Second)
	s.update("img:2", &api.UpdateConfig{Parallelism: 2, Order: api.UpdateConfig_START_FIRST, Monitor: durationpb.New(time.Second)})
	maxRunning := 0
	for i := 0; i < 60 && s.svc.GetUpdateStatus().GetState() != api.UpdateStatus_COMPLETED; i++ {
		s.step()
		s.agents()
		if n := s.running(0); n > maxRunning {
			maxRunning = n
		}
		s.now = s.now.Add(500 * time.Millisecond)
	}
	if s.svc.GetUpdateStatus().GetState() != api.UpdateStatus_COMPLETED || s.running(2) != 6 {
		t.Fatalf("update did not complete: %v, %d new running", s.svc.GetUpdateStatus(), s.running(2))
	}
	if maxRunning > 8 {
		t.Fatalf("%d running during a start-first update of parallelism 2", maxRunning)
	}
}

func TestFailedUpdatePausesWithTheReason(t *testing.T) {
	s := newSim(t, 4)
	s.run(3, time.Second)
	s.fail["img:bad"] = true
	s.update("img:bad", &api.UpdateConfig{Parallelism: 1, FailureAction: api.UpdateConfig_PAUSE})
	s.run(10, time.Second)
	st := s.svc.GetUpdateStatus()
	if st.GetState() != api.UpdateStatus_PAUSED || !strings.Contains(st.GetMessage(), "non-zero exit (1)") {
		t.Fatalf("status %v", st)
	}
	if s.running(1) < 3 {
		t.Fatalf("a paused update went on replacing tasks: %d old running", s.running(1))
	}
}

func TestFailedUpdateRollsBack(t *testing.T) {
	s := newSim(t, 4)
	s.run(3, time.Second)
	s.fail["img:bad"] = true
	s.update("img:bad", &api.UpdateConfig{Parallelism: 2, FailureAction: api.UpdateConfig_ROLLBACK})
	s.run(40, time.Second)
	st := s.svc.GetUpdateStatus()
	if st.GetState() != api.UpdateStatus_ROLLBACK_COMPLETED {
		t.Fatalf("status %v", st)
	}
	onOld := 0
	for _, tk := range s.tasks {
		if tk.GetStatus().GetState() == api.TaskState_RUNNING && tk.Spec.Container.Image == "img:1" {
			onOld++
		}
	}
	if s.svc.Spec.Task.Container.Image != "img:1" || onOld != 4 {
		t.Fatalf("not rolled back: image %s, %d running the previous spec", s.svc.Spec.Task.Container.Image, onOld)
	}
}

func TestStuckUpdateTaskCountsAsFailure(t *testing.T) {
	s := newSim(t, 2)
	s.run(3, time.Second)
	s.update("img:2", &api.UpdateConfig{Parallelism: 1})
	s.step() // creates the first new task; nothing ever places it
	s.now = s.now.Add(UpdateTaskTimeout + time.Second)
	s.step()
	st := s.svc.GetUpdateStatus()
	if st.GetState() != api.UpdateStatus_PAUSED || !strings.Contains(st.GetMessage(), "did not reach RUNNING") {
		t.Fatalf("a stuck task did not pause the update: %v", st)
	}
}

func TestHistoryIsTrimmed(t *testing.T) {
	s := newSim(t, 1)
	s.svc.Spec.Task.Restart = &api.RestartPolicy{Condition: api.RestartPolicy_ANY, Delay: durationpb.New(time.Second)}
	s.fail["img:1"] = true
	s.run(60, 2*time.Second)
	if len(s.tasks) > 5 {
		t.Fatalf("%d tasks kept for one slot, want at most 5", len(s.tasks))
	}
}

// TestRemovedServiceMarksItsTasks: the tasks of a removed service, also
// one a scale-down was already removing, get service_removed (the node
// then caps their stop grace period); a scale-down alone does not set it.
func TestRemovedServiceMarksItsTasks(t *testing.T) {
	s := newSim(t, 3)
	s.run(3, time.Second)
	s.svc.Spec.GetReplicated().Replicas = 2
	a := s.step() // the scale-down: one task desired REMOVE, still running
	var scaledDown string
	for _, u := range a.Update {
		if u.DesiredState == api.TaskState_REMOVE {
			scaledDown = u.Id
			if u.ServiceRemoved {
				t.Errorf("scale-down marked task %s service_removed", u.Id)
			}
		}
	}
	if scaledDown == "" {
		t.Fatal("the scale-down removed no task")
	}
	s.svc = nil
	a = s.step()
	marked := map[string]bool{}
	for _, u := range a.Update {
		if u.DesiredState != api.TaskState_REMOVE || !u.ServiceRemoved {
			t.Errorf("task %s after service removal: desired %v, service_removed %v", u.Id, u.DesiredState, u.ServiceRemoved)
		}
		marked[u.Id] = true
	}
	if len(marked) != 3 || !marked[scaledDown] {
		t.Errorf("marked %v, want all 3 tasks including %s", marked, scaledDown)
	}
	if a = s.step(); len(a.Update) != 0 {
		t.Errorf("a second pass rewrote %d tasks", len(a.Update))
	}
}

// Published ports added to a service (`service update --publish-add`)
// change no task spec: the tasks keep running, become current and carry the
// service's new endpoint, which the node's routing mesh serves.
func TestEndpointOnlyChangeKeepsTasksWithTheNewEndpoint(t *testing.T) {
	s := newSim(t, 3)
	s.svc.Endpoint = &api.Endpoint{Ports: []*api.PortConfig{{TargetPort: 80, PublishedPort: 8080}}}
	s.run(3, time.Second)
	for _, tk := range s.tasks { // the allocator's copy at allocation
		tk.Endpoint = proto.Clone(s.svc.Endpoint).(*api.Endpoint)
	}
	before := map[string]bool{}
	for id := range s.tasks {
		before[id] = true
	}
	s.svc = proto.Clone(s.svc).(*api.Service)
	s.svc.SpecVersion++
	s.svc.Endpoint.Ports = append(s.svc.Endpoint.Ports, &api.PortConfig{TargetPort: 80, PublishedPort: 8082})
	s.run(3, time.Second)
	if len(s.tasks) != 3 {
		t.Fatalf("%d tasks after a ports-only change, want the same 3", len(s.tasks))
	}
	for id, tk := range s.tasks {
		if !before[id] || tk.SpecVersion != s.svc.SpecVersion || len(tk.GetEndpoint().GetPorts()) != 2 {
			t.Fatalf("task %s: new %v, spec version %d (service %d), endpoint %v", id, !before[id], tk.SpecVersion, s.svc.SpecVersion, tk.GetEndpoint())
		}
	}
}

// sortNewestFirst orders a slot's tasks exactly as ordering them by their
// creation times as instants (AsTime), newest first, then by version,
// stably: also for a task without meta or creation time, for timestamps
// that share their instant but not their fields, and out of
// timestamppb's range.
func TestSortNewestFirstIsTimeOrder(t *testing.T) {
	created := []*timestamppb.Timestamp{
		nil, {}, {Seconds: 1000}, {Seconds: 1000, Nanos: 1}, {Seconds: 999, Nanos: 1e9}, {Seconds: 1001, Nanos: -1e9 + 1},
		{Seconds: 1000, Nanos: 999_999_999}, {Seconds: -5, Nanos: 3}, {Seconds: 253402300799, Nanos: 5},
		{Seconds: 253402300800}, {Seconds: -62135596801}, {Seconds: 1 << 62}, {Seconds: -1 << 62}, {Seconds: 0, Nanos: -1},
	}
	ref := func(ts []*api.Task) {
		sort.SliceStable(ts, func(i, j int) bool {
			a, b := ts[i].GetMeta().GetCreatedAt().AsTime(), ts[j].GetMeta().GetCreatedAt().AsTime()
			if !a.Equal(b) {
				return a.After(b)
			}
			return ts[i].GetMeta().GetVersion() > ts[j].GetMeta().GetVersion()
		})
	}
	r := rand.New(rand.NewSource(1))
	for round := 0; round < 20000; round++ {
		var ts []*api.Task
		for i, n := 0, 1+r.Intn(7); i < n; i++ {
			tk := &api.Task{Id: fmt.Sprint(i)}
			if r.Intn(8) > 0 {
				tk.Meta = &api.Meta{Version: uint64(r.Intn(3)), CreatedAt: created[r.Intn(len(created))]}
			}
			ts = append(ts, tk)
		}
		want := slices.Clone(ts)
		ref(want)
		sortNewestFirst(ts)
		for i := range ts {
			if ts[i] != want[i] {
				t.Fatalf("round %d: position %d holds task %s, want %s", round, i, ts[i].Id, want[i].Id)
			}
		}
	}
}
