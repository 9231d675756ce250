package raftstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// snapshotData encodes objs and members as maybeSnapshot does.
func snapshotData(t testing.TB, objs []Object, members ...*api.RaftMember) []byte {
	snap := &api.StoreSnapshot{Version: snapshotVersion, Members: members, RemovedMembers: []uint64{9}}
	for _, o := range objs {
		snap.Objects = append(snap.Objects, Wrap(o))
	}
	raw, err := proto.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	return encodeSnapshotData(raw)
}

// decodeBothWays decodes data with DecodeSnapshot and with
// DecodeSnapshotObjects, and fails unless both give the same objects.
func decodeBothWays(t *testing.T, data []byte) (want, snap *api.StoreSnapshot, got []Object) {
	t.Helper()
	want, err := DecodeSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	snap, got, err = DecodeSnapshotObjects(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want.Objects) {
		t.Fatalf("%d objects, want %d", len(got), len(want.Objects))
	}
	for i, so := range want.Objects {
		if !proto.Equal(Unwrap(so), got[i]) {
			t.Fatalf("object %d: %v, want %v", i, got[i], Unwrap(so))
		}
	}
	return want, snap, got
}

// DecodeSnapshotObjects gives what DecodeSnapshot and Unwrap give: the
// same members and objects, and a restored store with the same hash; its
// tasks share their service's spec where the bytes are equal (a task of
// an older spec and a service updated after its tasks included).
func TestDecodeSnapshotObjectsMatchesUnmarshal(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	src := NewStandaloneStore(nil)
	fillStore(t, src, 3, 50)
	older := benchService(0)
	older.Spec.Task.Container.Args = []string{"an", "older", "spec"}
	if err := src.Update(ctx, func(tx *Tx) error {
		if err := tx.Create(benchTask(older, 51, now)); err != nil { // a task of an older spec of service 0
			return err
		}
		cur := tx.Service(benchService(1).Id)
		up := proto.Clone(cur).(*api.Service)
		up.Spec.Task.Container.Image = "127.0.0.1:5000/other:2" // tasks of the old spec remain
		return tx.Update(up)
	}); err != nil {
		t.Fatal(err)
	}
	objs, version := src.Objects()
	data := snapshotData(t, objs, &api.RaftMember{RaftId: 1, NodeId: "n1", Addr: "127.0.0.1:1"})

	want, snap, got := decodeBothWays(t, data)
	if len(snap.Objects) != 0 || !proto.Equal(snap.Members[0], want.Members[0]) || snap.RemovedMembers[0] != 9 {
		t.Fatalf("snapshot fields: %v", snap)
	}
	a, b := NewStandaloneStore(nil), NewStandaloneStore(nil)
	var plain []Object
	for _, so := range want.Objects {
		plain = append(plain, Unwrap(so))
	}
	if err := a.Restore(version, plain); err != nil {
		t.Fatal(err)
	}
	if err := b.Restore(version, got); err != nil {
		t.Fatal(err)
	}
	if a.Hash() != b.Hash() || a.Hash() != src.Hash() {
		t.Fatal("the restored stores differ")
	}
	shared := 0
	b.View(func(tx ReadTx) {
		s2 := tx.Service(benchService(2).Id)
		for _, task := range tx.TasksByService(s2.Id) {
			if task.Spec == s2.Spec.Task {
				shared++
			}
		}
	})
	if shared != 50 {
		t.Fatalf("%d of service 2's 50 tasks share its spec", shared)
	}
}

// A wrong version and an empty object are refused, as by restoreSnapshot
// before.
func TestDecodeSnapshotObjectsRefusesBadData(t *testing.T) {
	raw, _ := proto.Marshal(&api.StoreSnapshot{Version: snapshotVersion + 1})
	if _, _, err := DecodeSnapshotObjects(raw); err == nil {
		t.Fatal("a snapshot of another format was accepted")
	}
	raw, _ = proto.Marshal(&api.StoreSnapshot{Version: snapshotVersion, Objects: []*api.StoreObject{{}}})
	if _, _, err := DecodeSnapshotObjects(raw); err == nil {
		t.Fatal("an empty object was accepted")
	}
	if _, _, err := DecodeSnapshotObjects([]byte{0x0a, 0x05, 0x01}); err == nil {
		t.Fatal("a truncated snapshot was accepted")
	}
}

// Tasks whose specs all differ (more than sharerEncodings of them) decode
// as proto.Unmarshal decodes them, the sharer's encodings cleared on the
// way rather than kept for every task.
func TestDecodeSnapshotObjectsTasksOfDistinctSpecs(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	sv := benchService(0)
	objs := []Object{sv}
	for i := range sharerEncodings + 100 {
		task := benchTask(sv, i+1, now)
		spec := proto.Clone(task.Spec).(*api.TaskSpec)
		spec.Container.Args = []string{"sleep", fmt.Sprint(i)}
		task.Spec = spec
		objs = append(objs, task)
	}
	data := snapshotData(t, objs)
	decodeBothWays(t, data)
}
