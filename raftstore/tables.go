package raftstore

import (
	"encoding/binary"
	"strings"
	"sync"

	"github.com/google/btree"
	"google.golang.org/protobuf/reflect/protoreflect"

	api "github.com/shoal-project/shoal/proto"
)

// The store's tables are copy-on-write B-trees (github.com/google/btree):
// per kind a tree by ID, for named kinds a tree by (name, ID), for tasks
// trees by (service ID, task ID) and (node ID, task ID). A db is a set of
// tables, one per kind. A published db (the store's current one, or one a
// reader holds) is never modified: a writer forks it (fork shares every
// table) and clones a table the first time it writes to it (Clone is lazy:
// it copies a node only when the writer changes it). Readers of a published
// db therefore take no lock and never see a later write.
//
// One catch: btree's Clone writes to the tree it copies (it gives it a new
// copy-on-write context), so two clones of one tree must not run at once;
// each table serializes its clones with its own mutex. Reads never touch
// what Clone writes (a node's context is immutable once made).

// treeDegree is the B-trees' degree: nodes hold 31..63 entries. Chosen by
// BenchmarkStoreApply/StoreHeap (BENCHMARKS.md): a smaller degree copies
// less per write but makes the trees deeper.
const treeDegree = 32

// idEntry is an entry of a tree by ID: o, and head, the first 8 bytes of
// o's ID as a big-endian number (idHead), so that a search compares
// numbers held in the tree's node and reads an ID only when two heads are
// equal. IDs are random, so at 1,000,000 objects each compared ID is a
// cache miss: BenchmarkTableGetAt1M took 1.9-2.0 µs a lookup without the
// heads, 1.3-1.6 µs with them. The ID itself is not in the entry (24 bytes,
// not 40): every write copies the nodes on its path (copy-on-write), and
// smaller nodes copy less (BenchmarkTableReplaceAt1M: 8.0-8.3 ms with the
// ID, 6.2-7.3 ms without, for 1,000 writes at 1,000,000 objects).
//
// A search key (idKey) holds an idProbe: an ID and nothing else.
type idEntry struct {
	head uint64
	o    Object
}

// idHead is the first 8 bytes of id, big-endian, zero-padded: a < b for
// heads implies a < b for the IDs, and equal heads leave the order to the
// whole IDs.
func idHead(id string) uint64 {
	var b [8]byte
	copy(b[:], id)
	return binary.BigEndian.Uint64(b[:])
}

// idKey is the search key of id.
func idKey(id string) idEntry {
	p := idProbe(id)
	return idEntry{head: idHead(id), o: &p}
}

// idProbe is the object of a search key: only its ID is ever read.
type idProbe string

func (p *idProbe) GetId() string      { return string(*p) }
func (p *idProbe) GetMeta() *api.Meta { return nil }
func (p *idProbe) ProtoReflect() protoreflect.Message {
	panic("raftstore: a search key is not a message")
}

// nameEntry is an entry of a tree by unique name: (name, ID) keeps the
// order total even if two objects ever shared a name.
type nameEntry struct {
	name, id string
	o        Object
}

func lessID(a, b idEntry) bool {
	if a.head != b.head {
		return a.head < b.head
	}
	return a.o.GetId() < b.o.GetId()
}

func lessName(a, b nameEntry) bool {
	if a.name != b.name {
		return a.name < b.name
	}
	return a.id < b.id
}

// taskEntry is an entry of a task tree by (key, task ID), the key being
// the service ID (byService) or the node ID (byNode). head holds a 32-bit
// hash of the key and the first 4 bytes of the task's ID (taskHead), so
// that a search mostly compares numbers held in the tree's node: comparing
// the task pointers' strings read two tasks from memory per compare, cache
// misses at 1,000,000 tasks that were most of these trees' cost
// (BenchmarkTaskTableReplaceAt1M: 18.1-19.6 ms with pointers alone,
// 14.1-14.2 ms with heads, for 1,000 writes). The order is (head, key,
// ID): the tasks of one key are among those of its hash (a range scan
// skips any other key of the same hash, a 1 in 2^32 chance per pair), in
// ID order. A hash, not the key's first bytes: keys that share a prefix
// ("svc-1", "svc-2") would put every task of all of them in one range. A
// search key has a nil task and sorts first among equal heads.
type taskEntry struct {
	head uint64
	t    *api.Task
}

// taskHead is the 32-bit FNV-1a hash of key, then id's first 4 bytes,
// big-endian, zero-padded. FNV-1a inline rather than hash/fnv, whose
// hasher is an interface value allocated per call, on every task write.
func taskHead(key, id string) uint64 {
	const offset32, prime32 = 2166136261, 16777619
	h := uint32(offset32)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= prime32
	}
	var b [4]byte
	copy(b[:], id)
	return uint64(h)<<32 | uint64(binary.BigEndian.Uint32(b[:]))
}

func serviceEntry(t *api.Task) taskEntry { return taskEntry{head: taskHead(t.ServiceId, t.Id), t: t} }

func nodeEntry(t *api.Task) taskEntry { return taskEntry{head: taskHead(t.NodeId, t.Id), t: t} }

func lessService(a, b taskEntry) bool {
	if a.head != b.head || a.t == nil || b.t == nil {
		return lessHeads(a, b)
	}
	return lessKeyID(a.t.ServiceId, b.t.ServiceId, a.t.Id, b.t.Id)
}

func lessNode(a, b taskEntry) bool {
	if a.head != b.head || a.t == nil || b.t == nil {
		return lessHeads(a, b)
	}
	return lessKeyID(a.t.NodeId, b.t.NodeId, a.t.Id, b.t.Id)
}

// lessHeads orders entries whose heads differ, or a search key before an
// entry of an equal head.
func lessHeads(a, b taskEntry) bool {
	if a.head != b.head {
		return a.head < b.head
	}
	return a.t == nil && b.t != nil
}

// lessKeyID orders (key, ID) pairs.
func lessKeyID(ka, kb, ida, idb string) bool {
	if ka != kb {
		return ka < kb
	}
	return ida < idb
}

// table is one kind's objects. Its trees are written only by the writer
// that cloned them, before its db is published.
type table struct {
	mu sync.Mutex // serializes clones of the trees (Clone writes the tree it copies)

	byID      *btree.BTreeG[idEntry]
	byName    *btree.BTreeG[nameEntry] // kinds with unique names; nil otherwise
	byService *btree.BTreeG[taskEntry] // tasks with a service ID; nil for other kinds
	byNode    *btree.BTreeG[taskEntry] // tasks with a node ID; nil for other kinds
}

func newTable(kind string) *table {
	t := &table{byID: btree.NewG(treeDegree, lessID)}
	if _, named := schemaHasName(kind); named {
		t.byName = btree.NewG(treeDegree, lessName)
	}
	if kind == KindTask {
		t.byService = btree.NewG(treeDegree, lessService)
		t.byNode = btree.NewG(treeDegree, lessNode)
	}
	return t
}

// clone returns a writable copy of t; t stays as it is.
func (t *table) clone() *table {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := &table{byID: t.byID.Clone()}
	if t.byName != nil {
		c.byName = t.byName.Clone()
	}
	if t.byService != nil {
		c.byService = t.byService.Clone()
		c.byNode = t.byNode.Clone()
	}
	return c
}

// get returns the object with the given ID, nil if none.
func (t *table) get(id string) Object {
	e, ok := t.byID.Get(idKey(id))
	if !ok {
		return nil
	}
	return e.o
}

// put inserts o, or replaces the object with its ID, and keeps the other
// trees in step.
func (t *table) put(o Object) {
	id := o.GetId()
	prev, had := t.byID.ReplaceOrInsert(idEntry{head: idHead(id), o: o})
	var old Object
	if had {
		old = prev.o
	}
	if t.byName != nil {
		name, _ := nameOf(o)
		if old != nil {
			if was, _ := nameOf(old); was != "" && was != name {
				t.byName.Delete(nameEntry{name: was, id: id})
			}
		}
		if name != "" {
			t.byName.ReplaceOrInsert(nameEntry{name: name, id: id, o: o})
		}
	}
	if t.byService != nil {
		task := o.(*api.Task)
		var was *api.Task
		if old != nil {
			was = old.(*api.Task)
		}
		putTask(t.byService, serviceEntry, was, task, was.GetServiceId(), task.ServiceId)
		putTask(t.byNode, nodeEntry, was, task, was.GetNodeId(), task.NodeId)
	}
}

// putTask puts task into a tree keyed by (k, ID) in place of old (keyed by
// (oldK, ID)); tasks with an empty key are not in the tree.
func putTask(tree *btree.BTreeG[taskEntry], entry func(*api.Task) taskEntry, old, task *api.Task, oldK, k string) {
	if old != nil && oldK != "" && oldK != k {
		tree.Delete(entry(old))
	}
	if k != "" {
		tree.ReplaceOrInsert(entry(task))
	}
}

// delete removes the object with the given ID, if any.
func (t *table) delete(id string) {
	prev, had := t.byID.Delete(idKey(id))
	if !had {
		return
	}
	old := prev.o
	if t.byName != nil {
		if name, _ := nameOf(old); name != "" {
			t.byName.Delete(nameEntry{name: name, id: id})
		}
	}
	if t.byService != nil {
		task := old.(*api.Task)
		if task.ServiceId != "" {
			t.byService.Delete(serviceEntry(task))
		}
		if task.NodeId != "" {
			t.byNode.Delete(nodeEntry(task))
		}
	}
}

// ascend calls fn for every object in ID order until fn returns false.
func (t *table) ascend(fn func(Object) bool) {
	t.byID.Ascend(func(e idEntry) bool { return fn(e.o) })
}

// ascendPrefix calls fn, in ID order, for every object whose ID starts with
// prefix, until fn returns false.
func (t *table) ascendPrefix(prefix string, fn func(Object) bool) {
	t.byID.AscendGreaterOrEqual(idKey(prefix), func(e idEntry) bool {
		return strings.HasPrefix(e.o.GetId(), prefix) && fn(e.o)
	})
}

// named returns the object named name (the one with the lowest ID, should
// several share it), nil if none or if the kind has no unique names.
func (t *table) named(name string) Object {
	if t.byName == nil || name == "" {
		return nil
	}
	var found Object
	t.byName.AscendGreaterOrEqual(nameEntry{name: name}, func(e nameEntry) bool {
		if e.name == name {
			found = e.o
		}
		return false
	})
	return found
}

// tasksOf returns the tasks whose service ID (byNode: node ID) is id, in
// task ID order.
func tasksOf(tree *btree.BTreeG[taskEntry], id string, byNode bool) []*api.Task {
	if tree == nil || id == "" {
		return nil
	}
	match := func(t *api.Task) bool { return t.ServiceId == id }
	if byNode {
		match = func(t *api.Task) bool { return t.NodeId == id }
	}
	probe := taskEntry{head: taskHead(id, "")}
	var out []*api.Task
	tree.AscendGreaterOrEqual(probe, func(e taskEntry) bool {
		if e.head>>32 != probe.head>>32 {
			return false
		}
		if match(e.t) {
			out = append(out, e.t)
		}
		return true
	})
	return out
}

// kindIndex returns the index of kind in Kinds, -1 for an unknown kind.
func kindIndex(kind string) int {
	switch kind {
	case KindCluster:
		return 0
	case KindNode:
		return 1
	case KindService:
		return 2
	case KindTask:
		return 3
	case KindNetwork:
		return 4
	case KindSecret:
		return 5
	case KindConfig:
		return 6
	}
	return -1
}

// noTable is what reads of an unknown kind find: nothing (as memdb's
// unknown table gave nothing). It is never written.
var noTable = &table{byID: btree.NewG(treeDegree, lessID)}

const numKinds = 7

// db is one table per kind (indexed as Kinds). A published db is immutable;
// a forked one is private to its writer, which clones a table the first
// time it writes to it.
type db struct {
	tables [numKinds]*table
	owned  [numKinds]bool // tables this db cloned and may write
}

func newDB() *db {
	d := &db{}
	for i, k := range Kinds {
		d.tables[i] = newTable(k)
		d.owned[i] = true
	}
	return d
}

// fork returns a writable db with d's content; d is not changed.
func (d *db) fork() *db {
	return &db{tables: d.tables}
}

// table returns kind's table, for reading; an empty one for an unknown
// kind.
func (d *db) table(kind string) *table {
	i := kindIndex(kind)
	if i < 0 {
		return noTable
	}
	return d.tables[i]
}

// writable returns kind's table for writing, cloning it the first time.
// Writes come from KindOf, which knows only the stored kinds.
func (d *db) writable(kind string) *table {
	i := kindIndex(kind)
	if i < 0 {
		panic("raftstore: unknown kind " + kind) // a programming error
	}
	if !d.owned[i] {
		d.tables[i] = d.tables[i].clone()
		d.owned[i] = true
	}
	return d.tables[i]
}
