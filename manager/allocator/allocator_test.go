package allocator

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/manager/internal/storetest"
	"github.com/shoal-project/shoal/manager/reconcile"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

func task(id string, state api.TaskState) *api.Task {
	return &api.Task{Id: id, Status: &api.TaskStatus{State: state}, DesiredState: api.TaskState_RUNNING}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func taskState(s *raftstore.Store, id string) api.TaskState {
	return storetest.Task(s, id).GetStatus().GetState()
}

// NEW tasks, found at start or created later, move to PENDING with the
// allocator's message and the clock's time; tasks in any other state are
// left alone.
func TestNewTasksBecomePending(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, prop := storetest.New(clock)
	storetest.Seed(t, store, task("t1", api.TaskState_NEW), task("t2", api.TaskState_RUNNING), task("t3", api.TaskState_ASSIGNED))
	storetest.Start(t, New(store, clock, quiet()).Run)
	storetest.Eventually(t, "t1 pending", func() bool { return taskState(store, "t1") == api.TaskState_PENDING })
	got := storetest.Task(store, "t1").GetStatus()
	if got.GetMessage() != "pending task scheduling" || !got.GetTimestamp().AsTime().Equal(clock.Now()) {
		t.Fatalf("status %v", got)
	}
	storetest.Seed(t, store, task("t4", api.TaskState_NEW), task("t5", api.TaskState_NEW))
	storetest.Eventually(t, "t4 and t5 pending", func() bool {
		return taskState(store, "t4") == api.TaskState_PENDING && taskState(store, "t5") == api.TaskState_PENDING
	})
	if taskState(store, "t2") != api.TaskState_RUNNING || taskState(store, "t3") != api.TaskState_ASSIGNED {
		t.Fatal("the allocator touched tasks past NEW")
	}
	// Seed, the allocation of t1, Seed, the allocation of t4 and t5 (one
	// transaction: one pass).
	storetest.Eventually(t, "4 transactions", func() bool { return len(prop.Transactions()) == 4 })
	if objs := storetest.Objects(prop.Transactions()[3]); len(objs) != 2 {
		t.Fatalf("the second allocation wrote %d tasks, want 2 in one transaction", len(objs))
	}
}

// A task that leaves NEW before its allocation commits (here: it is
// removed) is skipped, and nothing else is written.
func TestATaskGoneBeforeAllocationIsSkipped(t *testing.T) {
	store, prop := storetest.New(nil)
	storetest.Seed(t, store, task("t1", api.TaskState_NEW))
	a := New(store, nil, quiet())
	err := storetest.Remove(store, "t1")
	if err != nil {
		t.Fatal(err)
	}
	var out reconcile.Outcome
	handler{a}.Reconcile(t.Context(), []string{"t/t1"}, &out)
	if err := out.Err("t/t1"); err != nil {
		t.Fatalf("failed %v", err)
	}
	if n := len(prop.Transactions()); n != 2 {
		t.Fatalf("%d transactions, want only the seed and the removal", n)
	}
}

// A write that fails is retried after a backoff (on the clock), and the
// task ends PENDING once the store takes writes again.
func TestFailedAllocationIsRetried(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, prop := storetest.New(clock)
	storetest.Seed(t, store, task("t1", api.TaskState_NEW))
	refused := 0
	prop.Refuse(func(*api.Transaction) error { refused++; return errdefs.Unavailable("injected: no quorum") })
	storetest.Start(t, New(store, clock, quiet()).Run)
	storetest.BlockUntil(t, clock, 1) // waiting out the backoff
	if taskState(store, "t1") != api.TaskState_NEW {
		t.Fatal("allocated through a refused write")
	}
	prop.Refuse(nil)
	clock.Advance(50 * time.Millisecond)
	storetest.Eventually(t, "t1 pending after the retry", func() bool { return taskState(store, "t1") == api.TaskState_PENDING })
	if refused != 1 {
		t.Fatalf("%d refused writes, want 1", refused)
	}
}

// The allocator's watch drops only task updates that change nothing it
// holds or does; everything else reaches it.
func TestRelevantEvents(t *testing.T) {
	net := &api.NetworkAttachment{NetworkId: "n1", Addresses: []string{"10.0.0.2/24"}}
	task := func(state, desired api.TaskState, node string, nets ...*api.NetworkAttachment) *api.Task {
		return &api.Task{Id: "t1", NodeId: node, DesiredState: desired, Status: &api.TaskStatus{State: state}, Networks: nets}
	}
	running := task(api.TaskState_RUNNING, api.TaskState_RUNNING, "node1", net)
	update := func(old, now raftstore.Object) raftstore.Event {
		return raftstore.Event{Action: raftstore.ActionUpdate, Kind: raftstore.KindTask, Object: now, Old: old}
	}
	for _, c := range []struct {
		name string
		ev   raftstore.Event
		want bool
	}{
		{"a status report", update(task(api.TaskState_ASSIGNED, api.TaskState_RUNNING, "node1", net), running), false},
		{"the same attachments, copied", update(task(api.TaskState_STARTING, api.TaskState_RUNNING, "node1", proto.Clone(net).(*api.NetworkAttachment)), running), false},
		{"a new task", update(task(api.TaskState_NEW, api.TaskState_RUNNING, ""), task(api.TaskState_NEW, api.TaskState_RUNNING, "")), true},
		{"a placement", update(task(api.TaskState_PENDING, api.TaskState_RUNNING, ""), task(api.TaskState_ASSIGNED, api.TaskState_RUNNING, "node1")), true},
		{"the task stopped", update(running, task(api.TaskState_SHUTDOWN, api.TaskState_SHUTDOWN, "node1", net)), true},
		{"desired state down only", update(running, task(api.TaskState_RUNNING, api.TaskState_SHUTDOWN, "node1", net)), false},
		{"addresses changed", update(running, task(api.TaskState_RUNNING, api.TaskState_RUNNING, "node1", &api.NetworkAttachment{NetworkId: "n1", Addresses: []string{"10.0.0.3/24"}})), true},
		{"attachment dropped", update(running, task(api.TaskState_RUNNING, api.TaskState_RUNNING, "node1")), true},
		{"a create", raftstore.Event{Action: raftstore.ActionCreate, Kind: raftstore.KindTask, Object: running}, true},
		{"a delete", raftstore.Event{Action: raftstore.ActionDelete, Kind: raftstore.KindTask, Object: running, Old: running}, true},
		{"a node update", raftstore.Event{Action: raftstore.ActionUpdate, Kind: raftstore.KindNode, Object: &api.Node{Id: "node1"}, Old: &api.Node{Id: "node1"}}, true},
		{"a commit", raftstore.Event{Action: raftstore.ActionCommit}, true},
	} {
		if got := relevant(c.ev); got != c.want {
			t.Errorf("%s: relevant = %v, want %v", c.name, got, c.want)
		}
	}
}
