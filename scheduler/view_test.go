package scheduler

import (
	"hash/fnv"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

func TestViewTaskAccounting(t *testing.T) {
	v := newTestView(testNode("a"), testNode("b"))
	task := testTask("t1", "s", reserve(1e9, gib), hostPortOpt(80))

	step := func(name string, do func(), node string, want NodeUsage, svc int) {
		t.Helper()
		do()
		got, _ := v.Usage(node)
		if got != want || v.ServiceTasks("s", node) != svc {
			t.Fatalf("%s: usage of %s = %+v, service tasks %d; want %+v, %d", name, node, got, v.ServiceTasks("s", node), want, svc)
		}
	}
	held := NodeUsage{Tasks: 1, NanoCPUs: 1e9, MemoryBytes: gib}
	step("pending holds nothing", func() { v.UpsertTask(task) }, "a", NodeUsage{}, 0)
	step("pinned pending holds nothing", func() { on("a")(task); v.UpsertTask(task) }, "a", NodeUsage{}, 0)
	step("assigned holds", func() { task.Status.State = api.TaskState_ASSIGNED; v.UpsertTask(task) }, "a", held, 1)
	step("status updates are idempotent", func() {
		for _, s := range []api.TaskState{api.TaskState_ACCEPTED, api.TaskState_RUNNING, api.TaskState_RUNNING} {
			task.Status.State = s
			v.UpsertTask(task)
		}
	}, "a", held, 1)
	if v.nodes["a"].ports[hostPort{api.PortConfig_TCP, 80}] != 1 {
		t.Fatal("host port 80 not held on a")
	}
	step("moving node releases the old one", func() { task.NodeId = "b"; v.UpsertTask(task) }, "a", NodeUsage{}, 0)
	step("and charges the new one", func() {}, "b", held, 1)
	step("ending releases", func() { task.Status.State = api.TaskState_FAILED; v.UpsertTask(task) }, "b", NodeUsage{}, 0)
	if len(v.nodes["b"].ports) != 0 || len(v.services) != 0 {
		t.Fatalf("leftovers: ports %v, services %v", v.nodes["b"].ports, v.services)
	}
	step("running again", func() { task.Status.State = api.TaskState_RUNNING; v.UpsertTask(task) }, "b", held, 1)
	step("remove releases", func() { v.RemoveTask("t1"); v.RemoveTask("t1") }, "b", NodeUsage{}, 0)
	if _, tasks := v.Size(); tasks != 0 {
		t.Fatalf("view still holds %d tasks", tasks)
	}
}

func TestViewNodeLifecycle(t *testing.T) {
	v := NewView()
	// A task may arrive before its node: it waits on a placeholder.
	v.UpsertTask(testTask("t1", "s", reserve(1e9, 0), runningOn("a")))
	if nodes, _ := v.Size(); nodes != 0 {
		t.Fatalf("placeholder counted as a node")
	}
	if _, ok := v.Usage("a"); ok {
		t.Fatal("Usage knows a node never added")
	}
	v.UpsertNode(testNode("a"))
	if u, _ := v.Usage("a"); u.Tasks != 1 || u.NanoCPUs != 1e9 {
		t.Fatalf("usage after the node arrived = %+v", u)
	}
	v.UpsertNode(testNode("b"))
	v.UpsertNode(testNode("c"))
	v.RemoveNode("a")
	v.RemoveNode("a")
	if nodes, _ := v.Size(); nodes != 2 || v.nodes["a"] == nil {
		t.Fatalf("nodes = %d, placeholder kept = %v", nodes, v.nodes["a"] != nil)
	}
	for i, n := range v.live {
		if n.pos != i {
			t.Fatalf("live[%d].pos = %d", i, n.pos)
		}
	}
	// A removed node is no candidate, even for its own pinned tasks.
	p := v.Schedule([]*api.Task{testTask("t2", "s", on("a"))}, t0)
	if len(p.Unplaced) != 1 || p.Unplaced[0].Reason != "no suitable node (node a is not in the cluster)" {
		t.Fatalf("plan = %+v", p)
	}
	v.RemoveTask("t1")
	if v.nodes["a"] != nil {
		t.Fatal("placeholder outlived its last task")
	}
	v.RemoveNode("b")
	v.RemoveNode("c")
	if nodes, tasks := v.Size(); nodes != 0 || tasks != 0 || len(v.nodes) != 0 {
		t.Fatalf("view not empty: %d nodes, %d tasks, %d infos", nodes, tasks, len(v.nodes))
	}
}

func TestRecordFailure(t *testing.T) {
	v := newTestView(testNode("a"))
	n := v.nodes["a"]
	for i := range 4 {
		v.RecordFailure("s", "a", t0.Add(time.Duration(i)*time.Minute))
	}
	if n.failedRecently("s", t0.Add(4*time.Minute)) {
		t.Fatal("4 failures flag the node")
	}
	v.RecordFailure("s", "a", t0.Add(30*time.Second)) // out of order is fine
	if !n.failedRecently("s", t0.Add(4*time.Minute)) {
		t.Fatal("5 failures in 5 minutes do not flag the node")
	}
	if n.failedRecently("s", t0.Add(5*time.Minute+time.Second)) {
		t.Fatal("failures older than 5 minutes still count")
	}
	if n.failedRecently("other", t0) {
		t.Fatal("another service is flagged")
	}
	for i := range 10 {
		v.RecordFailure("s", "a", t0.Add(time.Duration(i)*time.Second))
	}
	if got := len(n.failures["s"]); got != maxFailures {
		t.Fatalf("kept %d failures, want at most %d", got, maxFailures)
	}
	// Stale records go away: checked lazily, or when another failure comes.
	v.RecordFailure("old", "a", t0)
	v.RecordFailure("new", "a", t0.Add(time.Hour))
	if _, ok := n.failures["old"]; ok {
		t.Fatal("stale service record kept")
	}
	n.failedRecently("new", t0.Add(2*time.Hour))
	if n.failures != nil {
		t.Fatalf("failures = %v, want nil once all are stale", n.failures)
	}
	v.RecordFailure("s", "unknown", t0) // dropped, no panic
}

func TestTieHashIsFNV1a(t *testing.T) {
	// The hash is part of the plan: it must not change between releases
	// or processes, so it is a fixed, well-known function.
	for _, s := range []string{"", "node-1", "a much longer node identifier 0123456789"} {
		h := fnv.New64a()
		h.Write([]byte(s))
		if got := hashString(s); got != h.Sum64() {
			t.Fatalf("hashString(%q) = %#x, want %#x", s, got, h.Sum64())
		}
	}
}

// Tasks fed to UpsertTask (a new leader's view is fed every running task)
// share one holding per service while they hold the same, get their own
// when they do not, and the service's entry goes with its last task; the
// slot index follows moves and removals.
func TestUpsertTaskSharesHoldings(t *testing.T) {
	v := newTestView(testNode("a"), testNode("b"))
	mk := func(id string, slot uint64, node string, opts ...taskOpt) *api.Task {
		tk := testTask(id, "svc", append([]taskOpt{reserve(1e9, gib), runningOn(node)}, opts...)...)
		tk.Slot = slot
		return tk
	}
	v.UpsertTask(mk("t1", 1, "a"))
	v.UpsertTask(mk("t2", 2, "b"))
	v.UpsertTask(mk("t3", 3, "a", reserve(2e9, gib)))
	v.UpsertTask(mk("t4", 4, "a", hostPortOpt(8080)))
	v.UpsertTask(mk("t5", 5, "b"))
	h := func(id string) *holding { return v.tasks[id].h }
	if h("t1") != h("t2") {
		t.Fatal("two tasks holding the same do not share a holding")
	}
	if h("t3") == h("t2") || h("t3").cpu != 1e9*2 {
		t.Fatalf("a task with other reservations shares a holding: %+v", h("t3"))
	}
	if h("t4") == h("t3") || len(h("t4").ports) != 1 {
		t.Fatalf("a task with a host port: %+v", h("t4"))
	}
	gpu := func(tk *api.Task) { // a slice of its own per task: equal, not identical
		tk.Spec.Resources.Reservations.Generic = []*api.GenericResource{{Kind: "gpu", Value: 1}}
	}
	v.UpsertTask(mk("t6", 6, "b", gpu))
	v.UpsertTask(mk("t7", 7, "b", gpu))
	if h("t6") != h("t7") || h("t6") == h("t5") {
		t.Fatal("tasks with equal generic reservations do not share a holding, or share one with a task without")
	}
	if u, _ := v.Usage("a"); u.NanoCPUs != 4e9 || u.Tasks != 3 {
		t.Fatalf("node a holds %+v, want 4 CPUs for 3 tasks", u)
	}
	// t1 moves to b: its slot follows; t2 ends: its slot is empty.
	v.UpsertTask(mk("t1", 1, "b"))
	ended := mk("t2", 2, "b")
	ended.Status.State = api.TaskState_SHUTDOWN
	v.UpsertTask(ended)
	if s := v.slots[slotID{"svc", 1}]; s.len() != 1 || s.node.id != "b" {
		t.Fatalf("slot 1 after the move: %+v", s)
	}
	if _, in := v.slots[slotID{"svc", 2}]; in {
		t.Fatal("slot 2 still indexed after its only task ended")
	}
	for _, id := range []string{"t1", "t3", "t4", "t5", "t6", "t7"} {
		v.RemoveTask(id)
	}
	if len(v.holds) != 0 || len(v.slots) != 0 || len(v.tasks) != 0 {
		t.Fatalf("left after every task went: holds %v, slots %v, tasks %d", v.holds, v.slots, len(v.tasks))
	}
}
