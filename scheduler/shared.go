package scheduler

import (
	"strconv"
	"strings"
)

// Shared node scans. The static filters (ready, availability, platform,
// constraints) depend only on the nodes and on the group's platforms and
// constraints, not on its service, resources, ports or what is placed. So
// groups whose platforms and constraints are equal (staticKey) share one
// pass of the static filters: the nodes that pass, as a list in View.live
// order and as a bit set by position, and how many nodes each filter
// refused. Everything else is per group, on the passing nodes only: the
// service's task count and recent failures per node, max replicas per
// node, resources and host ports (which the groups placed before change).
//
// A group without preferences walks the scan's own load index (index.go)
// of the passing nodes, built the first time one does, so that nodes the
// static filters refuse cost nothing: with a constraint that a third of the
// nodes meet, the walk would otherwise cross the other two thirds once the
// third carries more tasks.
//
// A scan stays valid until a node changes: UpsertNode and RemoveNode drop
// them all. At most maxScans are kept (all are dropped when one more is
// needed), each O(nodes), so the memory stays bounded. A node refers to its
// places in the scans' indexes, to re-key them when its task count changes;
// dropping the scans clears those references, at a cost no more than
// building the scans' indexes took.
type staticScan struct {
	nodes  []*nodeInfo // live nodes passing the static filters, in View.live order
	counts []int       // refusals by static filter, as pipeline.counts

	built   bool      // index and entries are set
	index   loadIndex // the passing nodes by load
	entries []idxNode // the index's entries, one per passing node
}

// scanRef is a node's place in a shared scan's index.
type scanRef struct {
	scan *staticScan
	e    *idxNode
}

const maxScans = 32

// staticKey names what the static filters read from a group's spec.
func staticKey(g *groupSpec) string {
	var b strings.Builder
	put := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	for _, p := range g.platforms {
		put(p.GetOs())
		put(p.GetArchitecture())
	}
	b.WriteByte('|')
	for _, c := range g.constraints {
		put(c.Key)
		put(c.Operator.String())
		put(c.Value)
	}
	return b.String()
}

// staticScan returns the shared scan for g, running it when build is set
// and there is none yet (nil otherwise). The pipeline must be set for g.
func (v *View) staticScan(g *groupSpec, build bool) *staticScan {
	if s := v.scans[g.staticKey]; s != nil || !build {
		return s
	}
	if len(v.scans) >= maxScans {
		v.dropScans()
	}
	s := &staticScan{}
	saved := append([]int(nil), v.pipe.counts...)
	clear(v.pipe.counts)
	for _, n := range v.live {
		v.probe = candidate{n: n}
		if v.pipe.passStatic(&v.probe) {
			s.nodes = append(s.nodes, n)
		}
	}
	s.counts = append([]int(nil), v.pipe.counts[:v.pipe.static]...)
	copy(v.pipe.counts, saved)
	v.scans[g.staticKey] = s
	return s
}

// loadIndex returns the scan's index of its nodes by load, building it
// the first time: O(nodes · log nodes).
func (s *staticScan) loadIndex(v *View) *loadIndex {
	if s.built {
		return &s.index
	}
	v.flushIndex() // task counts are the keys
	s.built = true
	s.entries = make([]idxNode, len(s.nodes))
	for i, n := range s.nodes {
		e := &s.entries[i]
		e.n, e.tasks = n, n.tasks
		s.index.insert(e)
		n.scans = append(n.scans, scanRef{scan: s, e: e})
	}
	return &s.index
}

// dropScans forgets every shared scan: a node changed, or there are too
// many.
func (v *View) dropScans() {
	if len(v.scans) == 0 {
		return
	}
	for _, s := range v.scans {
		if s.built {
			for _, n := range s.nodes {
				clear(n.scans)
				n.scans = n.scans[:0]
			}
		}
	}
	clear(v.scans)
}
