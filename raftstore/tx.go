package raftstore

import (
	memdb "github.com/hashicorp/go-memdb"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// ReadTx is a consistent read-only view of the store. Objects it returns are
// shared with the store and must not be modified: clone them (proto.Clone or
// the typed Clone helpers) before changing anything.
type ReadTx struct {
	txn *memdb.Txn
	w   *Tx // in an Update callback: the writes not yet in txn
}

// mem returns the memdb transaction with every write of the Update
// callback in it, for reads by an index other than the ID.
func (tx ReadTx) mem() *memdb.Txn {
	if tx.w != nil {
		tx.w.flush()
	}
	return tx.txn
}

// byID returns the object of kind with the given ID, nil if none; in an
// Update callback, its own latest write.
func (tx ReadTx) byID(kind, id string) Object {
	if tx.w != nil {
		if o, ok := tx.w.unflushed[key(kind, id)]; ok {
			return o
		}
	}
	raw, err := tx.txn.First(kind, indexID, id)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(Object)
}

func first[T Object](tx ReadTx, kind, index string, arg string) T {
	var zero T
	if index == indexID {
		if o := tx.byID(kind, arg); o != nil {
			return o.(T)
		}
		return zero
	}
	raw, err := tx.mem().First(kind, index, arg)
	if err != nil || raw == nil {
		return zero
	}
	return raw.(T)
}

func all[T Object](tx ReadTx, kind, index string, args ...any) []T {
	it, err := tx.mem().Get(kind, index, args...)
	if err != nil {
		return nil
	}
	var out []T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(T))
	}
	return out
}

// byPrefix returns objects whose ID starts with prefix.
func byPrefix[T Object](tx ReadTx, kind, prefix string) []T {
	return all[T](tx, kind, indexID+"_prefix", prefix)
}

// Lookup resolves a user's reference to an object of kind: a full ID, a
// unique name, or a unique ID prefix, in that order (as Docker does). An
// ambiguous prefix is an InvalidArgument error; nothing found is NotFound.
func Lookup[T Object](tx ReadTx, kind, ref string, name func(T) string) (T, error) {
	var zero T
	if ref == "" {
		return zero, errdefs.InvalidArgument("no %s name or ID given", kind)
	}
	if o := first[T](tx, kind, indexID, ref); o.GetId() != "" {
		return o, nil
	}
	var named []T
	if name != nil {
		if _, hasIndex := schemaHasName(kind); hasIndex {
			if o := first[T](tx, kind, indexName, ref); o.GetId() != "" {
				return o, nil
			}
		} else {
			for _, o := range all[T](tx, kind, indexID) {
				if name(o) == ref {
					named = append(named, o)
				}
			}
			if len(named) == 1 {
				return named[0], nil
			}
			if len(named) > 1 {
				return zero, errdefs.InvalidArgument("%s %q is ambiguous: %d objects have that name; use an ID", kind, ref, len(named))
			}
		}
	}
	matches := byPrefix[T](tx, kind, ref)
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return zero, errdefs.NotFound("%s %s not found", kind, ref)
	}
	return zero, errdefs.InvalidArgument("%s %s is ambiguous (%d matches)", kind, ref, len(matches))
}

func schemaHasName(kind string) (string, bool) {
	return indexName, kind != KindNode && kind != KindTask
}

// Cluster returns the cluster object with the given ID, nil if none.
func (tx ReadTx) Cluster(id string) *api.Cluster {
	return first[*api.Cluster](tx, KindCluster, indexID, id)
}

// Clusters returns every cluster object (there is one).
func (tx ReadTx) Clusters() []*api.Cluster { return all[*api.Cluster](tx, KindCluster, indexID) }

// Node returns the node with the given ID, nil if none.
func (tx ReadTx) Node(id string) *api.Node { return first[*api.Node](tx, KindNode, indexID, id) }

// Nodes returns every node, ordered by ID.
func (tx ReadTx) Nodes() []*api.Node { return all[*api.Node](tx, KindNode, indexID) }

// Service returns the service with the given ID, nil if none.
func (tx ReadTx) Service(id string) *api.Service {
	return first[*api.Service](tx, KindService, indexID, id)
}

// ServiceByName returns the service with the given name, nil if none.
func (tx ReadTx) ServiceByName(name string) *api.Service {
	return first[*api.Service](tx, KindService, indexName, name)
}

// Services returns every service, ordered by ID.
func (tx ReadTx) Services() []*api.Service { return all[*api.Service](tx, KindService, indexID) }

// Task returns the task with the given ID, nil if none.
func (tx ReadTx) Task(id string) *api.Task { return first[*api.Task](tx, KindTask, indexID, id) }

// Tasks returns every task, ordered by ID.
func (tx ReadTx) Tasks() []*api.Task { return all[*api.Task](tx, KindTask, indexID) }

// TasksByService returns the tasks of a service.
func (tx ReadTx) TasksByService(serviceID string) []*api.Task {
	return all[*api.Task](tx, KindTask, indexService, serviceID)
}

// TasksByNode returns the tasks assigned to a node.
func (tx ReadTx) TasksByNode(nodeID string) []*api.Task {
	return all[*api.Task](tx, KindTask, indexNode, nodeID)
}

// TasksBySlot returns the tasks (current and history) of one replicated
// slot. It filters the service's tasks (no index: one less per task, ~400
// bytes; nothing on a hot path asks by slot).
func (tx ReadTx) TasksBySlot(serviceID string, slot uint64) []*api.Task {
	var out []*api.Task
	for _, t := range tx.TasksByService(serviceID) {
		if t.Slot == slot && slot != 0 {
			out = append(out, t)
		}
	}
	return out
}

// Network returns the network with the given ID, nil if none.
func (tx ReadTx) Network(id string) *api.Network {
	return first[*api.Network](tx, KindNetwork, indexID, id)
}

// NetworkByName returns the network with the given name, nil if none.
func (tx ReadTx) NetworkByName(name string) *api.Network {
	return first[*api.Network](tx, KindNetwork, indexName, name)
}

// Networks returns every network.
func (tx ReadTx) Networks() []*api.Network { return all[*api.Network](tx, KindNetwork, indexID) }

// Secret returns the secret with the given ID, nil if none.
func (tx ReadTx) Secret(id string) *api.Secret {
	return first[*api.Secret](tx, KindSecret, indexID, id)
}

// SecretByName returns the secret with the given name, nil if none.
func (tx ReadTx) SecretByName(name string) *api.Secret {
	return first[*api.Secret](tx, KindSecret, indexName, name)
}

// Secrets returns every secret.
func (tx ReadTx) Secrets() []*api.Secret { return all[*api.Secret](tx, KindSecret, indexID) }

// Config returns the config with the given ID, nil if none.
func (tx ReadTx) Config(id string) *api.Config {
	return first[*api.Config](tx, KindConfig, indexID, id)
}

// ConfigByName returns the config with the given name, nil if none.
func (tx ReadTx) ConfigByName(name string) *api.Config {
	return first[*api.Config](tx, KindConfig, indexName, name)
}

// Configs returns every config.
func (tx ReadTx) Configs() []*api.Config { return all[*api.Config](tx, KindConfig, indexID) }

// Get returns the object of the given kind and ID, nil if none.
func (tx ReadTx) Get(kind, id string) Object { return tx.byID(kind, id) }

// Tx is a write transaction being built by an Update callback. Reads see the
// callback's own writes. Nothing is applied until the transaction commits
// through raft, where every write is checked again: an Update or Delete of
// an object whose version changed since it was read fails the whole
// transaction with a conflict.
//
// The callback's writes reach its memdb transaction (a private snapshot of
// the store) only when a read needs an index other than the ID: a callback
// that only reads by ID and writes pays no memdb insert, the object is
// inserted once, by Apply.
type Tx struct {
	ReadTx
	actions []*api.StoreAction
	pos     map[string]int // kind/id -> index in actions

	unflushed map[string]Object // kind/id -> latest write not in txn yet; nil: deleted
	ops       []pendingOp       // the writes not in txn yet, in order
	err       error             // the first failure to put a write into txn
}

type pendingOp struct {
	kind string
	o    Object
	del  bool
}

func newTx(txn *memdb.Txn) *Tx {
	tx := &Tx{pos: map[string]int{}, unflushed: map[string]Object{}}
	tx.ReadTx = ReadTx{txn: txn, w: tx}
	return tx
}

func key(kind, id string) string { return kind + "/" + id }

// write queues a write for txn; the next read by an index puts it there.
func (tx *Tx) write(k, kind string, o Object, del bool) {
	tx.ops = append(tx.ops, pendingOp{kind: kind, o: o, del: del})
	if del {
		tx.unflushed[k] = nil
	} else {
		tx.unflushed[k] = o
	}
}

// flush puts the queued writes into txn, in order.
func (tx *Tx) flush() {
	if len(tx.ops) == 0 {
		return
	}
	for _, op := range tx.ops {
		var err error
		if op.del {
			err = tx.txn.Delete(op.kind, op.o)
		} else {
			err = tx.txn.Insert(op.kind, op.o)
		}
		if err != nil && tx.err == nil {
			tx.err = errdefs.Internal("write %s %s: %v", op.kind, op.o.GetId(), err)
		}
	}
	clear(tx.ops)
	tx.ops = tx.ops[:0]
	clear(tx.unflushed)
}

// Create adds a new object. Its ID must be set and unused; for kinds with
// unique names, the name must be unused too.
func (tx *Tx) Create(o Object) error {
	kind := KindOf(o)
	if o.GetId() == "" {
		return errdefs.InvalidArgument("%s has no ID", kind)
	}
	if tx.byID(kind, o.GetId()) != nil {
		return errdefs.AlreadyExists("%s %s already exists", kind, o.GetId())
	}
	if name, ok := nameOf(o); ok && name != "" {
		if other, _ := tx.mem().First(kind, indexName, name); other != nil {
			return errdefs.AlreadyExists("%s %s already exists", kind, name)
		}
	}
	k := key(kind, o.GetId())
	tx.write(k, kind, o, false)
	tx.record(k, &api.StoreAction{Kind: api.StoreAction_CREATE, Object: Wrap(o)})
	return nil
}

// Update replaces an existing object. o.Meta.Version must be the version the
// caller read; the commit fails with a conflict if it changed since.
func (tx *Tx) Update(o Object) error {
	kind := KindOf(o)
	old := tx.byID(kind, o.GetId())
	if old == nil {
		return errdefs.NotFound("%s %s not found", kind, o.GetId())
	}
	if old.GetMeta().GetVersion() != o.GetMeta().GetVersion() {
		return errdefs.Conflict("%s %s was changed by someone else (version %d, you have %d); read it again and retry",
			kind, o.GetId(), old.GetMeta().GetVersion(), o.GetMeta().GetVersion())
	}
	if name, ok := nameOf(o); ok && name != "" {
		if other, _ := tx.mem().First(kind, indexName, name); other != nil && other.(Object).GetId() != o.GetId() {
			return errdefs.AlreadyExists("%s %s already exists", kind, name)
		}
	}
	k := key(kind, o.GetId())
	tx.write(k, kind, o, false)
	tx.record(k, &api.StoreAction{Kind: api.StoreAction_UPDATE, Object: Wrap(o), ExpectedVersion: o.GetMeta().GetVersion()})
	return nil
}

// Delete removes an object. A version of 0 in o.Meta skips the check.
func (tx *Tx) Delete(o Object) error {
	kind := KindOf(o)
	old := tx.byID(kind, o.GetId())
	if old == nil {
		return errdefs.NotFound("%s %s not found", kind, o.GetId())
	}
	v := o.GetMeta().GetVersion()
	if v != 0 && old.GetMeta().GetVersion() != v {
		return errdefs.Conflict("%s %s was changed by someone else; read it again and retry", kind, o.GetId())
	}
	k := key(kind, o.GetId())
	tx.write(k, kind, old, true)
	tx.record(k, &api.StoreAction{Kind: api.StoreAction_DELETE, Object: Wrap(old), ExpectedVersion: v})
	return nil
}

// record coalesces several writes of one object into one action, so the
// commit checks the version the transaction first read.
func (tx *Tx) record(k string, a *api.StoreAction) {
	i, seen := tx.pos[k]
	if !seen {
		tx.pos[k] = len(tx.actions)
		tx.actions = append(tx.actions, a)
		return
	}
	prev := tx.actions[i]
	switch {
	case prev.Kind == api.StoreAction_CREATE && a.Kind == api.StoreAction_DELETE:
		tx.actions[i] = nil // created and deleted: nothing to do
		delete(tx.pos, k)
	case prev.Kind == api.StoreAction_CREATE:
		tx.actions[i] = &api.StoreAction{Kind: api.StoreAction_CREATE, Object: a.Object}
	default:
		a.ExpectedVersion = prev.ExpectedVersion
		tx.actions[i] = a
	}
}

// Actions returns the transaction's coalesced writes.
func (tx *Tx) Actions() []*api.StoreAction {
	out := make([]*api.StoreAction, 0, len(tx.actions))
	for _, a := range tx.actions {
		if a != nil {
			out = append(out, a)
		}
	}
	return out
}
