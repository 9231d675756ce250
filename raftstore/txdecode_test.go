package raftstore

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// decodeAction decodes every action as proto.Unmarshal does, whatever the
// bytes (a field twice, unknown fields, other kinds, a spec that differs),
// and leaves out of the decode exactly the fields whose bytes equal a
// candidate's encoding, pointing the task at the candidate.
func TestDecodeActionAsUnmarshal(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	sv := benchService(1)
	prev := running(benchTask(sv, 1, now), "node1", now)
	det := proto.MarshalOptions{Deterministic: true}
	enc := func(m proto.Message) []byte {
		b, err := det.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	action := func(kind api.StoreAction_Kind, o Object) []byte {
		return enc(&api.StoreAction{Kind: kind, Object: Wrap(o), ExpectedVersion: 7})
	}
	// taskAction wraps encoded task bytes in an action, by hand.
	taskAction := func(kind api.StoreAction_Kind, task []byte) []byte {
		obj := protowire.AppendTag(nil, fObjectTask, protowire.BytesType)
		obj = protowire.AppendBytes(obj, task)
		b := protowire.AppendTag(nil, fActionKind, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(kind))
		b = protowire.AppendTag(b, fActionObject, protowire.BytesType)
		return protowire.AppendBytes(b, obj)
	}
	appendField := func(b []byte, num protowire.Number, m proto.Message) []byte {
		b = protowire.AppendTag(append([]byte(nil), b...), num, protowire.BytesType)
		return protowire.AppendBytes(b, enc(m))
	}
	fresh := benchTask(sv, 2, now)
	other := benchTask(sv, 3, now)
	other.Spec.Container.Image = "other"
	update := running(prev, "node2", now)
	// The spec twice: a partial one, then the service's; the decode
	// merges them (the hostname stays).
	partial := &api.TaskSpec{Container: &api.ContainerSpec{Image: "merged", Hostname: "kept"}}
	bare := proto.Clone(fresh).(*api.Task)
	bare.Spec = nil
	twice := appendField(appendField(enc(bare), fTaskSpec, partial), fTaskSpec, sv.Spec.Task)
	withUnknown := protowire.AppendVarint(protowire.AppendTag(action(api.StoreAction_CREATE, fresh), 99, protowire.VarintType), 1)
	unknownInTask := append(enc(fresh), protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 5)...)

	for _, c := range []struct {
		name   string
		b      []byte
		shared []string // which of spec, anns, endpoint point at a candidate
	}{
		{"create of the service's spec", action(api.StoreAction_CREATE, fresh), []string{"spec", "anns", "endpoint"}},
		{"create of another spec", action(api.StoreAction_CREATE, other), []string{"anns", "endpoint"}},
		{"update of the previous version", action(api.StoreAction_UPDATE, update), []string{"spec", "anns", "endpoint"}},
		{"spec twice: merged", taskAction(api.StoreAction_CREATE, twice), []string{"anns", "endpoint"}},
		{"unknown field in the action", withUnknown, nil},
		{"unknown field in the task", taskAction(api.StoreAction_CREATE, unknownInTask), []string{"spec", "anns", "endpoint"}},
		{"a service", action(api.StoreAction_UPDATE, sv), nil},
		{"a delete", action(api.StoreAction_DELETE, prev), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			stored := proto.Clone(prev).(*api.Task)
			service := proto.Clone(sv).(*api.Service)
			cands := func(kind api.StoreAction_Kind, id, serviceID string) (*api.Task, *api.Service) {
				switch kind {
				case api.StoreAction_CREATE:
					return nil, service
				case api.StoreAction_UPDATE:
					return stored, nil
				}
				return nil, nil
			}
			got, err := newSharer().decodeAction(c.b, cands)
			if err != nil {
				t.Fatal(err)
			}
			var want api.StoreAction
			if err := proto.Unmarshal(c.b, &want); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, &want) {
				t.Fatalf("decoded\n%v\nwant\n%v", got, &want)
			}
			task := got.GetObject().GetTask()
			if task == nil {
				return
			}
			points := map[string]bool{
				"spec":     task.Spec == stored.Spec || task.Spec == service.Spec.Task,
				"anns":     task.ServiceAnnotations == stored.ServiceAnnotations || task.ServiceAnnotations == service.Spec.Annotations,
				"endpoint": task.Endpoint == stored.Endpoint || task.Endpoint == service.Endpoint,
			}
			want2 := map[string]bool{}
			for _, f := range c.shared {
				want2[f] = true
			}
			for f, p := range points {
				if p != want2[f] {
					t.Errorf("%s points at a candidate: %v, want %v", f, p, want2[f])
				}
			}
		})
	}
}

// A transaction that does not decode is refused in Apply as before, also
// when the damage is inside a task.
func TestApplyRefusesUndecodableTasks(t *testing.T) {
	s := newLocalStore()
	sv := benchService(1)
	if err := s.Apply(1, mustMarshal(t, &api.Transaction{Actions: []*api.StoreAction{{Object: Wrap(sv)}}})); err != nil {
		t.Fatal(err)
	}
	task := mustMarshal(t, benchTask(sv, 1, time.Unix(1_800_000_000, 0)))
	obj := protowire.AppendBytes(protowire.AppendTag(nil, fObjectTask, protowire.BytesType), task[:len(task)-3])
	action := protowire.AppendBytes(protowire.AppendTag(nil, fActionObject, protowire.BytesType), obj)
	tx := protowire.AppendBytes(protowire.AppendTag(nil, fTxActions, protowire.BytesType), action)
	if err := s.Apply(2, tx); err == nil {
		t.Fatal("a cut task applied")
	}
	s.View(func(tx ReadTx) {
		if n := len(tx.Tasks()); n != 0 {
			t.Fatalf("%d tasks stored", n)
		}
	})
	if s.Version() != 2 {
		t.Fatalf("version %d after a refused entry, want 2", s.Version())
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// encodeTransaction's bytes decode, by proto.Unmarshal and by Apply's
// decoder, to the transaction given: every field of a task (all set here),
// other kinds of objects, a task with fields of a newer version.
func TestEncodeTransactionAsMarshal(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	sv := benchService(1)
	full := running(benchTask(sv, 1, now), "node1", now)
	full.Meta = &api.Meta{Version: 3}
	full.Annotations = &api.Annotations{Name: "t", Labels: map[string]string{"a": "b"}}
	full.Networks = []*api.NetworkAttachment{{}}
	full.JobIteration, full.LocalAddress, full.Restarts, full.ServiceRemoved = 2, "10.0.0.1", 4, true
	fields := full.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if !full.ProtoReflect().Has(fields.Get(i)) {
			t.Fatalf("the test leaves %s unset: set it", fields.Get(i).Name())
		}
	}
	sibling := CloneTask(full) // shares the spec: encoded once
	sibling.Id = "sibling"
	newer := benchTask(sv, 2, now)
	newer.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 5))
	bare := &api.Task{Id: "bare", Spec: &api.TaskSpec{}}
	in := &api.Transaction{UnixNano: now.UnixNano(), Actions: []*api.StoreAction{
		{Kind: api.StoreAction_UPDATE, Object: Wrap(full), ExpectedVersion: 3},
		{Kind: api.StoreAction_UPDATE, Object: Wrap(sibling), ExpectedVersion: 3},
		{Kind: api.StoreAction_CREATE, Object: Wrap(newer)},
		{Kind: api.StoreAction_CREATE, Object: Wrap(bare)},
		{Kind: api.StoreAction_DELETE, Object: Wrap(sv), ExpectedVersion: 1},
	}}
	b, err := encodeTransaction(in.Actions, in.UnixNano)
	if err != nil {
		t.Fatal(err)
	}
	var out api.Transaction
	if err := proto.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&out, in) {
		t.Fatalf("decoded\n%v\nwant\n%v", &out, in)
	}
	actions, unixNano, err := splitTransaction(b)
	if err != nil || unixNano != in.UnixNano || len(actions) != len(in.Actions) {
		t.Fatalf("split: %d actions, time %d, %v", len(actions), unixNano, err)
	}
	sh := newSharer()
	for i, ab := range actions {
		a, err := sh.decodeAction(ab, func(api.StoreAction_Kind, string, string) (*api.Task, *api.Service) { return full, sv })
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(a, in.Actions[i]) {
			t.Errorf("action %d decoded\n%v\nwant\n%v", i, a, in.Actions[i])
		}
	}
}

// FuzzDecodeAction: on any bytes, Apply's decoder agrees with
// proto.Unmarshal: both refuse them, or both give equal actions.
func FuzzDecodeAction(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	sv := benchService(1)
	prev := running(benchTask(sv, 1, now), "node1", now)
	for _, a := range []*api.StoreAction{
		{Kind: api.StoreAction_CREATE, Object: Wrap(benchTask(sv, 2, now))},
		{Kind: api.StoreAction_UPDATE, Object: Wrap(running(prev, "node2", now)), ExpectedVersion: 4},
		{Kind: api.StoreAction_DELETE, Object: Wrap(sv)},
	} {
		b, err := encodeTransaction([]*api.StoreAction{a}, 0)
		if err != nil {
			f.Fatal(err)
		}
		actions, _, _ := splitTransaction(b)
		f.Add(actions[0])
	}
	cands := func(kind api.StoreAction_Kind, id, serviceID string) (*api.Task, *api.Service) { return prev, sv }
	f.Fuzz(func(t *testing.T, data []byte) {
		var want api.StoreAction
		wantErr := proto.Unmarshal(data, &want)
		got, err := newSharer().decodeAction(data, cands)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("decodeAction error %v, proto.Unmarshal error %v", err, wantErr)
		}
		if err == nil && !proto.Equal(got, &want) {
			t.Fatalf("decoded\n%v\nwant\n%v", got, &want)
		}
	})
}
