package raftstore

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	api "github.com/shoal-project/shoal/proto"
)

// Apply decodes a transaction one action at a time, against the store as
// the earlier actions left it, so that a task's copies of its service's
// spec, service annotations and endpoint (most of a task's bytes) need not
// be decoded: when such a field's bytes equal the deterministic encoding
// of the one shareTask would point it at (its previous version's, else its
// service's), the field is left out of the decode and the task points at
// that one. Equal bytes decode to equal content, so the result is the
// decode's, shared (share.go); every replica decodes the same bytes
// against the same state. A field whose bytes differ (another spec, or an
// encoding that is not deterministic) is decoded, and shareTask compares
// it as before.

// Field numbers the decoder reads, from the descriptors (a renumbering in
// the .proto files cannot go unnoticed).
var (
	fTxActions       = fieldNumber(&api.Transaction{}, "actions")
	fTxUnixNano      = fieldNumber(&api.Transaction{}, "unix_nano")
	fActionKind      = fieldNumber(&api.StoreAction{}, "kind")
	fActionObject    = fieldNumber(&api.StoreAction{}, "object")
	fActionExpected  = fieldNumber(&api.StoreAction{}, "expected_version")
	fObjectTask      = fieldNumber(&api.StoreObject{}, "task")
	fTaskID          = fieldNumber(&api.Task{}, "id")
	fTaskServiceID   = fieldNumber(&api.Task{}, "service_id")
	fTaskSpec        = fieldNumber(&api.Task{}, "spec")
	fTaskServiceAnns = fieldNumber(&api.Task{}, "service_annotations")
	fTaskEndpoint    = fieldNumber(&api.Task{}, "endpoint")
)

func fieldNumber(m proto.Message, name string) protowire.Number {
	f := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name))
	if f == nil {
		panic(fmt.Sprintf("raftstore: %s has no field %s", m.ProtoReflect().Descriptor().FullName(), name))
	}
	return f.Number()
}

// wireField is one field of an encoded message: its number and type, its
// value's bytes (without tag and length) and where the whole field lies.
type wireField struct {
	num        protowire.Number
	typ        protowire.Type
	val        []byte
	start, end int
}

// wireFields splits an encoded message into its fields, checking the tags
// and lengths as proto.Unmarshal does; fn is called for each.
func wireFields(b []byte, fn func(wireField)) error {
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[off+n:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		f := wireField{num: num, typ: typ, start: off, end: off + n + m}
		switch typ {
		case protowire.BytesType:
			f.val, _ = protowire.ConsumeBytes(b[off+n:])
		case protowire.VarintType:
			f.val = b[off+n : off+n+m]
		}
		fn(f)
		off = f.end
	}
	return nil
}

func varint(f wireField) uint64 {
	v, _ := protowire.ConsumeVarint(f.val)
	return v
}

// splitTransaction returns the encoded actions of an encoded
// api.Transaction and its time. Unknown fields are skipped, as
// proto.Unmarshal keeps them aside.
func splitTransaction(b []byte) (actions [][]byte, unixNano int64, err error) {
	err = wireFields(b, func(f wireField) {
		switch {
		case f.num == fTxActions && f.typ == protowire.BytesType:
			actions = append(actions, f.val)
		case f.num == fTxUnixNano && f.typ == protowire.VarintType:
			unixNano = int64(varint(f))
		}
	})
	return actions, unixNano, err
}

// taskCandidates returns what a task written by an action of kind shares
// with: its previous version (an update) and its service (a create), as
// applyAction passes them to shareTask. Either may be nil.
type taskCandidates func(kind api.StoreAction_Kind, id, serviceID string) (*api.Task, *api.Service)

// decodeAction decodes one encoded api.StoreAction. An action that writes
// a task (the common one, in one plain field) has its task decoded by
// decodeTask; any other is decoded by proto.Unmarshal.
func (sh *sharer) decodeAction(b []byte, cands taskCandidates) (*api.StoreAction, error) {
	a := &api.StoreAction{}
	var object []byte
	objects := 0
	if err := wireFields(b, func(f wireField) {
		switch {
		case f.num == fActionKind && f.typ == protowire.VarintType:
			a.Kind = api.StoreAction_Kind(int32(varint(f)))
		case f.num == fActionExpected && f.typ == protowire.VarintType:
			a.ExpectedVersion = varint(f)
		case f.num == fActionObject && f.typ == protowire.BytesType:
			object = f.val
			objects++
		default:
			objects = -1 // an unknown field: proto.Unmarshal keeps it
		}
	}); err != nil {
		return nil, err
	}
	var task []byte
	if objects == 1 && object != nil {
		var err error
		if task, err = soleTask(object); err != nil {
			return nil, err
		}
	}
	if task == nil {
		a.Reset()
		if err := proto.Unmarshal(b, a); err != nil {
			return nil, err
		}
		return a, nil
	}
	t, err := sh.decodeTask(task, a.Kind, cands)
	if err != nil {
		return nil, err
	}
	a.Object = &api.StoreObject{Object: &api.StoreObject_Task{Task: t}}
	return a, nil
}

// soleTask returns the encoded task of an encoded api.StoreObject that
// holds a task and no other field, nil for any other object.
func soleTask(object []byte) ([]byte, error) {
	var task []byte
	fields := 0
	if err := wireFields(object, func(f wireField) {
		fields++
		if f.num == fObjectTask && f.typ == protowire.BytesType {
			task = f.val
		}
	}); err != nil {
		return nil, err
	}
	if fields != 1 {
		return nil, nil
	}
	return task, nil
}

// decodeTask decodes an encoded api.Task, leaving out the spec, service
// annotations and endpoint whose bytes equal a candidate's encoding and
// pointing the task at that candidate instead.
func (sh *sharer) decodeTask(b []byte, kind api.StoreAction_Kind, cands taskCandidates) (*api.Task, error) {
	var id, serviceID []byte
	var spec, anns, endpoint wireField
	var seen [3]int // spec, anns, endpoint
	if err := wireFields(b, func(f wireField) {
		switch {
		case f.typ != protowire.BytesType:
		case f.num == fTaskID:
			id = f.val
		case f.num == fTaskServiceID:
			serviceID = f.val
		case f.num == fTaskSpec:
			spec = f
			seen[0]++
		case f.num == fTaskServiceAnns:
			anns = f
			seen[1]++
		case f.num == fTaskEndpoint:
			endpoint = f
			seen[2]++
		}
	}); err != nil {
		return nil, err
	}
	prev, svc := cands(kind, string(id), string(serviceID))
	if prev != nil && prev.ServiceId != string(serviceID) {
		prev = nil
	}
	// A field that occurs more than once is merged by the decode: left to it.
	match := func(f wireField, n int, a, b proto.Message) proto.Message {
		if n != 1 {
			return nil
		}
		for _, c := range [2]proto.Message{a, b} {
			if c != nil && bytes.Equal(f.val, sh.encoding(c)) {
				return c
			}
		}
		return nil
	}
	sharedSpec := match(spec, seen[0], orNil(prev.GetSpec()), orNil(svc.GetSpec().GetTask()))
	sharedAnns := match(anns, seen[1], orNil(prev.GetServiceAnnotations()), orNil(svc.GetSpec().GetAnnotations()))
	sharedEndpoint := match(endpoint, seen[2], orNil(prev.GetEndpoint()), orNil(svc.GetEndpoint()))

	rest := b
	var cuts []wireField
	for _, c := range []struct {
		f wireField
		m proto.Message
	}{{spec, sharedSpec}, {anns, sharedAnns}, {endpoint, sharedEndpoint}} {
		if c.m != nil {
			cuts = append(cuts, c.f)
		}
	}
	if len(cuts) > 0 {
		sortFields(cuts)
		sh.scratch = sh.scratch[:0]
		from := 0
		for _, c := range cuts {
			sh.scratch = append(sh.scratch, b[from:c.start]...)
			from = c.end
		}
		rest = append(sh.scratch, b[from:]...)
		sh.scratch = rest
	}
	t := &api.Task{}
	if err := proto.Unmarshal(rest, t); err != nil {
		return nil, err
	}
	if sharedSpec != nil {
		t.Spec = sharedSpec.(*api.TaskSpec)
	}
	if sharedAnns != nil {
		t.ServiceAnnotations = sharedAnns.(*api.Annotations)
	}
	if sharedEndpoint != nil {
		t.Endpoint = sharedEndpoint.(*api.Endpoint)
	}
	return t, nil
}

// orNil turns a typed nil into an untyped one: no candidate.
func orNil[M interface {
	comparable
	proto.Message
}](m M) proto.Message {
	var zero M
	if m == zero {
		return nil
	}
	return m
}

// sortFields orders at most three fields by position.
func sortFields(fs []wireField) {
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && fs[j].start < fs[j-1].start; j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
}
