package schedloop

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/manager/internal/storetest"
	"github.com/shoal-project/shoal/manager/reconcile"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
	"github.com/shoal-project/shoal/scheduler"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func node(id string, cpus int64) *api.Node {
	return &api.Node{
		Id:   id,
		Spec: &api.NodeSpec{Annotations: &api.Annotations{Name: id}, Availability: api.Availability_ACTIVE},
		Description: &api.NodeDescription{
			Hostname:  id,
			Platform:  &api.Platform{Os: "linux", Architecture: "amd64"},
			Resources: &api.Resources{NanoCpus: cpus * 1e9, MemoryBytes: 8 << 30},
			Engine:    &api.EngineDescription{},
		},
		Status: &api.NodeStatus{State: api.NodeStatus_READY},
	}
}

// pending is a PENDING task of service reserving cpus.
func pending(id, service string, cpus int64, constraints ...string) *api.Task {
	return &api.Task{
		Id: id, ServiceId: service, SpecVersion: 1,
		Spec: &api.TaskSpec{
			Resources: &api.ResourceRequirements{Reservations: &api.Resources{NanoCpus: cpus * 1e9}},
			Placement: &api.Placement{Constraints: constraints},
		},
		Status:       &api.TaskStatus{State: api.TaskState_PENDING},
		DesiredState: api.TaskState_RUNNING,
	}
}

func running(id, service, nodeID string, cpus int64) *api.Task {
	t := pending(id, service, cpus)
	t.NodeId, t.Status.State = nodeID, api.TaskState_RUNNING
	return t
}

func get(s *raftstore.Store, id string) *api.Task { return storetest.Task(s, id) }

func assigned(s *raftstore.Store, id string) bool {
	return get(s, id).GetStatus().GetState() == api.TaskState_ASSIGNED
}

// update writes o over the stored object of its ID, whatever its version.
func update(t *testing.T, s *raftstore.Store, o raftstore.Object) {
	t.Helper()
	err := s.Update(context.Background(), func(tx *raftstore.Tx) error {
		if n, ok := o.(*api.Node); ok {
			n.Meta = tx.Node(n.Id).GetMeta()
		}
		return tx.Update(o)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Pending tasks found at start are assigned to ready nodes, spread over
// them, in one transaction, with the scheduler's message; a task meant to
// stop is not placed.
func TestPendingTasksAreAssigned(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, prop := storetest.New(clock)
	stopping := pending("s1", "svc", 0)
	stopping.DesiredState = api.TaskState_SHUTDOWN
	storetest.Seed(t, store, node("n1", 4), node("n2", 4),
		pending("a1", "svc", 1), pending("a2", "svc", 1), pending("a3", "svc", 1), pending("a4", "svc", 1), stopping)
	storetest.Start(t, New(store, clock, quiet()).Run)
	ids := []string{"a1", "a2", "a3", "a4"}
	storetest.Eventually(t, "all assigned", func() bool {
		for _, id := range ids {
			if !assigned(store, id) {
				return false
			}
		}
		return true
	})
	per := map[string]int{}
	for _, id := range ids {
		tk := get(store, id)
		per[tk.NodeId]++
		if tk.Status.Message != "scheduler assigned task to node" || !tk.Status.Timestamp.AsTime().Equal(clock.Now()) {
			t.Fatalf("%s status %v", id, tk.Status)
		}
	}
	if per["n1"] != 2 || per["n2"] != 2 {
		t.Fatalf("spread %v, want 2 and 2", per)
	}
	if txs := prop.Transactions(); len(txs) != 2 || len(txs[1].Actions) != 4 {
		t.Fatalf("%d transactions, want the seed and one of 4 placements", len(txs))
	}
	if get(store, "s1").Status.State != api.TaskState_PENDING {
		t.Fatal("a task meant to stop was placed")
	}
}

// A task no node can take keeps PENDING with the reason in its status,
// written once; when a node that fits joins, it is placed there.
func TestUnplacedTaskWaitsWithItsReasonUntilANodeFits(t *testing.T) {
	store, prop := storetest.New(nil)
	storetest.Seed(t, store, node("n1", 4), pending("p1", "svc", 1, "node.hostname==n2"))
	var m Metrics
	storetest.Start(t, New(store, nil, quiet()).WithMetrics(&m).Run)
	storetest.Eventually(t, "the reason recorded", func() bool { return get(store, "p1").GetStatus().GetErr() != "" })
	// A pass is counted when it returns, after its writes.
	storetest.Eventually(t, "the pass counted", func() bool { return m.Snapshot().Passes.Count != 0 })
	if s := m.Snapshot(); s.Unplaced["constraints"] != 1 || len(s.Unplaced) != 1 || s.Placements != 0 || s.Passes.Count == 0 {
		t.Fatalf("metrics while p1 waits: %+v", s)
	}
	if reason := get(store, "p1").Status.Err; !strings.Contains(reason, "no suitable node") || get(store, "p1").Status.State != api.TaskState_PENDING {
		t.Fatalf("status %v", get(store, "p1").Status)
	}
	// A node change that does not help plans again, and writes nothing:
	// the reason did not change.
	before := len(prop.Transactions())
	update(t, store, node("n1", 8))
	storetest.Seed(t, store, node("n2", 1))
	storetest.Eventually(t, "p1 on n2", func() bool { return assigned(store, "p1") && get(store, "p1").NodeId == "n2" })
	if n := len(prop.Transactions()) - before; n != 3 {
		t.Fatalf("%d transactions, want the two node writes and the placement only", n)
	}
	// The loop counts a placement after its commit returns, which can be
	// a moment after the store shows it: wait for the count, then check it.
	storetest.Eventually(t, "the placement counted", func() bool { return m.Snapshot().Placements != 0 })
	if s := m.Snapshot(); len(s.Unplaced) != 0 || s.Placements != 1 || s.Transactions != 1 {
		t.Fatalf("metrics once p1 is placed: %+v", s)
	}
}

// A task that stops holding resources makes room for a pending one.
func TestAStoppedTaskMakesRoom(t *testing.T) {
	store, _ := storetest.New(nil)
	storetest.Seed(t, store, node("n1", 1), running("r1", "old", "n1", 1), pending("p1", "svc", 1))
	storetest.Start(t, New(store, nil, quiet()).Run)
	storetest.Eventually(t, "p1 waits for room", func() bool { return strings.Contains(get(store, "p1").GetStatus().GetErr(), "insufficient") })
	r1 := proto.Clone(get(store, "r1")).(*api.Task)
	r1.Status = &api.TaskStatus{State: api.TaskState_COMPLETE}
	update(t, store, r1)
	storetest.Eventually(t, "p1 placed once r1 stopped", func() bool { return assigned(store, "p1") })
}

// A new pending task is placed as it arrives (no wait on the clock).
func TestNewPendingTaskIsPlacedAtOnce(t *testing.T) {
	store, _ := storetest.New(clockwork.NewFakeClock())
	storetest.Seed(t, store, node("n1", 4))
	storetest.Start(t, New(store, clockwork.NewFakeClock(), quiet()).Run)
	storetest.Seed(t, store, pending("p1", "svc", 1))
	storetest.Eventually(t, "p1 placed", func() bool { return assigned(store, "p1") })
}

// A placement whose write fails is planned again after a backoff on the
// clock, and lands once writes go through.
func TestAFailedCommitIsPlannedAgain(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, prop := storetest.New(clock)
	storetest.Seed(t, store, node("n1", 4), pending("p1", "svc", 1))
	prop.Refuse(func(*api.Transaction) error { return errdefs.Unavailable("injected: no quorum") })
	storetest.Start(t, New(store, clock, quiet()).Run)
	storetest.BlockUntil(t, clock, 1)
	if assigned(store, "p1") {
		t.Fatal("assigned through a refused write")
	}
	prop.Refuse(nil)
	clock.Advance(50 * time.Millisecond)
	storetest.Eventually(t, "p1 placed on the retry", func() bool { return assigned(store, "p1") })
}

// Tasks that keep failing on a node push their service's next task to
// another node. The scheduler does so after 5 failures in 5 minutes; with
// one failure, as this test had, the choice between the two empty nodes was
// a hash tie that happened to pick n2.
func TestAFailureOnANodePushesTheServiceAway(t *testing.T) {
	store, _ := storetest.New(nil)
	ids := []string{"f1", "f2", "f3", "f4", "f5"}
	storetest.Seed(t, store, node("n1", 4), node("n2", 4))
	for _, id := range ids {
		storetest.Seed(t, store, running(id, "svc", "n1", 0))
	}
	storetest.Start(t, New(store, nil, quiet()).Run)
	// Once a task of another service is placed, the loop is watching: the
	// failures reach it as events, not already in its first snapshot.
	storetest.Seed(t, store, pending("w", "other", 0))
	storetest.Eventually(t, "w placed", func() bool { return assigned(store, "w") })
	for _, id := range ids {
		f := proto.Clone(get(store, id)).(*api.Task)
		f.Status = &api.TaskStatus{State: api.TaskState_FAILED}
		update(t, store, f)
	}
	storetest.Seed(t, store, pending("p1", "svc", 0))
	storetest.Eventually(t, "p1 placed", func() bool { return assigned(store, "p1") })
	if n := get(store, "p1").NodeId; n != "n2" {
		t.Fatalf("p1 on %s, want n2 (the service just failed on n1)", n)
	}
}

// Plans are re-checked against the latest state before they commit: a
// node that went down or a task that was removed or already assigned
// since the view was built is skipped.
func TestPlansAreRecheckedAgainstTheLatestState(t *testing.T) {
	store, prop := storetest.New(nil)
	n1 := node("n1", 4)
	storetest.Seed(t, store, n1, pending("p1", "svc", 1), pending("p2", "svc", 1), pending("p3", "svc", 1))
	l := New(store, nil, quiet())
	view := scheduler.NewView()
	view.UpsertNode(n1)
	tasks := map[string]*api.Task{}
	for _, id := range []string{"p1", "p2", "p3"} {
		tasks[id] = get(store, id)
		view.UpsertTask(tasks[id])
	}
	// The store moves on; the view does not know.
	p2 := proto.Clone(get(store, "p2")).(*api.Task)
	p2.NodeId, p2.Status = "elsewhere", &api.TaskStatus{State: api.TaskState_ASSIGNED}
	update(t, store, p2)
	if err := storetest.Remove(store, "p3"); err != nil {
		t.Fatal(err)
	}
	failed, again := l.schedule(context.Background(), view, tasks)
	if len(failed) != 0 || len(again) != 0 {
		t.Fatalf("failed %v, again %v", failed, again)
	}
	if !assigned(store, "p1") || get(store, "p2").NodeId != "elsewhere" || get(store, "p3") != nil {
		t.Fatalf("p1 %v, p2 on %s", get(store, "p1").Status, get(store, "p2").NodeId)
	}
	// Now the node is down in the store but ready in the view.
	n := proto.Clone(n1).(*api.Node)
	n.Status = &api.NodeStatus{State: api.NodeStatus_DOWN}
	update(t, store, n)
	storetest.Seed(t, store, pending("p4", "svc", 1))
	p4 := get(store, "p4")
	view.UpsertTask(p4)
	before := len(prop.Transactions())
	h := &handler{l: l, view: view, pending: map[string]*api.Task{"p4": p4}, mark: func(string) {}}
	var out reconcile.Outcome
	h.Reconcile(context.Background(), []string{"p4"}, &out)
	if assigned(store, "p4") {
		t.Fatal("assigned to a node that is down")
	}
	if n := len(prop.Transactions()) - before; n != 0 {
		t.Fatalf("%d transactions, want none", n)
	}
	// p4 still waits, to be planned again at once, and the view now
	// knows n1 is down: it was once dropped from the loop's pending set
	// and waited for good (one task of a 1M create, its node marked down
	// while the placement was in flight).
	if _, wake := out.Wake("p4"); !wake || out.Err("p4") != nil || h.pending["p4"] == nil {
		t.Fatalf("wake %v, err %v, pending %v: p4 should wait, to be planned again at once", wake, out.Err("p4"), h.pending)
	}
	pend := h.pending
	n2 := node("n2", 4)
	storetest.Seed(t, store, n2)
	view.UpsertNode(n2)
	if failed, again = l.schedule(context.Background(), view, pend); len(failed) != 0 || len(again) != 0 || len(pend) != 0 {
		t.Fatalf("second plan: failed %v, again %v, left %v", failed, again, pend)
	}
	if got := get(store, "p4"); !assigned(store, "p4") || got.NodeId != "n2" {
		t.Fatalf("p4 on %q, %v: want n2, the node that is READY", got.NodeId, got.Status)
	}
}

// A commit that fails is reported per task, and the view releases what it
// charged, so the next plan sees the room again.
func TestAFailedBatchIsReportedAndReleased(t *testing.T) {
	store, prop := storetest.New(nil)
	n1 := node("n1", 1)
	storetest.Seed(t, store, n1, pending("p1", "svc", 1))
	l := New(store, nil, quiet())
	view := scheduler.NewView()
	view.UpsertNode(n1)
	p1 := get(store, "p1")
	view.UpsertTask(p1)
	prop.Refuse(func(*api.Transaction) error { return errdefs.Unavailable("injected") })
	failed, _ := l.schedule(context.Background(), view, map[string]*api.Task{"p1": p1})
	if err := failed["p1"]; !errdefs.IsUnavailable(err) {
		t.Fatalf("p1: %v, want the write's error", err)
	}
	prop.Refuse(nil)
	pend := map[string]*api.Task{"p1": p1}
	if failed, _ := l.schedule(context.Background(), view, pend); len(failed) != 0 || len(pend) != 0 || !assigned(store, "p1") {
		t.Fatalf("second plan: failed %v, left %v", failed, pend)
	}
}

// Tasks are planned in a fixed order: service, spec version, slot, ID.
func TestSortTasks(t *testing.T) {
	ts := []*api.Task{
		{Id: "d", ServiceId: "b", SpecVersion: 1, Slot: 1},
		{Id: "c", ServiceId: "a", SpecVersion: 2, Slot: 1},
		{Id: "b", ServiceId: "a", SpecVersion: 1, Slot: 2},
		{Id: "z", ServiceId: "a", SpecVersion: 1, Slot: 1},
		{Id: "y", ServiceId: "a", SpecVersion: 1, Slot: 1},
	}
	sortTasks(ts)
	var got []string
	for _, t := range ts {
		got = append(got, t.Id)
	}
	if s := strings.Join(got, ""); s != "yzbcd" {
		t.Fatalf("order %s, want yzbcd", s)
	}
}
