package orchestrator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/manager/internal/storetest"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// fakePlacer plans every task onto its node, in turn, and records what
// it was asked and how often done was called.
type fakePlacer struct {
	nodes []string

	mu     sync.Mutex
	asked  []string
	dones  int
	cursor int
}

func (p *fakePlacer) PlaceNew(_ context.Context, tasks []*api.Task) (map[string]string, func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]string{}
	for _, t := range tasks {
		p.asked = append(p.asked, t.ServiceId)
		out[t.Id] = p.nodes[p.cursor%len(p.nodes)]
		p.cursor++
	}
	return out, func() {
		p.mu.Lock()
		p.dones++
		p.mu.Unlock()
	}
}

// With a placer, the tasks of a service that needs nothing from the
// allocator are created ASSIGNED to the planned node, in one write each,
// except where that node is not READY and ACTIVE in the creating
// transaction (then PENDING, for the scheduling loop); a networked
// service's tasks are not offered to the placer and stay NEW; done is
// called once per creating transaction that had a plan.
func TestPlacedTasksAreCreatedAssigned(t *testing.T) {
	store, prop := storetest.New(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := func(id string, networks ...string) *api.Service { return vipService(id, 4, networks...) }
	node := func(id string, state api.NodeStatus_State, avail api.Availability) *api.Node {
		return &api.Node{Id: id, Spec: &api.NodeSpec{Availability: avail}, Status: &api.NodeStatus{State: state}}
	}
	storetest.Seed(t, store, node("ready", api.NodeStatus_READY, api.Availability_ACTIVE),
		node("down", api.NodeStatus_DOWN, api.Availability_ACTIVE), node("drained", api.NodeStatus_READY, api.Availability_DRAIN),
		svc("plain"), svc("networked", "net1"))
	p := &fakePlacer{nodes: []string{"ready", "down", "ready", "drained"}}
	o := New(store, nil, slog.New(slog.NewTextHandler(io.Discard, nil))).WithPlacer(p)
	done := make(chan struct{})
	go func() { defer close(done); _ = o.Run(ctx) }()
	defer func() { cancel(); <-done }()
	tasks := func(id string) (out []*api.Task) {
		store.View(func(tx raftstore.ReadTx) { out = tx.TasksByService(id) })
		return out
	}
	testutil.EventuallyErr(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n, m := len(tasks("plain")), len(tasks("networked")); n != 4 || m != 4 {
			return fmt.Errorf("tasks: plain %d, networked %d", n, m)
		}
		return nil
	}, "every task created")
	per := map[string]int{}
	for _, tk := range tasks("plain") {
		switch s := tk.GetStatus(); {
		case s.GetState() == api.TaskState_ASSIGNED && tk.NodeId == "ready" && s.GetMessage() == msgAssigned:
			per["assigned"]++
		case s.GetState() == api.TaskState_PENDING && tk.NodeId == "":
			per["pending"]++
		default:
			t.Fatalf("plain task %s: node %q, status %v", tk.Id, tk.NodeId, s)
		}
	}
	if per["assigned"] != 2 || per["pending"] != 2 {
		t.Fatalf("plain tasks %v, want 2 assigned to the ready node and 2 pending (planned onto the down and the drained node)", per)
	}
	for _, tk := range tasks("networked") {
		if tk.GetStatus().GetState() != api.TaskState_NEW || tk.NodeId != "" {
			t.Fatalf("networked task %s: node %q, status %v", tk.Id, tk.NodeId, tk.GetStatus())
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.asked) != 4 || p.dones != 1 {
		t.Fatalf("placer asked for %v, done %d times; want the 4 plain tasks and one done", p.asked, p.dones)
	}
	for _, s := range p.asked {
		if s != "plain" {
			t.Fatalf("placer asked for a task of %s", s)
		}
	}
	creates := 0
	for _, tx := range prop.Transactions() {
		for _, a := range tx.Actions {
			if a.Kind == api.StoreAction_CREATE && a.GetObject().GetTask() != nil {
				creates++
			}
		}
	}
	if creates != 8 {
		t.Fatalf("%d task creates written, want 8 (one per task)", creates)
	}
}
