package raftstore

import (
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// ReadTx is a consistent read-only view of the store. Objects it returns are
// shared with the store and must not be modified: clone them (proto.Clone or
// the typed Clone helpers) before changing anything.
type ReadTx struct {
	db *db // published (View) or, in an Update callback, the callback's private fork
	w  *Tx // in an Update callback: the writes not yet in db
}

// mem returns the db with every write of the Update callback in it, for
// reads by anything but the ID.
func (tx ReadTx) mem() *db {
	if tx.w != nil {
		tx.w.flush()
	}
	return tx.db
}

// byID returns the object of kind with the given ID, nil if none; in an
// Update callback, its own latest write.
func (tx ReadTx) byID(kind, id string) Object {
	if tx.w != nil {
		if o, ok := tx.w.unflushed[key(kind, id)]; ok {
			return o
		}
	}
	return tx.db.table(kind).get(id)
}

// first returns the object of kind with the given ID, the zero T if none.
func first[T Object](tx ReadTx, kind, id string) T {
	if o := tx.byID(kind, id); o != nil {
		return o.(T)
	}
	var zero T
	return zero
}

// byName returns the object of kind with the given unique name, the zero T
// if none.
func byName[T Object](tx ReadTx, kind, name string) T {
	if o := tx.mem().table(kind).named(name); o != nil {
		return o.(T)
	}
	var zero T
	return zero
}

// all returns every object of kind, ordered by ID.
func all[T Object](tx ReadTx, kind string) []T {
	t := tx.mem().table(kind)
	if t.byID.Len() == 0 {
		return nil
	}
	out := make([]T, 0, t.byID.Len())
	t.ascend(func(o Object) bool {
		out = append(out, o.(T))
		return true
	})
	return out
}

// byPrefix returns objects whose ID starts with prefix, ordered by ID.
func byPrefix[T Object](tx ReadTx, kind, prefix string) []T {
	var out []T
	tx.mem().table(kind).ascendPrefix(prefix, func(o Object) bool {
		out = append(out, o.(T))
		return true
	})
	return out
}

// Lookup resolves a user's reference to an object of kind: a full ID, a
// unique name, or a unique ID prefix, in that order (as Docker does). An
// ambiguous prefix is an InvalidArgument error; nothing found is NotFound.
func Lookup[T Object](tx ReadTx, kind, ref string, name func(T) string) (T, error) {
	var zero T
	if ref == "" {
		return zero, errdefs.InvalidArgument("no %s name or ID given", kind)
	}
	if o := first[T](tx, kind, ref); o.GetId() != "" {
		return o, nil
	}
	var named []T
	if name != nil {
		if _, hasIndex := schemaHasName(kind); hasIndex {
			if o := byName[T](tx, kind, ref); o.GetId() != "" {
				return o, nil
			}
		} else {
			for _, o := range all[T](tx, kind) {
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

// schemaHasName reports whether objects of kind have unique names (and a
// tree by name).
func schemaHasName(kind string) (string, bool) {
	return "name", kind != KindNode && kind != KindTask
}

// Cluster returns the cluster object with the given ID, nil if none.
func (tx ReadTx) Cluster(id string) *api.Cluster {
	return first[*api.Cluster](tx, KindCluster, id)
}

// Clusters returns every cluster object (there is one).
func (tx ReadTx) Clusters() []*api.Cluster { return all[*api.Cluster](tx, KindCluster) }

// Node returns the node with the given ID, nil if none.
func (tx ReadTx) Node(id string) *api.Node { return first[*api.Node](tx, KindNode, id) }

// Nodes returns every node, ordered by ID.
func (tx ReadTx) Nodes() []*api.Node { return all[*api.Node](tx, KindNode) }

// Service returns the service with the given ID, nil if none.
func (tx ReadTx) Service(id string) *api.Service {
	return first[*api.Service](tx, KindService, id)
}

// ServiceByName returns the service with the given name, nil if none.
func (tx ReadTx) ServiceByName(name string) *api.Service {
	return byName[*api.Service](tx, KindService, name)
}

// Services returns every service, ordered by ID.
func (tx ReadTx) Services() []*api.Service { return all[*api.Service](tx, KindService) }

// Task returns the task with the given ID, nil if none.
func (tx ReadTx) Task(id string) *api.Task { return first[*api.Task](tx, KindTask, id) }

// Tasks returns every task, ordered by ID.
func (tx ReadTx) Tasks() []*api.Task { return all[*api.Task](tx, KindTask) }

// TasksByService returns the tasks of a service.
func (tx ReadTx) TasksByService(serviceID string) []*api.Task {
	return tasksOf(tx.mem().table(KindTask).byService, serviceID, false)
}

// TasksByNode returns the tasks assigned to a node.
func (tx ReadTx) TasksByNode(nodeID string) []*api.Task {
	return tasksOf(tx.mem().table(KindTask).byNode, nodeID, true)
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
	return first[*api.Network](tx, KindNetwork, id)
}

// NetworkByName returns the network with the given name, nil if none.
func (tx ReadTx) NetworkByName(name string) *api.Network {
	return byName[*api.Network](tx, KindNetwork, name)
}

// Networks returns every network.
func (tx ReadTx) Networks() []*api.Network { return all[*api.Network](tx, KindNetwork) }

// Secret returns the secret with the given ID, nil if none.
func (tx ReadTx) Secret(id string) *api.Secret {
	return first[*api.Secret](tx, KindSecret, id)
}

// SecretByName returns the secret with the given name, nil if none.
func (tx ReadTx) SecretByName(name string) *api.Secret {
	return byName[*api.Secret](tx, KindSecret, name)
}

// Secrets returns every secret.
func (tx ReadTx) Secrets() []*api.Secret { return all[*api.Secret](tx, KindSecret) }

// Config returns the config with the given ID, nil if none.
func (tx ReadTx) Config(id string) *api.Config {
	return first[*api.Config](tx, KindConfig, id)
}

// ConfigByName returns the config with the given name, nil if none.
func (tx ReadTx) ConfigByName(name string) *api.Config {
	return byName[*api.Config](tx, KindConfig, name)
}

// Configs returns every config.
func (tx ReadTx) Configs() []*api.Config { return all[*api.Config](tx, KindConfig) }

// Get returns the object of the given kind and ID, nil if none.
func (tx ReadTx) Get(kind, id string) Object { return tx.byID(kind, id) }

// Tx is a write transaction being built by an Update callback. Reads see the
// callback's own writes. Nothing is applied until the transaction commits
// through raft, where every write is checked again: an Update or Delete of
// an object whose version changed since it was read fails the whole
// transaction with a conflict.
//
// The callback's writes reach its db (a private fork of the store's
// snapshot) only when a read needs a tree other than the one by ID: a
// callback that only reads by ID and writes pays no tree insert, the object
// is inserted once, by Apply.
type Tx struct {
	ReadTx
	actions []*api.StoreAction
	pos     map[string]int // kind/id -> index in actions

	unflushed map[string]Object // kind/id -> latest write not in db yet; nil: deleted
	ops       []pendingOp       // the writes not in db yet, in order
}

type pendingOp struct {
	kind string
	o    Object
	del  bool
}

// newTx returns a transaction reading d (a published db) whose writes go to
// a private fork of it.
func newTx(d *db) *Tx {
	tx := &Tx{pos: map[string]int{}, unflushed: map[string]Object{}}
	tx.ReadTx = ReadTx{db: d.fork(), w: tx}
	return tx
}

func key(kind, id string) string { return kind + "/" + id }

// write queues a write for db; the next read by another tree puts it there.
func (tx *Tx) write(k, kind string, o Object, del bool) {
	tx.ops = append(tx.ops, pendingOp{kind: kind, o: o, del: del})
	if del {
		tx.unflushed[k] = nil
	} else {
		tx.unflushed[k] = o
	}
}

// flush puts the queued writes into db, in order.
func (tx *Tx) flush() {
	if len(tx.ops) == 0 {
		return
	}
	for _, op := range tx.ops {
		t := tx.db.writable(op.kind)
		if op.del {
			t.delete(op.o.GetId())
		} else {
			t.put(op.o)
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
		if other := tx.mem().table(kind).named(name); other != nil {
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
		if other := tx.mem().table(kind).named(name); other != nil && other.GetId() != o.GetId() {
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
