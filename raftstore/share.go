package raftstore

import (
	"bytes"
	"maps"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/shoal-project/shoal/proto"
)

// Stored objects are shared and never modified (doc.go), so equal
// sub-messages can be one: the tasks of a service all carry a copy of its
// task spec, annotations and endpoint (the orchestrator clones them), and a
// task's status updates repeat the rest. Apply and Restore point a task's
// copies at the equal ones the store already holds — its previous
// version's, else its service's — so 1,000 tasks of a service hold one
// spec, and the decoded copies are garbage. Only pointers change: the
// content, hence every replica's state and Hash, is the same.

// shareTask points t's spec, service annotations and endpoint at prev's
// (t's previous version, or another task of its service) when equal, else
// at svc's (t's service) when equal; and its annotations, restart window,
// ID, node ID and status message at prev's when equal. prev and svc may be
// nil.
func (sh *sharer) shareTask(t, prev *api.Task, svc *api.Service) {
	if t == nil {
		return
	}
	if prev != nil && prev.ServiceId != t.ServiceId {
		prev = nil
	}
	spec := svc.GetSpec()
	t.Spec = shared(t.Spec, prev.GetSpec(), spec.GetTask(), equalBy[*api.TaskSpec](sh))
	t.ServiceAnnotations = shared(t.ServiceAnnotations, prev.GetServiceAnnotations(), spec.GetAnnotations(), sameAnnotations)
	t.Endpoint = shared(t.Endpoint, prev.GetEndpoint(), svc.GetEndpoint(), equalBy[*api.Endpoint](sh))
	if prev != nil {
		t.Annotations = shared(t.Annotations, prev.Annotations, nil, sameAnnotations)
		t.RestartWindowStart = shared(t.RestartWindowStart, prev.RestartWindowStart, nil, sameTimestamp)
		t.Id = sharedString(t.Id, prev.Id)
		t.NodeId = sharedString(t.NodeId, prev.NodeId)
		if t.Status != nil && prev.Status != nil {
			t.Status.Message = sharedString(t.Status.Message, prev.Status.Message)
		}
	}
	if svc != nil {
		t.ServiceId = sharedString(t.ServiceId, svc.Id)
	} else if prev != nil {
		t.ServiceId = sharedString(t.ServiceId, prev.ServiceId)
	}
}

// shareNodeID points a task's node ID at its node's ID bytes, unless prev
// (its previous version, already shared with) has the same node: the tasks
// of a node then hold one copy of its ID, and the by-node tree's compares
// of equal node IDs stop at the pointer instead of reading both strings.
func shareNodeID(w *db, t, prev *api.Task) {
	if t.NodeId == "" || (prev != nil && prev.NodeId == t.NodeId) {
		return
	}
	if n := w.table(KindNode).get(t.NodeId); n != nil {
		t.NodeId = sharedString(t.NodeId, n.GetId())
	}
}

// sharedString returns b if it equals a (one copy of the bytes), else a.
func sharedString(a, b string) string {
	if a == b {
		return b
	}
	return a
}

// shared returns the first of a and b that equals m, else m. A nil m stays
// nil.
func shared[M interface {
	comparable
	proto.Message
}](m, a, b M, eq func(M, M) bool) M {
	var zero M
	if m == zero {
		return m
	}
	for _, c := range [2]M{a, b} {
		if c == m {
			return m
		}
		if c != zero && eq(m, c) {
			return c
		}
	}
	return m
}

// sharer compares sub-messages by their deterministic encoding, which
// costs a third of proto.Equal (table-driven, few allocations); the
// encodings of the candidates (the shared ones, mostly one per service) are
// kept for the transaction. Equal bytes mean equal content, so sharing on
// them is safe; a difference in encoding only misses a share.
type sharer struct {
	opts    proto.MarshalOptions
	enc     map[proto.Message][]byte
	buf     []byte
	scratch []byte // decodeTask's
}

func newSharer() *sharer {
	return &sharer{opts: proto.MarshalOptions{Deterministic: true}, enc: map[proto.Message][]byte{}}
}

func equalBy[M proto.Message](sh *sharer) func(M, M) bool {
	return func(m, candidate M) bool { return sh.equal(m, candidate) }
}

func (sh *sharer) equal(m, candidate proto.Message) bool {
	e := sh.encoding(candidate)
	if e == nil {
		return false
	}
	var err error
	sh.buf, err = sh.opts.MarshalAppend(sh.buf[:0], m)
	return err == nil && bytes.Equal(sh.buf, e)
}

// encoding returns the deterministic encoding of a candidate (kept for the
// transaction), nil if it does not encode.
func (sh *sharer) encoding(candidate proto.Message) []byte {
	e, ok := sh.enc[candidate]
	if !ok {
		var err error
		if e, err = sh.opts.Marshal(candidate); err != nil {
			return nil
		}
		if e == nil {
			e = []byte{}
		}
		sh.enc[candidate] = e
	}
	return e
}

// sameAnnotations and sameTimestamp are proto.Equal for these two small
// messages without its reflection and allocations (a task carries up to
// three of them). TestShareComparesEveryField fails when a field is added.
func sameAnnotations(a, b *api.Annotations) bool {
	return a.GetName() == b.GetName() && maps.Equal(a.GetLabels(), b.GetLabels())
}

func sameTimestamp(a, b *timestamppb.Timestamp) bool {
	return a.GetSeconds() == b.GetSeconds() && a.GetNanos() == b.GetNanos()
}

// shareRestored does shareTask for the objects of a snapshot: each task
// against the last task seen of its service and against its service; and
// points each task's node ID at its node's.
func shareRestored(objs []Object) {
	services := map[string]*api.Service{}
	nodes := map[string]string{}
	for _, o := range objs {
		switch o := o.(type) {
		case *api.Service:
			services[o.Id] = o
		case *api.Node:
			nodes[o.Id] = o.Id
		}
	}
	last := map[string]*api.Task{}
	sh := newSharer()
	for _, o := range objs {
		t, ok := o.(*api.Task)
		if !ok {
			continue
		}
		if id, ok := nodes[t.NodeId]; ok {
			t.NodeId = id
		}
		if t.ServiceId == "" {
			continue
		}
		sh.shareTask(t, last[t.ServiceId], services[t.ServiceId])
		last[t.ServiceId] = t
	}
}
