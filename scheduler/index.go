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
	root  *nodeInfo
	size  int
	stack []*nodeInfo // the cursor's path, reused
}

// keyBefore reports whether n's key sorts before (tasks, ring, id).
func keyBefore(n *nodeInfo, tasks int, ring uint64, id string) bool {
	if n.keyTasks != tasks {
		return n.keyTasks < tasks
	}
	if n.ring != ring {
		return n.ring < ring
	}
	return n.id < id
}

func (x *loadIndex) insert(n *nodeInfo) {
	n.left, n.right = nil, nil
	x.root = treapInsert(x.root, n)
	x.size++
	n.inIndex = true
}

func (x *loadIndex) remove(n *nodeInfo) {
	x.root = treapDelete(x.root, n)
	n.left, n.right = nil, nil
	x.size--
	n.inIndex = false
}

func treapInsert(t, n *nodeInfo) *nodeInfo {
	if t == nil {
		return n
	}
	if n.hash > t.hash {
		n.left, n.right = treapSplit(t, n)
		return n
	}
	if keyBefore(n, t.keyTasks, t.ring, t.id) {
		t.left = treapInsert(t.left, n)
	} else {
		t.right = treapInsert(t.right, n)
	}
	return t
}

// treapSplit splits t into the nodes whose keys sort before k's and those
// after (k itself is not in t).
func treapSplit(t, k *nodeInfo) (l, r *nodeInfo) {
	if t == nil {
		return nil, nil
	}
	if keyBefore(t, k.keyTasks, k.ring, k.id) {
		t.right, r = treapSplit(t.right, k)
		return t, r
	}
	l, t.left = treapSplit(t.left, k)
	return l, t
}

func treapDelete(t, n *nodeInfo) *nodeInfo {
	if t == nil {
		return nil
	}
	if t == n {
		return treapMerge(t.left, t.right)
	}
	if keyBefore(n, t.keyTasks, t.ring, t.id) {
		t.left = treapDelete(t.left, n)
	} else {
		t.right = treapDelete(t.right, n)
	}
	return t
}

func treapMerge(a, b *nodeInfo) *nodeInfo {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	if a.hash > b.hash {
		a.right = treapMerge(a.right, b)
		return a
	}
	b.left = treapMerge(a, b.left)
	return b
}

// seek positions the cursor on the first node whose key is at least
// (tasks, ring, ""), and returns it (nil past the end).
func (x *loadIndex) seek(tasks int, ring uint64) *nodeInfo {
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

func (x *loadIndex) cur() *nodeInfo {
	if len(x.stack) == 0 {
		return nil
	}
	return x.stack[len(x.stack)-1]
}

// next moves the cursor to the following node and returns it: amortized
// O(1).
func (x *loadIndex) next() *nodeInfo {
	n := x.stack[len(x.stack)-1]
	x.stack = x.stack[:len(x.stack)-1]
	for t := n.right; t != nil; t = t.left {
		x.stack = append(x.stack, t)
	}
	return x.cur()
}

// schedulable is whether a node belongs in the load index.
func schedulable(n *nodeInfo) bool { return n.node != nil && n.ready && n.active }

// reindex puts n where its current state belongs in the load index.
func (v *View) reindex(n *nodeInfo) {
	want := schedulable(n)
	switch {
	case n.inIndex && (!want || n.keyTasks != n.tasks):
		v.index.remove(n)
	case !n.inIndex && want:
	default:
		return
	}
	if want {
		n.keyTasks = n.tasks
		v.index.insert(n)
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
	x := &v.index
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
	visit := func(n *nodeInfo) bool {
		if n.mark == v.epoch {
			return true
		}
		if looked++; looked > limit {
			return false
		}
		if scan != nil && scan.pass[n.pos/64]&(1<<(n.pos%64)) == 0 {
			return true
		}
		cands = append(cands, candidate{n: n, total: n.tasks, tie: n.ring - g.ring})
		c := &cands[len(cands)-1]
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
	for tasks := first.keyTasks; ; {
		// The bucket of nodes with this many tasks, from the service's
		// point on the ring to its end, then from its start.
		for n := x.seek(tasks, g.ring); n != nil && n.keyTasks == tasks && !done(); n = x.next() {
			if !visit(n) {
				v.cands = cands
				return nil, false
			}
		}
		for n := x.seek(tasks, 0); n != nil && n.keyTasks == tasks && n.ring < g.ring && !done(); n = x.next() {
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
		tasks = n.keyTasks
	}
	v.cands = cands
	return cands, true
}
