package raftstore

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func newLocalStore() *Store { return NewStandaloneStore(nil) }

func svc(id, name string) *api.Service {
	return &api.Service{Id: id, Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: name}}}
}

func TestStoreCreateUpdateDeleteAndVersions(t *testing.T) {
	s := newLocalStore()
	ctx := context.Background()
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Create(svc("s1", "web")) }); err != nil {
		t.Fatal(err)
	}
	var got *api.Service
	s.View(func(tx ReadTx) { got = tx.ServiceByName("web") })
	if got == nil || got.Meta.GetVersion() != 1 || got.Meta.CreatedAt == nil {
		t.Fatalf("created service %v", got)
	}
	// Duplicate name and duplicate ID are refused.
	err := s.Update(ctx, func(tx *Tx) error { return tx.Create(svc("s2", "web")) })
	if !errdefs.IsAlreadyExists(err) {
		t.Fatalf("duplicate name: %v", err)
	}
	// A write based on a stale read fails with a conflict at apply time.
	stale := proto.Clone(got).(*api.Service)
	fresh := proto.Clone(got).(*api.Service)
	fresh.Spec.Annotations.Labels = map[string]string{"a": "1"}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Update(fresh) }); err != nil {
		t.Fatal(err)
	}
	stale.Spec.Annotations.Labels = map[string]string{"b": "2"}
	err = s.Update(ctx, func(tx *Tx) error { return tx.Update(stale) })
	if !errdefs.IsConflict(err) {
		t.Fatalf("stale update: %v, want a conflict", err)
	}
	s.View(func(tx ReadTx) { got = tx.Service("s1") })
	if got.Spec.Annotations.Labels["a"] != "1" || got.Meta.Version != 2 {
		t.Fatalf("after updates: %v", got)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Delete(got) }); err != nil {
		t.Fatal(err)
	}
	s.View(func(tx ReadTx) { got = tx.Service("s1") })
	if got != nil {
		t.Fatal("service still there after delete")
	}
}

func TestStoreTransactionIsAtomic(t *testing.T) {
	s := newLocalStore()
	ctx := context.Background()
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Create(svc("a", "a")) }); err != nil {
		t.Fatal(err)
	}
	var a *api.Service
	s.View(func(tx ReadTx) { a = tx.Service("a") })
	// Two proposals built on the same read: the first wins, the second
	// (which also creates "b") applies nothing at all.
	a1 := proto.Clone(a).(*api.Service)
	a2 := proto.Clone(a).(*api.Service)
	a1.Spec.Annotations.Labels = map[string]string{"x": "1"}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Update(a1) }); err != nil {
		t.Fatal(err)
	}
	// Bypass the Tx-time check to reach the apply-time one.
	actions := []*api.StoreAction{
		{Kind: api.StoreAction_CREATE, Object: Wrap(svc("b", "b"))},
		{Kind: api.StoreAction_UPDATE, Object: Wrap(a2), ExpectedVersion: a2.Meta.Version},
	}
	if err := s.commit(ctx, actions); !errdefs.IsConflict(err) {
		t.Fatalf("got %v, want a conflict", err)
	}
	s.View(func(tx ReadTx) {
		if tx.Service("b") != nil {
			t.Error("a failed transaction left a partial write")
		}
	})
}

func TestTxReadsItsOwnWritesAndCoalesces(t *testing.T) {
	s := newLocalStore()
	ctx := context.Background()
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Create(svc("s", "web")) }); err != nil {
		t.Fatal(err)
	}
	err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.Create(&api.Task{Id: "t1", ServiceId: "s", Slot: 1}); err != nil {
			return err
		}
		t1 := proto.Clone(tx.Task("t1")).(*api.Task)
		t1.NodeId = "n1"
		if err := tx.Update(t1); err != nil {
			return err
		}
		if got := tx.TasksByNode("n1"); len(got) != 1 {
			t.Errorf("tx does not see its own write: %v", got)
		}
		if err := tx.Create(&api.Task{Id: "t2", ServiceId: "s", Slot: 1}); err != nil {
			return err
		}
		if len(tx.Actions()) != 2 {
			t.Errorf("actions not coalesced: %v", tx.Actions())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx ReadTx) {
		if len(tx.TasksBySlot("s", 1)) != 2 || tx.Task("t1").NodeId != "n1" {
			t.Error("slot index or coalesced write wrong")
		}
	})
}

func TestLookupResolvesIDNameAndPrefix(t *testing.T) {
	s := newLocalStore()
	ctx := context.Background()
	for _, v := range []*api.Service{svc("abc123", "web"), svc("abd456", "api"), svc("xyz789", "db")} {
		v := v
		if err := s.Update(ctx, func(tx *Tx) error { return tx.Create(v) }); err != nil {
			t.Fatal(err)
		}
	}
	name := func(s *api.Service) string { return s.GetSpec().GetAnnotations().GetName() }
	s.View(func(tx ReadTx) {
		for ref, want := range map[string]string{"abc123": "abc123", "web": "abc123", "xy": "xyz789", "abd": "abd456"} {
			got, err := Lookup(tx, KindService, ref, name)
			if err != nil || got.Id != want {
				t.Errorf("lookup %q: %v %v, want %s", ref, got, err, want)
			}
		}
		if _, err := Lookup(tx, KindService, "ab", name); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ambiguous prefix: %v", err)
		}
		if _, err := Lookup(tx, KindService, "nope", name); !errdefs.IsNotFound(err) {
			t.Errorf("missing: %v", err)
		}
	})
}

func TestWatchDeliversInOrderAndCutsSlowWatchers(t *testing.T) {
	s := newLocalStore()
	ctx := context.Background()
	var before int
	w := s.ViewAndWatch(WatchOptions{Kinds: []string{KindService}, Commits: true}, func(tx ReadTx) { before = len(tx.Services()) })
	defer w.Close()
	slow := s.Watch(WatchOptions{Buffer: 2})
	if before != 0 {
		t.Fatal("unexpected objects")
	}
	for _, n := range []string{"a", "b", "c"} {
		n := n
		if err := s.Update(ctx, func(tx *Tx) error { return tx.Create(svc(n, n)) }); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	for len(seen) < 6 {
		ev := <-w.C
		if ev.Action == ActionCommit {
			seen = append(seen, "commit")
			continue
		}
		seen = append(seen, ev.Object.GetId())
	}
	want := []string{"a", "commit", "b", "commit", "c", "commit"}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("events %v, want %v", seen, want)
		}
	}
	for range slow.C { // drain until closed
	}
	if !errors.Is(slow.Err(), ErrSlowWatcher) {
		t.Fatalf("slow watcher ended with %v", slow.Err())
	}
}

func TestRestoreResetsWatchersAndReplacesState(t *testing.T) {
	s := newLocalStore()
	ctx := context.Background()
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Create(svc("a", "a")) }); err != nil {
		t.Fatal(err)
	}
	w := s.Watch(WatchOptions{})
	if err := s.Restore(100, []Object{svc("z", "z")}); err != nil {
		t.Fatal(err)
	}
	for range w.C {
	}
	if !errors.Is(w.Err(), ErrWatchReset) {
		t.Fatalf("watcher ended with %v", w.Err())
	}
	s.View(func(tx ReadTx) {
		if tx.Service("a") != nil || tx.Service("z") == nil {
			t.Fatal("restore did not replace the state")
		}
	})
	if s.Version() != 100 {
		t.Fatalf("version %d after restore", s.Version())
	}
}

// A watcher with commit events that is cut off in the middle of a
// transaction gets no commit event after its channel is closed (this used
// to panic the apply loop: "send on closed channel").
func TestSlowWatcherWithCommitsCutMidTransaction(t *testing.T) {
	s := newLocalStore()
	w := s.Watch(WatchOptions{Commits: true, Buffer: 2})
	err := s.Update(context.Background(), func(tx *Tx) error {
		for _, n := range []string{"a", "b", "c"} {
			if err := tx.Create(svc(n, n)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range w.C {
		n++
	}
	if n != 2 || !errors.Is(w.Err(), ErrSlowWatcher) {
		t.Fatalf("got %d events and %v, want 2 and ErrSlowWatcher", n, w.Err())
	}
	// The store goes on, and a new watch works.
	w2 := s.Watch(WatchOptions{Commits: true})
	defer w2.Close()
	if err := s.Update(context.Background(), func(tx *Tx) error { return tx.Create(svc("d", "d")) }); err != nil {
		t.Fatal(err)
	}
	if ev := <-w2.C; ev.Object.GetId() != "d" {
		t.Fatalf("event %+v", ev)
	}
}

// A watch filter that panics ends that watch with an error; the apply loop
// and the other watchers go on.
func TestPanickingWatchFilterEndsOnlyThatWatch(t *testing.T) {
	s := newLocalStore()
	bad := s.Watch(WatchOptions{Filter: func(Event) bool { panic("boom") }})
	good := s.Watch(WatchOptions{})
	defer good.Close()
	if err := s.Update(context.Background(), func(tx *Tx) error { return tx.Create(svc("a", "a")) }); err != nil {
		t.Fatal(err)
	}
	for range bad.C {
	}
	if !errdefs.IsInternal(bad.Err()) {
		t.Fatalf("bad watch ended with %v", bad.Err())
	}
	if ev := <-good.C; ev.Object.GetId() != "a" {
		t.Fatalf("event %+v", ev)
	}
}

// A task is only created for a service that exists when the transaction
// applies: a create decided before the service's removal committed fails
// whole, and leaves no orphan.
func TestTaskOfARemovedServiceIsNotCreated(t *testing.T) {
	s := newLocalStore()
	ctx := context.Background()
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Create(svc("s1", "web")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Create(&api.Task{Id: "t1", ServiceId: "s1"}) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Delete(tx.Service("s1")) }); err != nil {
		t.Fatal(err)
	}
	err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.Create(&api.Task{Id: "t2"}); err != nil { // no service: allowed
			return err
		}
		return tx.Create(&api.Task{Id: "t3", ServiceId: "s1"})
	})
	if !errdefs.IsNotFound(err) {
		t.Fatalf("create for a removed service: %v", err)
	}
	s.View(func(tx ReadTx) {
		if tx.Task("t2") != nil || tx.Task("t3") != nil {
			t.Fatal("the failed transaction left tasks behind")
		}
	})
}
