package raftstore

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// fSnapObjects is StoreSnapshot.objects' field number.
var fSnapObjects = fieldNumber(&api.StoreSnapshot{}, "objects")

// sharerEncodings bounds the candidate encodings DecodeSnapshotObjects
// keeps (one per distinct spec, annotations or endpoint met: a handful per
// service, unless tasks carry specs of their own).
const sharerEncodings = 4096

// DecodeSnapshotObjects decodes snapshot data as DecodeSnapshot does, but
// returns its objects apart (the snapshot's Objects left empty), decoding
// the tasks as Apply does (txdecode.go): a task's spec, service
// annotations and endpoint whose bytes equal those of the last task of its
// service before it in the snapshot, or of its service, are not decoded
// but point at that one. A million tasks of a few services so cost a
// million small decodes, not a million decodes of the same spec, and the
// result is the one proto.Unmarshal and shareRestored give
// (TestDecodeSnapshotObjectsMatchesUnmarshal). Services come before tasks
// in a snapshot (Kinds' order); a task met before its service is decoded
// against its predecessors only.
func DecodeSnapshotObjects(data []byte) (*api.StoreSnapshot, []Object, error) {
	raw, err := decodeSnapshotData(data)
	if err != nil {
		return nil, nil, err
	}
	var rest []byte // the snapshot's fields but its objects
	var objects [][]byte
	if err := wireFields(raw, func(f wireField) {
		if f.num == fSnapObjects && f.typ == protowire.BytesType {
			objects = append(objects, f.val)
			return
		}
		rest = append(rest, raw[f.start:f.end]...)
	}); err != nil {
		return nil, nil, fmt.Errorf("decode: %w", err)
	}
	snap := &api.StoreSnapshot{}
	if err := proto.Unmarshal(rest, snap); err != nil {
		return nil, nil, fmt.Errorf("decode: %w", err)
	}
	if err := checkSnapshotVersion(snap.Version); err != nil {
		return nil, nil, err
	}
	services := map[string]*api.Service{}
	last := map[string]*api.Task{}
	cands := func(_ api.StoreAction_Kind, _, serviceID string) (*api.Task, *api.Service) {
		return last[serviceID], services[serviceID]
	}
	sh := newSharer()
	objs := make([]Object, 0, len(objects))
	for i, b := range objects {
		task, err := soleTask(b)
		if err != nil {
			return nil, nil, fmt.Errorf("decode: object %d: %w", i, err)
		}
		var o Object
		if task != nil {
			if len(sh.enc) > sharerEncodings {
				clear(sh.enc) // tasks whose specs all differ: re-encode rather than hold them all
			}
			t, err := sh.decodeTask(task, api.StoreAction_CREATE, cands)
			if err != nil {
				return nil, nil, fmt.Errorf("decode: object %d: %w", i, err)
			}
			if t.ServiceId != "" {
				last[t.ServiceId] = t
			}
			o = t
		} else {
			so := &api.StoreObject{}
			if err := proto.Unmarshal(b, so); err != nil {
				return nil, nil, fmt.Errorf("decode: object %d: %w", i, err)
			}
			if o = Unwrap(so); o == nil {
				return nil, nil, fmt.Errorf("object %d is empty", i)
			}
			if s, ok := o.(*api.Service); ok {
				services[s.Id] = s
			}
		}
		objs = append(objs, o)
	}
	return snap, objs, nil
}
