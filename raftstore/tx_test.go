package raftstore

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"
	"unsafe"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func ids[T Object](objs []T) string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetId())
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// An Update callback reads its own writes, by ID and by every index, in
// whatever order it mixes reads and writes (its writes reach its private
// trees only when an index read needs them).
func TestTxReadsItsOwnWrites(t *testing.T) {
	s := newLocalStore()
	ctx := context.Background()
	if err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.Create(svc("s1", "web")); err != nil {
			return err
		}
		return tx.Create(&api.Task{Id: "t0", ServiceId: "s1", NodeId: "n1", Slot: 1})
	}); err != nil {
		t.Fatal(err)
	}
	err := s.Update(ctx, func(tx *Tx) error {
		t0 := tx.Task("t0")
		for _, tk := range []*api.Task{{Id: "t1", ServiceId: "s1", NodeId: "n1", Slot: 2}, {Id: "t2", ServiceId: "s1", NodeId: "n2", Slot: 2}} {
			if err := tx.Create(tk); err != nil {
				return err
			}
		}
		if tx.Task("t1") == nil || tx.Get(KindTask, "t2") == nil {
			t.Error("created tasks not seen by ID")
		}
		if got := ids(tx.TasksByService("s1")); got != "t0,t1,t2" {
			t.Errorf("TasksByService = %s", got)
		}
		// Writes after an index read, then reads again.
		moved := &api.Task{Id: "t0", ServiceId: "s1", NodeId: "n2", Slot: 1, Meta: t0.Meta}
		if err := tx.Update(moved); err != nil {
			return err
		}
		if err := tx.Delete(tx.Task("t1")); err != nil {
			return err
		}
		if tx.Task("t1") != nil || tx.Task("t0").NodeId != "n2" {
			t.Error("update or delete not seen by ID")
		}
		if got := ids(tx.TasksByNode("n2")); got != "t0,t2" {
			t.Errorf("TasksByNode(n2) = %s", got)
		}
		if got := ids(tx.TasksByNode("n1")); got != "" {
			t.Errorf("TasksByNode(n1) = %s", got)
		}
		if got := ids(tx.TasksBySlot("s1", 2)); got != "t2" {
			t.Errorf("TasksBySlot(s1, 2) = %s", got)
		}
		// Created and deleted with no read between, then created again.
		if err := tx.Create(&api.Task{Id: "t3", ServiceId: "s1"}); err != nil {
			return err
		}
		if err := tx.Delete(tx.Task("t3")); err != nil {
			return err
		}
		if tx.Task("t3") != nil || ids(tx.Tasks()) != "t0,t2" {
			t.Errorf("t3 created and deleted: tasks %s", ids(tx.Tasks()))
		}
		// Unique names see unflushed writes.
		if err := tx.Create(svc("s2", "api")); err != nil {
			return err
		}
		if err := tx.Create(svc("s3", "api")); !errdefs.IsAlreadyExists(err) {
			t.Errorf("second service named api: %v", err)
		}
		if tx.ServiceByName("api").GetId() != "s2" {
			t.Error("service by name not seen")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx ReadTx) {
		if got := ids(tx.Tasks()); got != "t0,t2" {
			t.Errorf("applied tasks %s", got)
		}
		if tx.Task("t0").NodeId != "n2" || tx.ServiceByName("api") == nil {
			t.Error("applied state wrong")
		}
	})
}

// An Update callback holds no lock of the store: another write commits
// while it runs, and the first one, built on the older state, still
// commits when it touches other objects (it used to hold memdb's writer
// lock, and the second write waited for it).
func TestUpdateCallbackDoesNotBlockWrites(t *testing.T) {
	s := newLocalStore()
	ctx := context.Background()
	err := s.Update(ctx, func(tx *Tx) error {
		done := make(chan error, 1)
		go func() { done <- s.Update(ctx, func(tx *Tx) error { return tx.Create(svc("other", "other")) }) }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("concurrent write: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a write waited for another Update's callback")
		}
		return tx.Create(svc("mine", "mine"))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx ReadTx) {
		if tx.Service("other") == nil || tx.Service("mine") == nil {
			t.Fatal("a write is missing")
		}
	})
}

// Tasks created from their service's spec share one spec, annotations and
// endpoint with it in the store, through creates, status updates and a
// restore from a snapshot; a task whose spec differs keeps its own.
func TestTasksShareTheirServicesSpec(t *testing.T) {
	s := newLocalStore()
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	sv := benchService(1)
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Create(sv) }); err != nil {
		t.Fatal(err)
	}
	odd := benchTask(sv, 3, now)
	odd.Spec.Container.Image = "other"
	if err := s.Update(ctx, func(tx *Tx) error {
		for _, tk := range []*api.Task{benchTask(sv, 1, now), benchTask(sv, 2, now), odd} {
			if err := tx.Create(tk); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check := func(when string, s *Store) {
		t.Helper()
		s.View(func(tx ReadTx) {
			stored := tx.Service(sv.Id)
			ts := tx.TasksByService(sv.Id)
			sort.Slice(ts, func(i, j int) bool { return ts[i].Slot < ts[j].Slot })
			for _, tk := range ts[:2] {
				if tk.Spec != stored.Spec.Task || tk.ServiceAnnotations != stored.Spec.Annotations || tk.Endpoint != stored.Endpoint {
					t.Errorf("%s: task %d does not share its service's spec, annotations and endpoint", when, tk.Slot)
				}
			}
			if ts[2].Spec == stored.Spec.Task || ts[2].Spec.Container.Image != "other" {
				t.Errorf("%s: the task with another spec shares the service's", when)
			}
		})
	}
	check("created", s)
	if err := s.Update(ctx, func(tx *Tx) error {
		for _, tk := range tx.Tasks() {
			if err := tx.Update(running(tk, "node1", now)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check("updated", s)
	check("restored", restoredCopy(t, s))
}

// sameAnnotations and sameTimestamp compare fields by hand: they must know
// every field of their message.
func TestShareComparesEveryField(t *testing.T) {
	for _, c := range []struct {
		m      proto.Message
		fields int
	}{{&api.Annotations{}, 2}, {&timestamppb.Timestamp{}, 2}} {
		if n := c.m.ProtoReflect().Descriptor().Fields().Len(); n != c.fields {
			t.Errorf("%s has %d fields, share.go compares %d: update it", c.m.ProtoReflect().Descriptor().FullName(), n, c.fields)
		}
	}
	a := &api.Annotations{Name: "a", Labels: map[string]string{"k": "v"}}
	for _, b := range []*api.Annotations{{Name: "b", Labels: a.Labels}, {Name: "a"}, {Name: "a", Labels: map[string]string{"k": "w"}}} {
		if sameAnnotations(a, b) {
			t.Errorf("%v and %v compare equal", a, b)
		}
	}
	if !sameAnnotations(a, &api.Annotations{Name: "a", Labels: map[string]string{"k": "v"}}) || !sameAnnotations(&api.Annotations{}, &api.Annotations{Labels: map[string]string{}}) {
		t.Error("equal annotations compare different")
	}
	if sameTimestamp(&timestamppb.Timestamp{Seconds: 1}, &timestamppb.Timestamp{Seconds: 1, Nanos: 1}) {
		t.Error("different timestamps compare equal")
	}
}

// A stored task's node ID is its node's ID bytes, as created on the node,
// as assigned to it later and after a restore; a node that is not in the
// store leaves the task's own copy.
func TestTasksShareTheirNodesID(t *testing.T) {
	s := newLocalStore()
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	sv := benchService(1)
	nodeID := strings.Repeat("n", 25)
	if err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.Create(sv); err != nil {
			return err
		}
		return tx.Create(&api.Node{Id: nodeID})
	}); err != nil {
		t.Fatal(err)
	}
	placed := benchTask(sv, 1, now)
	placed.NodeId = strings.Clone(nodeID)
	pending := benchTask(sv, 2, now)
	nowhere := benchTask(sv, 3, now)
	nowhere.NodeId = "gone"
	if err := s.Update(ctx, func(tx *Tx) error {
		for _, tk := range []*api.Task{placed, pending, nowhere} {
			if err := tx.Create(tk); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Update(running(tx.Task(pending.Id), strings.Clone(nodeID), now)) }); err != nil {
		t.Fatal(err)
	}
	check := func(when string, s *Store) {
		t.Helper()
		s.View(func(tx ReadTx) {
			node := unsafe.StringData(tx.Node(nodeID).Id)
			for _, id := range []string{placed.Id, pending.Id} {
				if tk := tx.Task(id); tk.NodeId != nodeID || unsafe.StringData(tk.NodeId) != node {
					t.Errorf("%s: task %s's node ID %q is not its node's bytes", when, id, tk.NodeId)
				}
			}
			if tk := tx.Task(nowhere.Id); tk.NodeId != "gone" {
				t.Errorf("%s: a task on an unknown node has node ID %q", when, tk.NodeId)
			}
			if got := len(tx.TasksByNode(nodeID)); got != 2 {
				t.Errorf("%s: %d tasks by node, want 2", when, got)
			}
		})
	}
	check("applied", s)
	check("restored", restoredCopy(t, s))
}

// restoredCopy is a new store restored from copies of s's objects, as from
// a snapshot; its hash must be s's.
func restoredCopy(t *testing.T, s *Store) *Store {
	t.Helper()
	objs, version := s.Objects()
	var copies []Object
	for _, o := range objs {
		copies = append(copies, proto.Clone(o).(Object))
	}
	r := newLocalStore()
	if err := r.Restore(version, copies); err != nil {
		t.Fatal(err)
	}
	if r.Hash() != s.Hash() {
		t.Error("restored store's hash differs")
	}
	return r
}
