package raftstore

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// encodeTransaction encodes a transaction as proto's deterministic Marshal
// does, but encodes each task's spec, service annotations and endpoint once
// per message rather than once per task: the tasks of a service share them
// (CloneTask, Apply), and they are most of a task's bytes. The bytes are
// the same fields with those three after the task's others (protobuf
// allows any order; Apply's decoder and proto.Unmarshal read them alike).
type txEncoder struct {
	opts proto.MarshalOptions
	enc  map[proto.Message][]byte
	task []byte // scratch: one task's bytes
}

func encodeTransaction(actions []*api.StoreAction, unixNano int64) ([]byte, error) {
	e := &txEncoder{opts: proto.MarshalOptions{Deterministic: true}, enc: map[proto.Message][]byte{}}
	var out []byte
	for i, a := range actions {
		var err error
		if out, err = e.appendAction(out, a); err != nil {
			return nil, err
		}
		if i == 0 && len(actions) > 1 {
			// The actions of a batch are mostly alike: room for all.
			out = append(make([]byte, 0, len(out)*len(actions)+len(out)*len(actions)/8), out...)
		}
	}
	if unixNano != 0 {
		out = protowire.AppendTag(out, fTxUnixNano, protowire.VarintType)
		out = protowire.AppendVarint(out, uint64(unixNano))
	}
	return out, nil
}

// appendAction appends one action as a field of the transaction; its
// fields in number order, as Marshal puts them.
func (e *txEncoder) appendAction(out []byte, a *api.StoreAction) ([]byte, error) {
	t := a.GetObject().GetTask()
	if t == nil {
		b, err := e.opts.Marshal(a)
		if err != nil {
			return nil, err
		}
		out = protowire.AppendTag(out, fTxActions, protowire.BytesType)
		return protowire.AppendBytes(out, b), nil
	}
	tb, err := e.encodeTask(t)
	if err != nil {
		return nil, err
	}
	obj := protowire.SizeTag(fObjectTask) + protowire.SizeBytes(len(tb))
	size := protowire.SizeTag(fActionObject) + protowire.SizeBytes(obj)
	if a.Kind != 0 {
		size += protowire.SizeTag(fActionKind) + protowire.SizeVarint(uint64(a.Kind))
	}
	if a.ExpectedVersion != 0 {
		size += protowire.SizeTag(fActionExpected) + protowire.SizeVarint(a.ExpectedVersion)
	}
	out = protowire.AppendTag(out, fTxActions, protowire.BytesType)
	out = protowire.AppendVarint(out, uint64(size))
	if a.Kind != 0 {
		out = protowire.AppendTag(out, fActionKind, protowire.VarintType)
		out = protowire.AppendVarint(out, uint64(a.Kind))
	}
	out = protowire.AppendTag(out, fActionObject, protowire.BytesType)
	out = protowire.AppendVarint(out, uint64(obj))
	out = protowire.AppendTag(out, fObjectTask, protowire.BytesType)
	out = protowire.AppendBytes(out, tb)
	if a.ExpectedVersion != 0 {
		out = protowire.AppendTag(out, fActionExpected, protowire.VarintType)
		out = protowire.AppendVarint(out, a.ExpectedVersion)
	}
	return out, nil
}

// encodeTask returns t's bytes in e.task (valid until the next call).
func (e *txEncoder) encodeTask(t *api.Task) ([]byte, error) {
	var err error
	if len(t.ProtoReflect().GetUnknown()) > 0 {
		// Fields of a newer version, which withoutShared would drop.
		e.task, err = e.opts.MarshalAppend(e.task[:0], t)
		return e.task, err
	}
	e.task, err = e.opts.MarshalAppend(e.task[:0], withoutShared(t))
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		num protowire.Number
		m   proto.Message
	}{{fTaskSpec, orNil(t.Spec)}, {fTaskServiceAnns, orNil(t.ServiceAnnotations)}, {fTaskEndpoint, orNil(t.Endpoint)}} {
		if f.m == nil {
			continue
		}
		enc, ok := e.enc[f.m]
		if !ok {
			if enc, err = e.opts.Marshal(f.m); err != nil {
				return nil, err
			}
			e.enc[f.m] = enc
		}
		e.task = protowire.AppendTag(e.task, f.num, protowire.BytesType)
		e.task = protowire.AppendBytes(e.task, enc)
	}
	return e.task, nil
}

// withoutShared is t without its spec, service annotations and endpoint,
// sharing everything else (to be encoded, never stored).
// TestEncodeTransactionAsMarshal fails when a field is added to Task.
func withoutShared(t *api.Task) *api.Task {
	return &api.Task{
		Id:                 t.Id,
		Meta:               t.Meta,
		SpecVersion:        t.SpecVersion,
		ServiceId:          t.ServiceId,
		Slot:               t.Slot,
		NodeId:             t.NodeId,
		Annotations:        t.Annotations,
		Status:             t.Status,
		DesiredState:       t.DesiredState,
		Networks:           t.Networks,
		JobIteration:       t.JobIteration,
		LocalAddress:       t.LocalAddress,
		Restarts:           t.Restarts,
		RestartWindowStart: t.RestartWindowStart,
		ServiceRemoved:     t.ServiceRemoved,
	}
}
