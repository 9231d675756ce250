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
// A scan stays valid until a node changes: UpsertNode and RemoveNode drop
// them all. At most maxScans are kept (all are dropped when one more is
// needed), each O(nodes), so the memory stays bounded.
type staticScan struct {
	nodes  []*nodeInfo // live nodes passing the static filters, in View.live order
	pass   []uint64    // bit set by nodeInfo.pos
	counts []int       // refusals by static filter, as pipeline.counts
}

const maxScans = 64

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
		clear(v.scans)
	}
	s := &staticScan{pass: make([]uint64, (len(v.live)+63)/64)}
	saved := append([]int(nil), v.pipe.counts...)
	clear(v.pipe.counts)
	for _, n := range v.live {
		v.probe = candidate{n: n}
		if v.pipe.passStatic(&v.probe) {
			s.nodes = append(s.nodes, n)
			s.pass[n.pos/64] |= 1 << (n.pos % 64)
		}
	}
	s.counts = append([]int(nil), v.pipe.counts[:v.pipe.static]...)
	copy(v.pipe.counts, saved)
	v.scans[g.staticKey] = s
	return s
}

// dropScans forgets every shared scan: a node changed.
func (v *View) dropScans() {
	if len(v.scans) > 0 {
		clear(v.scans)
	}
}
