package scheduler

import (
	"cmp"
	"slices"
	"strings"
)

// place chooses nodes for k tasks of group g among cands and returns, for
// each task placed in turn, the index of its candidate.
func (v *View) place(g *groupSpec, cands []candidate, k int) []int32 {
	idx := v.idx[:0]
	for i := range cands {
		idx = append(idx, int32(i))
	}
	v.idx = idx
	order := v.order[:0]
	if len(g.prefs) == 0 {
		order = v.fill(cands, idx, k, order)
	} else {
		sp := spreader{v: v, g: g, cands: cands}
		order = sp.spread(idx, k, order)
	}
	v.order = order
	return order
}

// less ranks candidates for the next task: nodes where the service keeps
// failing last, then fewest tasks of the service, then fewest tasks in all,
// then the node's ring position counted from the service's point (tie), so
// that services tied on the same nodes do not all pick the same one, then
// the ID to make the order total. The load index (index.go) keeps nodes in
// this order for a service with no task and no failure on them.
func less(a, b *candidate) bool {
	if a.flagged != b.flagged {
		return b.flagged
	}
	if a.svc != b.svc {
		return a.svc < b.svc
	}
	if a.total != b.total {
		return a.total < b.total
	}
	if a.tie != b.tie {
		return a.tie < b.tie
	}
	return a.n.id < b.n.id
}

// fill places up to k tasks on the candidates listed in idx, one at a time
// on the best node, using a min-heap so a task costs O(log nodes), not a
// rescan.
//
// Only the k best nodes at the start can ever be chosen: a node's rank
// only worsens when it takes a task, so while j < k tasks are placed at
// least one of the k best is untouched and still beats every node outside
// them. When k is small against the nodes, the heap holds just those k.
func (v *View) fill(cands []candidate, idx []int32, k int, order []int32) []int32 {
	h := v.heap[:0]
	for _, i := range idx {
		if cands[i].cap > 0 {
			h = append(h, i)
		}
	}
	if k < len(h) {
		h = bestK(cands, h, k)
	}
	heapify(cands, h)
	for placed := 0; placed < k && len(h) > 0; placed++ {
		ci := h[0]
		c := &cands[ci]
		order = append(order, ci)
		c.placed++
		c.svc++
		c.total++
		c.cap--
		c.n.tasks++
		if c.cap == 0 {
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		siftDown(cands, h, 0)
	}
	v.heap = h
	return order
}

// bestK moves the k best of h to its front, with a max-heap of size k
// that a candidate enters only when it beats the worst kept so far, and
// returns them.
func bestK(cands []candidate, h []int32, k int) []int32 {
	greater := func(a, b int32) bool { return less(&cands[b], &cands[a]) }
	top := h[:k]
	for i := k/2 - 1; i >= 0; i-- {
		siftDownBy(top, i, greater)
	}
	for _, ci := range h[k:] {
		if less(&cands[ci], &cands[top[0]]) {
			top[0] = ci
			siftDownBy(top, 0, greater)
		}
	}
	return top
}

func heapify(cands []candidate, h []int32) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		siftDown(cands, h, i)
	}
}

// siftDown is siftDownBy with less inlined: it runs once per placed task.
func siftDown(cands []candidate, h []int32, i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && less(&cands[h[r]], &cands[h[l]]) {
			m = r
		}
		if !less(&cands[h[m]], &cands[h[i]]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func siftDownBy(h []int32, i int, before func(a, b int32) bool) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && before(h[r], h[l]) {
			m = r
		}
		if !before(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// prefValue is a node's value for one spread preference. Nodes without the
// label form their own branch, apart from nodes whose label is empty.
type prefValue struct {
	s  string
	ok bool
}

func comparePref(a, b prefValue) int {
	if a.ok != b.ok {
		if !a.ok {
			return -1
		}
		return 1
	}
	return strings.Compare(a.s, b.s)
}

type prefKey struct {
	attr  attr
	label string
}

// prefIndex interns the values one preference descriptor takes on the
// nodes, and each node remembers its value's ID (until UpsertNode), so a
// group reads a node's value as an integer rather than with a label map
// lookup and a string hash per node. Values of nodes gone linger; there are
// as many as distinct label values ever seen, which stays small.
type prefIndex struct {
	slot int // index into nodeInfo.prefIDs
	ids  map[prefValue]int32
	vals []prefValue // by ID
}

func (v *View) prefIndex(p Preference) *prefIndex {
	k := prefKey{p.attr, p.label}
	pi := v.prefs[k]
	if pi == nil {
		pi = &prefIndex{slot: len(v.prefs), ids: make(map[prefValue]int32)}
		v.prefs[k] = pi
	}
	return pi
}

func (pi *prefIndex) valueID(p Preference, n *nodeInfo) int32 {
	if pi.slot < len(n.prefIDs) {
		if id := n.prefIDs[pi.slot]; id > 0 {
			return id - 1
		}
	} else {
		n.prefIDs = append(n.prefIDs, make([]int32, pi.slot+1-len(n.prefIDs))...)
	}
	s, ok := p.value(n.node)
	pv := prefValue{s, ok}
	id, seen := pi.ids[pv]
	if !seen {
		id = int32(len(pi.vals))
		pi.ids[pv] = id
		pi.vals = append(pi.vals, pv)
	}
	n.prefIDs[pi.slot] = id + 1
	return id
}

// spreader places one group under spread preferences. Each candidate gets
// a path, the rank of its value at every preference level; ordering the
// candidates by path makes every branch of the preference tree (nodes
// sharing the first i values) a contiguous run, so the tree needs no
// structure of its own.
type spreader struct {
	v     *View
	g     *groupSpec
	cands []candidate
	paths []int32       // paths[i*levels+l]: rank of candidate i's value at level l
	vals  [][]prefValue // per level, the values by rank
}

func (sp *spreader) spread(idx []int32, k int, order []int32) []int32 {
	levels := len(sp.g.prefs)
	sp.paths = make([]int32, len(sp.cands)*levels)
	sp.vals = make([][]prefValue, levels)
	for l, p := range sp.g.prefs {
		pi := sp.v.prefIndex(p)
		for i := range sp.cands {
			sp.paths[i*levels+l] = pi.valueID(p, sp.cands[i].n)
		}
		// Rank the values present so that branch order depends on the
		// values, not on the order nodes or values came into the view.
		rank := make([]int32, len(pi.vals))
		var used []int32
		for i := range sp.cands {
			if id := sp.paths[i*levels+l]; rank[id] == 0 {
				rank[id] = -1
				used = append(used, id)
			}
		}
		slices.SortFunc(used, func(a, b int32) int { return comparePref(pi.vals[a], pi.vals[b]) })
		sp.vals[l] = make([]prefValue, len(used))
		for r, id := range used {
			rank[id] = int32(r)
			sp.vals[l][r] = pi.vals[id]
		}
		for i := range sp.cands {
			sp.paths[i*levels+l] = rank[sp.paths[i*levels+l]]
		}
	}
	// LSD radix sort by path: one stable counting pass per level, last
	// level first, O(levels · nodes).
	tmp := make([]int32, len(idx))
	for l := levels - 1; l >= 0; l-- {
		starts := make([]int, len(sp.vals[l])+1)
		for _, i := range idx {
			starts[sp.paths[int(i)*levels+l]+1]++
		}
		for r := 1; r < len(starts); r++ {
			starts[r] += starts[r-1]
		}
		for _, i := range idx {
			r := sp.paths[int(i)*levels+l]
			tmp[starts[r]] = i
			starts[r]++
		}
		idx, tmp = tmp, idx
	}
	return sp.level(idx, 0, k, order)
}

// branch is one value of a preference at some level of the tree.
type branch struct {
	lo, hi int // run in the ordered candidates
	count  int // the service's tasks on its nodes, full ones included
	cap    int // tasks of the group its nodes can take
	alloc  int // tasks it gets now
	tie    uint64
}

// level splits k tasks among the branches of idx at the given preference
// level so that the branches' task counts end as even as capacity allows,
// then splits each branch's share by the next preference, down to the
// nodes.
func (sp *spreader) level(idx []int32, level, k int, order []int32) []int32 {
	levels := len(sp.g.prefs)
	if level == levels {
		return sp.v.fill(sp.cands, idx, k, order)
	}
	if len(idx) == 0 {
		return order // no node passed the filters: nothing to split
	}
	var bs []branch
	for i := 0; i < len(idx); {
		b := branch{lo: i}
		r := sp.paths[int(idx[i])*levels+level]
		for ; i < len(idx) && sp.paths[int(idx[i])*levels+level] == r; i++ {
			c := &sp.cands[idx[i]]
			b.count += c.svc
			b.cap += c.cap
		}
		b.hi = i
		if val := sp.vals[level][r]; val.ok {
			b.tie = mix(hashString(val.s) ^ sp.g.seed)
		} else {
			b.tie = mix(sp.g.seed)
		}
		bs = append(bs, b)
	}
	waterFill(bs, k)
	for _, b := range bs {
		if b.alloc > 0 {
			order = sp.level(idx[b.lo:b.hi], level+1, b.alloc, order)
		}
	}
	return order
}

// waterFill sets each branch's alloc so that k tasks (or all the capacity
// there is) raise the lowest branches first: it finds the highest level L
// to which every branch can be filled (or up to its capacity) with at most
// k tasks, then gives one more to as many branches at L as tasks remain,
// chosen by hash. This is O(branches · log tasks), whatever k is.
func waterFill(bs []branch, k int) {
	total, lo, hi := 0, bs[0].count, 0
	for _, b := range bs {
		total += b.cap
		lo = min(lo, b.count)
		hi = max(hi, b.count+b.cap)
	}
	k = min(k, total)
	upTo := func(level int) int {
		s := 0
		for _, b := range bs {
			s += max(0, min(level-b.count, b.cap))
		}
		return s
	}
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if upTo(mid) <= k {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	rem := k
	var room []int
	for i := range bs {
		b := &bs[i]
		b.alloc = max(0, min(lo-b.count, b.cap))
		rem -= b.alloc
		if b.count <= lo && b.alloc < b.cap {
			room = append(room, i)
		}
	}
	slices.SortFunc(room, func(x, y int) int {
		return cmp.Or(cmp.Compare(bs[x].tie, bs[y].tie), cmp.Compare(bs[x].lo, bs[y].lo))
	})
	for _, i := range room[:rem] {
		bs[i].alloc++
	}
}
