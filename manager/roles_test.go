package manager

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/manager/internal/storetest"
	"github.com/shoal-project/shoal/manager/reconcile"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// fakeMembers is a raft membership the role manager acts on.
type fakeMembers struct {
	mu          sync.Mutex
	self        uint64
	members     map[string]*api.RaftMember // by node ID
	removeErr   error
	transferErr error
	removed     []uint64
	transfers   int
}

func newFakeMembers(self uint64, ms ...*api.RaftMember) *fakeMembers {
	f := &fakeMembers{self: self, members: map[string]*api.RaftMember{}}
	for _, m := range ms {
		f.members[m.NodeId] = m
	}
	return f
}

func (f *fakeMembers) MemberByNodeID(id string) *api.RaftMember {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.members[id]; m != nil {
		return &api.RaftMember{RaftId: m.RaftId, NodeId: m.NodeId, Addr: m.Addr}
	}
	return nil
}

func (f *fakeMembers) RaftID() uint64 { return f.self }

func (f *fakeMembers) TransferLeadership(context.Context, uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.transfers++
	return f.transferErr
}

func (f *fakeMembers) RemoveMember(_ context.Context, id uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.removeErr != nil {
		return f.removeErr
	}
	f.removed = append(f.removed, id)
	for nid, m := range f.members {
		if m.RaftId == id {
			delete(f.members, nid)
		}
	}
	return nil
}

func (f *fakeMembers) set(fn func(*fakeMembers)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeMembers) snapshot() (removed []uint64, transfers int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint64(nil), f.removed...), f.transfers
}

func roleNode(id string, desired api.NodeRole, status *api.ManagerStatus) *api.Node {
	return &api.Node{Id: id, Spec: &api.NodeSpec{DesiredRole: desired}, Role: desired, ManagerStatus: status}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func managerStatus(s *raftstore.Store, id string) *api.ManagerStatus {
	var n *api.Node
	s.View(func(tx raftstore.ReadTx) { n = tx.Node(id) })
	return n.GetManagerStatus()
}

// One pass over the nodes: a demoted member other than this one is removed
// from raft; a manager whose recorded raft ID or address is out of date is
// corrected; workers are left alone; manager nodes ask to be looked at
// again (membership changes are not store events).
func TestRolesPassDecisions(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	storetest.Seed(t, store,
		roleNode("a-self", api.NodeRole_MANAGER, &api.ManagerStatus{RaftId: 1, Addr: "10.0.0.1:4242"}),
		roleNode("b-demoted", api.NodeRole_WORKER, &api.ManagerStatus{RaftId: 2, Addr: "10.0.0.2:4242"}),
		roleNode("c-moved", api.NodeRole_MANAGER, &api.ManagerStatus{RaftId: 3, Addr: "old:4242"}),
		roleNode("d-worker", api.NodeRole_WORKER, nil),
		roleNode("e-joining", api.NodeRole_MANAGER, nil))
	members := newFakeMembers(1,
		&api.RaftMember{RaftId: 1, NodeId: "a-self", Addr: "10.0.0.1:4242"},
		&api.RaftMember{RaftId: 2, NodeId: "b-demoted", Addr: "10.0.0.2:4242"},
		&api.RaftMember{RaftId: 3, NodeId: "c-moved", Addr: "10.0.0.3:4242"})
	r := newRoleManager(store, members, clock, discardLog())
	var out reconcile.Outcome
	r.Reconcile(context.Background(), []string{"a-self", "b-demoted", "c-moved", "d-worker", "e-joining", "z-gone"}, &out)
	if removed, transfers := members.snapshot(); len(removed) != 1 || removed[0] != 2 || transfers != 0 {
		t.Fatalf("removed %v, %d transfers; want member 2 removed, no transfer", removed, transfers)
	}
	if ms := managerStatus(store, "c-moved"); ms.GetRaftId() != 3 || ms.GetAddr() != "10.0.0.3:4242" {
		t.Fatalf("c-moved's manager status %v, want the member's address", ms)
	}
	if ms := managerStatus(store, "a-self"); ms.GetAddr() != "10.0.0.1:4242" {
		t.Fatalf("a-self changed: %v", ms)
	}
	later := clock.Now().Add(rolePass)
	for _, id := range []string{"a-self", "b-demoted", "c-moved", "e-joining"} {
		if at, ok := out.Wake(id); !ok || !at.Equal(later) {
			t.Errorf("%s: wake %v %v, want in %v", id, at, ok, rolePass)
		}
		if err := out.Err(id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	if _, ok := out.Wake("d-worker"); ok {
		t.Error("a worker outside raft asked for a wake-up")
	}
}

// A removal raft refuses (it would lose quorum) is a failure to retry.
func TestRolesRefusedRemovalIsRetried(t *testing.T) {
	store, _ := storetest.New(nil)
	storetest.Seed(t, store, roleNode("b", api.NodeRole_WORKER, &api.ManagerStatus{RaftId: 2}))
	members := newFakeMembers(1, &api.RaftMember{RaftId: 2, NodeId: "b"})
	members.removeErr = errdefs.FailedPrecondition("removing member 2 would lose quorum")
	var out reconcile.Outcome
	newRoleManager(store, members, clockwork.NewFakeClock(), discardLog()).Reconcile(context.Background(), []string{"b"}, &out)
	if !errdefs.IsFailedPrecondition(out.Err("b")) {
		t.Fatalf("outcome %v, want the refusal", out.Err("b"))
	}
}

// A leader being demoted hands leadership off and leaves the nodes after
// it for later; it never removes itself.
func TestRolesSelfDemotionTransfersLeadership(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	storetest.Seed(t, store,
		roleNode("a-self", api.NodeRole_WORKER, &api.ManagerStatus{RaftId: 1}),
		roleNode("b-demoted", api.NodeRole_WORKER, &api.ManagerStatus{RaftId: 2}))
	members := newFakeMembers(1, &api.RaftMember{RaftId: 1, NodeId: "a-self"}, &api.RaftMember{RaftId: 2, NodeId: "b-demoted"})
	r := newRoleManager(store, members, clock, discardLog())
	var out reconcile.Outcome
	r.Reconcile(context.Background(), []string{"a-self", "b-demoted"}, &out)
	removed, transfers := members.snapshot()
	if transfers != 1 || len(removed) != 0 {
		t.Fatalf("%d transfers, removed %v; want one transfer and no removal", transfers, removed)
	}
	if _, ok := out.Wake("b-demoted"); !ok {
		t.Fatal("the node after this one was not left for later")
	}
	// A failed transfer is retried.
	members.set(func(f *fakeMembers) { f.transferErr = errdefs.Unavailable("no other manager is caught up") })
	out = reconcile.Outcome{}
	r.Reconcile(context.Background(), []string{"a-self"}, &out)
	if !errdefs.IsUnavailable(out.Err("a-self")) {
		t.Fatalf("outcome %v, want the transfer's failure", out.Err("a-self"))
	}
}

// Run: a demotion refused by raft is retried on the clock until it goes
// through, and a member's new address (no store event) is recorded at the
// next periodic look.
func TestRolesRunRetriesAndLooksAgain(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	storetest.Seed(t, store,
		roleNode("a-self", api.NodeRole_MANAGER, &api.ManagerStatus{RaftId: 1, Addr: "a:1"}),
		roleNode("b", api.NodeRole_WORKER, &api.ManagerStatus{RaftId: 2, Addr: "b:1"}))
	members := newFakeMembers(1, &api.RaftMember{RaftId: 1, NodeId: "a-self", Addr: "a:1"}, &api.RaftMember{RaftId: 2, NodeId: "b", Addr: "b:1"})
	members.removeErr = errdefs.FailedPrecondition("would lose quorum")
	storetest.Start(t, newRoleManager(store, members, clock, discardLog()).Run)
	storetest.BlockUntil(t, clock, 1)
	if removed, _ := members.snapshot(); len(removed) != 0 {
		t.Fatal("removed through a refusal")
	}
	members.set(func(f *fakeMembers) { f.removeErr = nil })
	clock.Advance(roleMinRetry)
	storetest.Eventually(t, "b removed on the retry", func() bool { removed, _ := members.snapshot(); return len(removed) == 1 })
	members.set(func(f *fakeMembers) { f.members["a-self"].Addr = "a:2" })
	storetest.BlockUntil(t, clock, 1)
	clock.Advance(rolePass)
	storetest.Eventually(t, "a-self's new address recorded", func() bool { return managerStatus(store, "a-self").GetAddr() == "a:2" })
}
