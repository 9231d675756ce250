package dispatcher

import (
	"fmt"
	"math/rand"
	"net"
	"slices"
	"sort"
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

// referenceSeeds is the full pass the seed set replaces: scan every node,
// sort, take the first maxGossipSeeds other than self.
func referenceSeeds(nodes map[string]*api.Node, self string) []string {
	type cand struct {
		manager  bool
		id, addr string
	}
	var cs []cand
	for _, n := range nodes {
		if n.Id == self || n.GetStatus().GetState() != api.NodeStatus_READY {
			continue
		}
		addr := n.GetDescription().GetDataPathAddr()
		if addr == "" {
			addr = n.GetStatus().GetAddr()
			if h, _, err := net.SplitHostPort(addr); err == nil {
				addr = h
			}
		}
		if addr == "" {
			continue
		}
		cs = append(cs, cand{n.GetRole() == api.NodeRole_MANAGER, n.Id, addr})
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].manager != cs[j].manager {
			return cs[i].manager
		}
		return cs[i].id < cs[j].id
	})
	var out []string
	for _, c := range cs[:min(len(cs), maxGossipSeeds)] {
		out = append(out, c.addr)
	}
	return out
}

// TestSeedSetEqualsReference applies random node events (created, made
// ready or down, promoted, readdressed, deleted) and compares every node's
// seeds with the full pass after each, from a fresh set now and then too.
func TestSeedSetEqualsReference(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		nodes := map[string]*api.Node{}
		s := newSeedSet()
		ids := make([]string, 30)
		for i := range ids {
			ids[i] = fmt.Sprintf("n%02d", i)
		}
		for step := 0; step < 400; step++ {
			id := ids[rng.Intn(len(ids))]
			if rng.Intn(8) == 0 {
				if n := nodes[id]; n != nil {
					delete(nodes, id)
					s.update(n, true)
				}
			} else {
				n := &api.Node{Id: id, Role: api.NodeRole(rng.Intn(2)), Status: &api.NodeStatus{State: api.NodeStatus_READY}}
				switch rng.Intn(4) {
				case 0:
					n.Status.State = api.NodeStatus_DOWN
				case 1:
					n.Description = &api.NodeDescription{DataPathAddr: fmt.Sprintf("192.168.0.%d", rng.Intn(3))}
				}
				if rng.Intn(6) != 0 {
					n.Status.Addr = fmt.Sprintf("10.0.0.%d:%d", rng.Intn(3), 2377)
				}
				nodes[id] = n
				s.update(n, false)
			}
			if rng.Intn(50) == 0 {
				s = newSeedSet()
				for _, n := range nodes {
					s.add(n)
				}
				s.refill()
			}
			for _, self := range append(ids[:5:5], "none") {
				if got, want := s.list(self), referenceSeeds(nodes, self); !slices.Equal(got, want) {
					t.Fatalf("seed %d step %d, seeds for %s: %v, the full pass gives %v", seed, step, self, got, want)
				}
			}
		}
	}
}

// BenchmarkGossipSeeds compares one session message's seeds at 5,000
// nodes: the full pass (scan and sort, as before) and the maintained set.
func BenchmarkGossipSeeds(b *testing.B) {
	nodes := map[string]*api.Node{}
	s := newSeedSet()
	for i := 0; i < 5000; i++ {
		n := &api.Node{Id: fmt.Sprintf("n%05d", i), Role: api.NodeRole_WORKER,
			Status: &api.NodeStatus{State: api.NodeStatus_READY, Addr: fmt.Sprintf("10.0.%d.%d", i/250, i%250)}}
		if i < 3 {
			n.Role = api.NodeRole_MANAGER
		}
		nodes[n.Id] = n
		s.add(n)
	}
	s.refill()
	b.Run("full_pass", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			referenceSeeds(nodes, "n00042")
		}
	})
	b.Run("seed_set", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			s.list("n00042")
		}
	})
}
