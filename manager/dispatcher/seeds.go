package dispatcher

import (
	"net"
	"slices"

	api "github.com/shoal-project/shoal/proto"
)

// seedCand is a node that may be a gossip seed.
type seedCand struct {
	manager bool
	id      string
	addr    string
}

// before is the seed order: managers first, then by node ID.
func (c seedCand) before(o seedCand) bool {
	if c.manager != o.manager {
		return c.manager
	}
	return c.id < o.id
}

// seedOf returns n as a seed candidate: a ready node with a data-path
// address (its status address's host when it names none).
func seedOf(n *api.Node) (seedCand, bool) {
	if n.GetStatus().GetState() != api.NodeStatus_READY {
		return seedCand{}, false
	}
	addr := n.GetDescription().GetDataPathAddr()
	if addr == "" {
		addr = n.GetStatus().GetAddr()
		if h, _, err := net.SplitHostPort(addr); err == nil {
			addr = h
		}
	}
	if addr == "" {
		return seedCand{}, false
	}
	return seedCand{n.GetRole() == api.NodeRole_MANAGER, n.Id, addr}, true
}

// seedSet keeps every candidate and the first topSeeds of them in seed
// order (one more than a message takes, so leaving out the receiving node
// still leaves enough). A change outside the top costs O(1) (a comparison
// with the last of the top); only a change to a node in the top, or a top
// left short, scans all candidates. Not safe for concurrent use.
type seedSet struct {
	all map[string]seedCand
	top []seedCand // sorted; the first min(len(all), topSeeds) candidates
}

const topSeeds = maxGossipSeeds + 1

func newSeedSet() seedSet { return seedSet{all: map[string]seedCand{}} }

// add records n without maintaining top (refill after a series of adds).
func (s *seedSet) add(n *api.Node) {
	if c, ok := seedOf(n); ok {
		s.all[c.id] = c
	}
}

// refill recomputes top from all.
func (s *seedSet) refill() {
	s.top = s.top[:0]
	for _, c := range s.all {
		s.insertTop(c)
	}
}

// insertTop puts c in top at its place, keeping at most topSeeds.
func (s *seedSet) insertTop(c seedCand) {
	if len(s.top) == topSeeds && !c.before(s.top[topSeeds-1]) {
		return
	}
	i, _ := slices.BinarySearchFunc(s.top, c, func(a, b seedCand) int {
		if a.before(b) {
			return -1
		}
		if b.before(a) {
			return 1
		}
		return 0
	})
	s.top = slices.Insert(s.top, i, c)
	if len(s.top) > topSeeds {
		s.top = s.top[:topSeeds]
	}
}

// update applies one node event.
func (s *seedSet) update(n *api.Node, deleted bool) {
	c, ok := seedOf(n)
	ok = ok && !deleted
	prev, had := s.all[n.Id]
	switch {
	case !ok && !had:
		return
	case ok && had && prev == c:
		return
	case ok:
		s.all[c.id] = c
	default:
		delete(s.all, n.Id)
	}
	if had && slices.Contains(s.top, prev) {
		s.refill() // a seed changed or left: the next one may be anywhere
		return
	}
	if ok {
		s.insertTop(c)
	}
}

// list returns the addresses of the first maxGossipSeeds candidates other
// than self.
func (s *seedSet) list(self string) []string {
	var out []string
	for _, c := range s.top {
		if c.id == self {
			continue
		}
		if len(out) == maxGossipSeeds {
			break
		}
		out = append(out, c.addr)
	}
	return out
}
