package remotes

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	api "github.com/shoal-project/shoal/proto"
)

// Remotes is an agent's list of managers with their weights. A manager's
// chance of being picked is its weight halved for each failure since its
// last successful session, so a failing manager is tried less and less but
// never dropped: it may be the only one that comes back. Safe for
// concurrent use.
type Remotes struct {
	mu    sync.Mutex
	peers map[string]*remote
	rng   *rand.Rand
}

type remote struct {
	weight   float64
	failures int
}

// defaultWeight is given to managers from the config and to peers that a
// manager sends without a weight.
const defaultWeight = 1

func New(addrs []string, seed uint64) *Remotes {
	r := &Remotes{peers: map[string]*remote{}, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for _, a := range addrs {
		r.peers[a] = &remote{weight: defaultWeight}
	}
	return r
}

// SeedFor derives the randomness of an agent from its node ID, so a run can
// be replayed when debugging while different nodes spread their choices.
func SeedFor(nodeID string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(nodeID))
	return h.Sum64()
}

// Replace sets the manager list to the one a manager sent. An empty list
// keeps the current one: the agent must never be left with nothing to dial.
// Failure counts of managers still listed are kept.
func (r *Remotes) Replace(peers []*api.WeightedPeer) {
	next := map[string]*remote{}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range peers {
		addr := p.GetPeer().GetAddr()
		if addr == "" {
			continue
		}
		w := float64(p.GetWeight())
		if w <= 0 {
			w = defaultWeight
		}
		rm := &remote{weight: w}
		if old, ok := r.peers[addr]; ok {
			rm.failures = old.failures
		}
		next[addr] = rm
	}
	if len(next) > 0 {
		r.peers = next
	}
}

// Pick chooses a manager at random by effective weight, leaving out avoid
// (the manager that just failed) when there is any other.
func (r *Remotes) Pick(avoid string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	addrs := make([]string, 0, len(r.peers))
	for a := range r.peers {
		if a != avoid || len(r.peers) == 1 {
			addrs = append(addrs, a)
		}
	}
	slices.Sort(addrs) // map order must not leak into the seeded choice
	var total float64
	for _, a := range addrs {
		total += r.peers[a].effective()
	}
	x := r.rng.Float64() * total
	for _, a := range addrs {
		x -= r.peers[a].effective()
		if x < 0 {
			return a
		}
	}
	return addrs[len(addrs)-1]
}

func (p *remote) effective() float64 {
	return p.weight * math.Pow(0.5, float64(min(p.failures, 16)))
}

// Failed down-weights addr after a failed or lost session.
func (r *Remotes) Failed(addr string) {
	r.mu.Lock()
	if p, ok := r.peers[addr]; ok {
		p.failures++
	}
	r.mu.Unlock()
}

// Succeeded restores addr's weight once a session is established.
func (r *Remotes) Succeeded(addr string) {
	r.mu.Lock()
	if p, ok := r.peers[addr]; ok {
		p.failures = 0
	}
	r.mu.Unlock()
}

// Addrs lists the known managers, sorted.
func (r *Remotes) Addrs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.peers))
	for a := range r.peers {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}
