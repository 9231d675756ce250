package raftstore

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// batchEntries is a run of transactions in which some fail a check after
// an earlier action of theirs wrote (so ApplyBatch must undo that write,
// indexes included), one does not decode, and one panics (poisonAt).
func batchEntries(t *testing.T) (entries []TxEntry, poisonAt uint64) {
	t.Helper()
	svc := func(id, name string) *api.Service {
		return &api.Service{Id: id, Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: name}}}
	}
	task := func(id, svcID, node string, slot uint64) *api.Task {
		return &api.Task{Id: id, ServiceId: svcID, NodeId: node, Slot: slot,
			DesiredState: api.TaskState_RUNNING, Status: &api.TaskStatus{State: api.TaskState_RUNNING}}
	}
	act := func(kind api.StoreAction_Kind, o Object) *api.StoreAction {
		return &api.StoreAction{Kind: kind, Object: Wrap(o)}
	}
	var index uint64 = 10
	add := func(actions ...*api.StoreAction) {
		t.Helper()
		tx, err := encodeTransaction(actions, time.Unix(1000, 0).UnixNano())
		if err != nil {
			t.Fatal(err)
		}
		index++
		entries = append(entries, TxEntry{Index: index, Payload: tx})
	}
	add(act(api.StoreAction_CREATE, svc("s1", "web")))
	add(act(api.StoreAction_CREATE, svc("s2", "db")))
	// Renames db, then fails: the name "web" is taken. db keeps its name.
	add(act(api.StoreAction_UPDATE, svc("s2", "cache")), act(api.StoreAction_CREATE, svc("s3", "web")))
	add(act(api.StoreAction_CREATE, task("t1", "s1", "n1", 1)), act(api.StoreAction_CREATE, task("t2", "s1", "n1", 2)))
	// Moves t1 to n2 and deletes t2, then fails: no such service. t1 stays
	// on n1 in every index and t2 stays.
	add(act(api.StoreAction_UPDATE, task("t1", "s1", "n2", 1)), act(api.StoreAction_DELETE, task("t2", "s1", "n1", 2)),
		act(api.StoreAction_DELETE, svc("s9", "none")))
	entries = append(entries, TxEntry{Index: index + 1, Payload: []byte{0xff, 0xff, 0xff, 0x01}}) // does not decode
	index++
	add(act(api.StoreAction_UPDATE, task("t1", "s1", "n3", 1)))
	poisonAt = index + 1
	add(act(api.StoreAction_CREATE, svc("s4", "poison")))
	// Stale expected version: a conflict after a create in the same
	// transaction.
	stale := act(api.StoreAction_UPDATE, svc("s1", "web2"))
	stale.ExpectedVersion = 1
	add(act(api.StoreAction_CREATE, svc("s5", "queue")), stale)
	add(act(api.StoreAction_DELETE, svc("s2", "db")), act(api.StoreAction_CREATE, svc("s6", "db")))
	return entries, poisonAt
}

// What a store looks like: every object, and the indexes by name, service
// and node.
func storeState(s *Store) string {
	out := ""
	objs, version := s.Objects()
	out += fmt.Sprintf("version %d\n", version)
	for _, o := range objs {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(o)
		out += fmt.Sprintf("%s %s %x\n", KindOf(o), o.GetId(), b)
	}
	s.View(func(tx ReadTx) {
		for _, name := range []string{"web", "db", "cache", "queue", "poison", "web2"} {
			if sv := tx.ServiceByName(name); sv != nil {
				out += fmt.Sprintf("name %s -> %s\n", name, sv.Id)
			}
		}
		for _, t := range tx.TasksByService("s1") {
			out += fmt.Sprintf("service s1: %s\n", t.Id)
		}
		for _, n := range []string{"n1", "n2", "n3"} {
			for _, t := range tx.TasksByNode(n) {
				out += fmt.Sprintf("node %s: %s\n", n, t.Id)
			}
		}
	})
	return out
}

func drainEvents(w *Watcher) []string {
	var out []string
	for {
		select {
		case ev := <-w.C:
			out = append(out, fmt.Sprintf("%d %v %s %s", ev.Version, ev.Action, ev.Kind, ev.Object.GetId()))
		case <-time.After(200 * time.Millisecond):
			return out
		}
	}
}

// ApplyBatch gives the same verdicts, contents, indexes and events as
// applying each transaction to a fork of its own (the way before batches),
// with transactions that fail a check after writing (undone in the batch's
// fork) and one that does not decode; and, when one transaction panics (a
// bug), the same again (the batch falls back to one fork each).
func TestApplyBatchMatchesOneByOne(t *testing.T) {
	for _, withPanic := range []bool{false, true} {
		t.Run(fmt.Sprint("panic=", withPanic), func(t *testing.T) {
			entries, poisonAt := batchEntries(t)
			wantErrs := []error{nil, nil, errdefs.ErrAlreadyExists, nil, errdefs.ErrNotFound, errdefs.ErrInternal, nil, nil, errdefs.ErrConflict, nil}
			batch, single := NewStore(nil), NewStore(nil)
			if withPanic {
				fault := func(index uint64) {
					if index == poisonAt {
						panic("a bug")
					}
				}
				batch.applyFault, single.applyFault = fault, fault
				wantErrs[7] = errdefs.ErrInternal
			}
			wb, ws := batch.Watch(WatchOptions{}), single.Watch(WatchOptions{})
			defer wb.Close()
			defer ws.Close()

			got := batch.ApplyBatch(entries)
			want := single.applyOneByOne(entries)
			for i := range entries {
				if (got[i] == nil) != (want[i] == nil) || (got[i] != nil && got[i].Error() != want[i].Error()) {
					t.Errorf("entry %d: ApplyBatch says %v, one by one %v", entries[i].Index, got[i], want[i])
				}
				if w := wantErrs[i]; (w == nil) != (got[i] == nil) || (w != nil && !errors.Is(got[i], w)) {
					t.Errorf("entry %d: got %v, want %v", entries[i].Index, got[i], w)
				}
			}
			if b, s := storeState(batch), storeState(single); b != s {
				t.Errorf("stores differ:\nbatch:\n%s\none by one:\n%s", b, s)
			}
			if b, s := fmt.Sprint(drainEvents(wb)), fmt.Sprint(drainEvents(ws)); b != s {
				t.Errorf("events differ:\nbatch: %s\none by one: %s", b, s)
			}
			// What both hold is what the checks allow.
			state := storeState(batch)
			for _, want := range []string{"name web -> s1", "name db -> s6", "node n3: t1", "service s1: t2"} {
				if !contains(state, want) {
					t.Errorf("store lacks %q:\n%s", want, state)
				}
			}
			unwanted := []string{"name cache", "node n2", "name queue", "web2"}
			if withPanic {
				unwanted = append(unwanted, "name poison")
			} else if !contains(state, "name poison") {
				t.Errorf("store lacks service poison:\n%s", state)
			}
			for _, u := range unwanted {
				if contains(state, u) {
					t.Errorf("store holds %q:\n%s", u, state)
				}
			}
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
