package scheduler

import "time"

// The load index orders the schedulable nodes (known, READY and ACTIVE) by
// what ranks a node for a service that has no task on it and has not
// failed on it: fewest tasks in all, then the node's place on a hash ring
// counted from the service's own point (see candidate.tie). For such a
// "plain" node less compares exactly these, so the best plain nodes for any
// service are a walk from the front of the index, and a group of k tasks
// without preferences needs about k nodes looked at, not all of them.
//
// It is a treap threaded through nodeInfo (no allocation, three words a
// node) keyed by (tasks, ring, ID); the priority is the node's ID hash, so
// its shape, like everything here, depends only on the nodes. Insert and
// delete cost O(log n) expected; the view moves a node when its task count
// changes (charge, release, a group's placements), on UpsertNode and on
// RemoveNode.
type loadIndex struct {
	root  *idxNode
	size  int
	stack []*idxNode // the cursor's path, reused
}

// idxNode is a node's place in one load index: the view's (nodeInfo.self)
// or a shared scan's.
type idxNode struct {
	n           *nodeInfo
	tasks       int // the node's tasks when last indexed: the key
	in          bool
	left, right *idxNode
}

// keyBefore reports whether e's key sorts before (tasks, ring, id).
func keyBefore(e *idxNode, tasks int, ring uint64, id string) bool {
	if e.tasks != tasks {
		return e.tasks < tasks
	}
	if e.n.ring != ring {
		return e.n.ring < ring
	}
	return e.n.id < id
}

func (x *loadIndex) insert(e *idxNode) {
	e.left, e.right = nil, nil
	x.root = treapInsert(x.root, e)
	x.size++
	e.in = true
}

func (x *loadIndex) remove(e *idxNode) {
	x.root = treapDelete(x.root, e)
	e.left, e.right = nil, nil
	x.size--
	e.in = false
}

// move re-keys e under its node's current task count.
func (x *loadIndex) move(e *idxNode) {
	if e.tasks != e.n.tasks {
		x.remove(e)
		e.tasks = e.n.tasks
		x.insert(e)
	}
}

func treapInsert(t, e *idxNode) *idxNode {
	if t == nil {
		return e
	}
	if e.n.hash > t.n.hash {
		e.left, e.right = treapSplit(t, e)
		return e
	}
	if keyBefore(e, t.tasks, t.n.ring, t.n.id) {
		t.left = treapInsert(t.left, e)
	} else {
		t.right = treapInsert(t.right, e)
	}
	return t
}

// treapSplit splits t into the entries whose keys sort before k's and those
// after (k itself is not in t).
func treapSplit(t, k *idxNode) (l, r *idxNode) {
	if t == nil {
		return nil, nil
	}
	if keyBefore(t, k.tasks, k.n.ring, k.n.id) {
		t.right, r = treapSplit(t.right, k)
		return t, r
	}
	l, t.left = treapSplit(t.left, k)
	return l, t
}

func treapDelete(t, e *idxNode) *idxNode {
	if t == nil {
		return nil
	}
	if t == e {
		return treapMerge(t.left, t.right)
	}
	if keyBefore(e, t.tasks, t.n.ring, t.n.id) {
		t.left = treapDelete(t.left, e)
	} else {
		t.right = treapDelete(t.right, e)
	}
	return t
}

func treapMerge(a, b *idxNode) *idxNode {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	if a.n.hash > b.n.hash {
		a.right = treapMerge(a.right, b)
		return a
	}
	b.left = treapMerge(a, b.left)
	return b
}

// seek positions the cursor on the first entry whose key is at least
// (tasks, ring, ""), and returns it (nil past the end).
func (x *loadIndex) seek(tasks int, ring uint64) *idxNode {
	x.stack = x.stack[:0]
	for t := x.root; t != nil; {
		if keyBefore(t, tasks, ring, "") {
			t = t.right
		} else {
			x.stack = append(x.stack, t)
			t = t.left
		}
	}
	return x.cur()
}

func (x *loadIndex) cur() *idxNode {
	if len(x.stack) == 0 {
		return nil
	}
	return x.stack[len(x.stack)-1]
}

// next moves the cursor to the following entry and returns it: amortized
// O(1).
func (x *loadIndex) next() *idxNode {
	e := x.stack[len(x.stack)-1]
	x.stack = x.stack[:len(x.stack)-1]
	for t := e.right; t != nil; t = t.left {
		x.stack = append(x.stack, t)
	}
	return x.cur()
}

// schedulable is whether a node belongs in the load index.
func schedulable(n *nodeInfo) bool { return n.node != nil && n.ready && n.active }

// reindex notes that n's place in the load indexes may have changed: the
// move waits until Schedule next needs the indexes (flushIndex), so that a
// store event costs O(1) and a node changed many times between two
// Schedule calls moves once.
func (v *View) reindex(n *nodeInfo) {
	if !n.dirty {
		n.dirty = true
		v.dirty = append(v.dirty, n)
		// Each node is listed once, but nodes removed and added again
		// are new entries: flush before the list outgrows the view.
		if len(v.dirty) > 2*len(v.nodes)+64 {
			v.flushIndex()
		}
	}
}

// flushIndex moves the nodes changed since the last flush.
func (v *View) flushIndex() {
	for i, n := range v.dirty {
		n.dirty = false
		v.move(n)
		v.dirty[i] = nil
	}
	v.dirty = v.dirty[:0]
}

// move puts n where its current state belongs in the view's load index
// and re-keys it in the shared scans' indexes that hold it: O(log nodes)
// per index.
func (v *View) move(n *nodeInfo) {
	want, e := schedulable(n), &n.self
	switch {
	case e.in && !want:
		v.index.remove(e)
	case e.in:
		v.index.move(e)
	case want:
		e.n, e.tasks = n, n.tasks
		v.index.insert(e)
	}
	for _, r := range n.scans {
		r.scan.index.move(r.e)
	}
}

// quickCandidates finds candidates for the k tasks of group g (no spread
// preferences) without a pass over every node. The nodes where the service
// has tasks or has failed ("special": less ranks them by more than the
// index's key) are looked at one by one; the other nodes are walked in the
// index's order, which is less's order among them, until k of them can take
// a task. Since a node's rank only worsens as it takes tasks, no task of the
// group can go to a plain node beyond those k (see fill), so fill over
// these candidates places the group exactly as over all nodes. With k plain
// nodes that each take at least one task, every task of the group is placed.
//
// It gives up (false) when the walk runs out of nodes or looks at more than
// an eighth of them before finding k; the caller then runs the full pass,
// which also counts the refusals that make the reason of a task left
// pending. scan, when not nil, answers the static filters for the group.
func (v *View) quickCandidates(g *groupSpec, k int, scan *staticScan, now time.Time) ([]candidate, bool) {
	if k >= len(v.live) || scan != nil && k >= len(scan.nodes) {
		// No walk can find k nodes: do not flush the moves for nothing.
		return nil, false
	}
	v.flushIndex()
	x := &v.index
	if scan != nil {
		x = scan.loadIndex(v)
	}
	if k >= x.size {
		return nil, false
	}
	v.epoch++
	cands := v.cands[:0]
	special := func(n *nodeInfo, svc int) {
		if n.mark == v.epoch {
			return
		}
		n.mark, n.svc = v.epoch, svc
		if n.node == nil {
			return // a placeholder: never a candidate
		}
		var ok bool
		if cands, ok = v.addCandidate(cands, g, n, svc, now); ok {
			c := &cands[len(cands)-1]
			if v.pipe.capacity(c, k); c.cap == 0 {
				cands = cands[:len(cands)-1]
			}
		}
	}
	for n, c := range v.services[g.service] {
		special(n, c)
	}
	for n := range v.failed[g.service] {
		if n.failures[g.service] == nil {
			delete(v.failed[g.service], n) // the record went stale
			continue
		}
		special(n, 0)
	}
	if len(v.failed[g.service]) == 0 {
		delete(v.failed, g.service)
	}

	found, looked, limit := 0, 0, max(64, x.size/8)
	visit := func(e *idxNode) bool {
		n := e.n
		if n.mark == v.epoch {
			return true
		}
		if looked++; looked > limit {
			return false
		}
		cands = append(cands, candidate{n: n, total: n.tasks, tie: n.ring - g.ring})
		c := &cands[len(cands)-1]
		// A scan's index holds only nodes that pass the static filters.
		if scan == nil && !v.pipe.passStatic(c) {
			cands = cands[:len(cands)-1]
			return true
		}
		if v.pipe.capacity(c, k); c.cap == 0 {
			cands = cands[:len(cands)-1]
			return true
		}
		found++
		return true
	}
	done := func() bool { return found == k }

	first := x.root
	for first != nil && first.left != nil {
		first = first.left
	}
	for tasks := first.tasks; ; {
		// The bucket of nodes with this many tasks, from the service's
		// point on the ring to its end, then from its start.
		for n := x.seek(tasks, g.ring); n != nil && n.tasks == tasks && !done(); n = x.next() {
			if !visit(n) {
				v.cands = cands
				return nil, false
			}
		}
		for n := x.seek(tasks, 0); n != nil && n.tasks == tasks && n.n.ring < g.ring && !done(); n = x.next() {
			if !visit(n) {
				v.cands = cands
				return nil, false
			}
		}
		if done() {
			break
		}
		n := x.seek(tasks+1, 0)
		if n == nil {
			v.cands = cands
			return nil, false
		}
		tasks = n.tasks
	}
	v.cands = cands
	return cands, true
}
