package gossip

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// table is the replicated state of one node and the rules that merge what
// other nodes send. It has no lock and does no I/O: Gossip serializes calls
// under its mutex and carries out the effects (broadcasts, OnChange) after
// unlocking.
type table struct {
	self string
	gen  uint64 // our incarnation
	ver  uint64 // our write counter (lamport: only we write our entries)
	nets map[string]map[entryID]*stored
	// owners holds what we know about every other owner.
	owners map[string]*owner
	// grace is Config.RestartGrace (0: a new generation drops the previous
	// one's entries at once); born is when this table was made.
	grace      time.Duration
	born       time.Time
	superseded int // stored entries with superseded set
}

type stored struct {
	Entry
	at time.Time // when it was stored here (tombstone reaping)
	// superseded: its owner came back with a newer generation then; the
	// entry stays until rewritten by it or until grace has passed (expire).
	superseded time.Time
}

// withGrace sets Config.RestartGrace; now is the table's birth.
func (t *table) withGrace(grace time.Duration, now time.Time) *table {
	t.grace, t.born = grace, now
	return t
}

// supersedeOwner marks the live entries of owner whose generation is below
// gen (its previous incarnation's): they expire after grace unless the new
// generation rewrites them. Tombstones go at once.
func (t *table) supersedeOwner(name string, below uint64, now time.Time, f *effects) {
	for _, m := range t.nets {
		for id, s := range m {
			if id.owner != name || s.Generation >= below {
				continue
			}
			if s.Deleted {
				t.del(id, f)
			} else if s.superseded.IsZero() {
				s.superseded = now
				t.superseded++
			}
		}
	}
}

// expire drops the superseded entries older than grace.
func (t *table) expire(now time.Time) effects {
	var f effects
	if t.superseded == 0 {
		return f
	}
	for _, m := range t.nets {
		for id, s := range m {
			if !s.superseded.IsZero() && now.Sub(s.superseded) >= t.grace {
				t.del(id, &f)
			}
		}
	}
	return f
}

// owner is the per-node bookkeeping of the merge rules.
type owner struct {
	maxGen uint64 // highest generation seen; entries below it are ignored
	// dead: memberlist declared the node dead or it left. Its entries are
	// dropped and everything from it is ignored until memberlist sees it
	// alive again.
	dead bool
	// dropped: DropNode was called. Entries with Generation <= droppedGen are
	// ignored (droppedGen is MaxUint64 when no generation was known) until a
	// newer generation shows up or RestoreNode is called (not when
	// memberlist sees the node alive again: see nodeAlive).
	dropped    bool
	droppedGen uint64
	since      time.Time // last change (reaping of the record)
}

// effects are what a table operation asks its caller to do after unlocking.
type effects struct {
	changed   map[string]struct{} // networks whose live entries changed
	broadcast []Entry             // entries to queue for gossip
}

func (f *effects) change(network string) {
	if f.changed == nil {
		f.changed = make(map[string]struct{})
	}
	f.changed[network] = struct{}{}
}

func newTable(self string, gen uint64) *table {
	return &table{self: self, gen: gen, nets: make(map[string]map[entryID]*stored), owners: make(map[string]*owner)}
}

func (t *table) get(id entryID) *stored { return t.nets[id.network][id] }

// put stores e, recording a change when what consumers see differs.
func (t *table) put(e Entry, now time.Time, f *effects) {
	id := e.id()
	m := t.nets[id.network]
	if m == nil {
		m = make(map[entryID]*stored)
		t.nets[id.network] = m
	}
	old := m[id]
	if old == nil && !e.Deleted || old != nil && !old.sameContent(&e) && !(old.Deleted && e.Deleted) {
		f.change(id.network)
	}
	if old != nil && !old.superseded.IsZero() {
		t.superseded--
	}
	m[id] = &stored{Entry: e.clone(), at: now}
}

func (t *table) del(id entryID, f *effects) {
	m := t.nets[id.network]
	old := m[id]
	if old == nil {
		return
	}
	if !old.Deleted {
		f.change(id.network)
	}
	if !old.superseded.IsZero() {
		t.superseded--
	}
	delete(m, id)
	if len(m) == 0 {
		delete(t.nets, id.network)
	}
}

// dropOwner removes the entries of owner whose generation is below gen.
func (t *table) dropOwner(name string, below uint64, f *effects) {
	for _, m := range t.nets {
		for id, s := range m {
			if id.owner == name && s.Generation < below {
				t.del(id, f)
			}
		}
	}
}

func (t *table) owner(name string, now time.Time) *owner {
	o := t.owners[name]
	if o == nil {
		o = &owner{since: now}
		t.owners[name] = o
	}
	return o
}

// publish writes our own entry.
func (t *table) publish(e Entry, now time.Time) effects {
	var f effects
	e.Owner, e.Deleted = t.self, false
	if cur := t.get(e.id()); cur != nil && cur.Generation == t.gen && cur.sameContent(&e) {
		return f // unchanged: republishing is idempotent
	}
	t.ver++
	e.Generation, e.Version = t.gen, t.ver
	t.put(e, now, &f)
	f.broadcast = append(f.broadcast, e.clone())
	return f
}

// withdraw writes a tombstone for our entry (also when we hold none: a
// stale copy may live elsewhere, e.g. from our previous incarnation).
func (t *table) withdraw(network, key string, now time.Time) effects {
	var f effects
	if cur := t.get(entryID{network, key, t.self}); cur != nil && cur.Deleted && cur.Generation == t.gen {
		return f // withdrawn already
	}
	t.ver++
	e := Entry{Network: network, Key: key, Owner: t.self, Generation: t.gen, Version: t.ver, Deleted: true}
	t.put(e, now, &f)
	f.broadcast = append(f.broadcast, e)
	return f
}

// apply merges an entry received from the network. rebroadcast says whether
// new information is queued again for gossip (epidemic spread of broadcasts;
// push-pull merges do not, they are full syncs already).
func (t *table) apply(e Entry, now time.Time, rebroadcast bool) effects {
	var f effects
	if e.Owner == t.self {
		t.applyOwn(e, now, &f)
		return f
	}
	o := t.owner(e.Owner, now)
	if o.dead {
		return f
	}
	if o.dropped {
		if e.Generation <= o.droppedGen {
			return f
		}
		o.dropped = false
	}
	if e.Generation < o.maxGen {
		return f
	}
	if e.Generation > o.maxGen {
		if t.grace > 0 && o.maxGen > 0 {
			t.supersedeOwner(e.Owner, e.Generation, now, &f)
		} else {
			t.dropOwner(e.Owner, e.Generation, &f)
		}
		o.maxGen = e.Generation
	}
	if cur := t.get(e.id()); cur != nil && !e.newer(&cur.Entry) {
		return f
	}
	o.since = now
	t.put(e, now, &f)
	if rebroadcast {
		f.broadcast = append(f.broadcast, e.clone())
	}
	return f
}

// applyOwn handles a copy of one of our entries coming back. Only we write
// our entries, so a copy that is not exactly ours is stale: we answer with
// our current view (or a tombstone) so that it is overwritten everywhere.
func (t *table) applyOwn(e Entry, now time.Time, f *effects) {
	if e.Generation > t.gen {
		// A previous incarnation of ours had a higher generation (clock went
		// back?): move above it and re-stamp all our entries so they win.
		t.gen = e.Generation + 1
		for _, m := range t.nets {
			for id, s := range m {
				if id.owner == t.self {
					t.ver++
					s.Generation, s.Version, s.at = t.gen, t.ver, now
					f.broadcast = append(f.broadcast, s.Entry.clone())
				}
			}
		}
		if t.get(e.id()) == nil && !e.Deleted {
			t.ver++
			ts := Entry{Network: e.Network, Key: e.Key, Owner: t.self, Generation: t.gen, Version: t.ver, Deleted: true}
			t.put(ts, now, f)
			f.broadcast = append(f.broadcast, ts)
		}
		return
	}
	cur := t.get(e.id())
	switch {
	case cur == nil && e.Deleted:
		// A tombstone we reaped already: harmless.
	case cur == nil && e.Generation < t.gen && now.Sub(t.born) < t.grace:
		// Our previous incarnation's entry, not (yet) written again: the
		// others expire it after the restart grace unless we do.
	case cur != nil && cur.Generation == e.Generation && cur.Version == e.Version:
		// Our current entry.
	case cur != nil && cur.newer(&e):
		// An older copy: spread the current one.
		f.broadcast = append(f.broadcast, cur.Entry.clone())
	default:
		// A copy we did not write in this incarnation (an old incarnation's,
		// a reaped one, or a forged newer version): overwrite it with our
		// view, stamped above it.
		if e.Generation == t.gen && e.Version > t.ver {
			t.ver = e.Version
		}
		t.ver++
		if cur != nil {
			cur.Generation, cur.Version, cur.at = t.gen, t.ver, now
			f.broadcast = append(f.broadcast, cur.Entry.clone())
			return
		}
		ts := Entry{Network: e.Network, Key: e.Key, Owner: t.self, Generation: t.gen, Version: t.ver, Deleted: true}
		t.put(ts, now, f)
		f.broadcast = append(f.broadcast, ts)
	}
}

// nodeLeft: memberlist declared the node dead or it left.
func (t *table) nodeLeft(name string, now time.Time) effects {
	var f effects
	if name == t.self {
		return f
	}
	o := t.owner(name, now)
	o.dead, o.since = true, now
	t.dropOwner(name, math.MaxUint64, &f)
	return f
}

// nodeAlive: memberlist sees the node alive. It reports whether the node
// was dead before (the caller then pulls the node's state). A DropNode
// stays in force: the managers said the node is down, and after a
// partition its tasks may have been replaced while its containers still
// run; its current generation's entries count again only once the managers
// say it is back (RestoreNode) or it returns with a newer generation.
func (t *table) nodeAlive(name string, now time.Time) bool {
	o := t.owners[name]
	if o == nil || !o.dead {
		return false
	}
	o.dead, o.since = false, now
	return true
}

// dropNode removes the node's entries (managers say it is down).
func (t *table) dropNode(name string, now time.Time) effects {
	var f effects
	if name == t.self {
		return f
	}
	o := t.owner(name, now)
	o.dropped, o.since = true, now
	o.droppedGen = o.maxGen
	if o.maxGen == 0 {
		o.droppedGen = math.MaxUint64
	}
	t.dropOwner(name, math.MaxUint64, &f)
	return f
}

// restoreNode lifts a DropNode.
func (t *table) restoreNode(name string, now time.Time) bool {
	o := t.owners[name]
	if o == nil || !o.dropped {
		return false
	}
	o.dropped, o.since = false, now
	return true
}

// reap forgets tombstones older than ttl, and owner records without entries
// unchanged for ttl (retention for dead or dropped ones: they keep blocking
// stale copies longer).
func (t *table) reap(now time.Time, ttl, retention time.Duration) {
	count := make(map[string]int)
	for _, m := range t.nets {
		for id, s := range m {
			if s.Deleted && now.Sub(s.at) >= ttl {
				var f effects
				t.del(id, &f)
				continue
			}
			count[id.owner]++
		}
	}
	for name, o := range t.owners {
		keep := ttl
		if o.dead || o.dropped {
			keep = retention
		}
		if count[name] == 0 && now.Sub(o.since) >= keep {
			delete(t.owners, name)
		}
	}
}

// live returns copies of the live entries of a network, sorted by Key then Owner.
func (t *table) live(network string) []Entry {
	var out []Entry
	for _, s := range t.nets[network] {
		if !s.Deleted {
			out = append(out, s.Entry.clone())
		}
	}
	slices.SortFunc(out, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Owner, b.Owner))
	})
	return out
}

// all returns every entry for push-pull: ours first, then live ones, then
// tombstones, so a size limit cuts the least useful part.
func (t *table) all() []*Entry {
	var out []*Entry
	for _, m := range t.nets {
		for _, s := range m {
			out = append(out, &s.Entry)
		}
	}
	rank := func(e *Entry) int {
		r := 0
		if e.Owner != t.self {
			r += 2
		}
		if e.Deleted {
			r++
		}
		return r
	}
	slices.SortFunc(out, func(a, b *Entry) int { return cmp.Compare(rank(a), rank(b)) })
	return out
}

func (t *table) own() []Entry {
	var out []Entry
	for _, m := range t.nets {
		for id, s := range m {
			if id.owner == t.self {
				out = append(out, s.Entry.clone())
			}
		}
	}
	return out
}
