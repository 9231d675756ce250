package allocator

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/shoal-project/shoal/internal/specs"
	api "github.com/shoal-project/shoal/proto"
)

// pool is one network's in-memory address book: which addresses of its
// range are held (by whom), and which were freed when (quarantine).
type pool struct {
	name    string
	subnet  netip.Prefix
	rng     netip.Prefix
	gateway netip.Addr
	hi      uint64 // last address of rng
	size    int    // usable addresses

	used   map[netip.Addr]string // address -> holder key
	freed  map[netip.Addr]time.Time
	queue  []freedAddr // freed addresses, oldest first (lazy deletes)
	cursor uint64      // next never-handed-out candidate
}

type freedAddr struct {
	addr netip.Addr
	at   time.Time
}

// newPool builds the pool of a network from its allocated IPAM; nil when
// the network has none (created before allocation existed).
func newPool(n *api.Network) (*pool, error) {
	if len(n.GetIpam()) == 0 || n.Ipam[0].GetSubnet() == "" {
		return nil, fmt.Errorf("network %s has no allocated subnet: remove it and create it again", netName(n))
	}
	c := n.Ipam[0]
	sub, err := netip.ParsePrefix(c.Subnet)
	if err != nil || !sub.Addr().Is4() {
		return nil, fmt.Errorf("network %s has an invalid subnet %q", netName(n), c.Subnet)
	}
	p := &pool{name: netName(n), subnet: sub.Masked(), rng: sub.Masked(), used: map[netip.Addr]string{}, freed: map[netip.Addr]time.Time{}}
	if c.GetRange() != "" {
		if r, err := netip.ParsePrefix(c.Range); err == nil && sub.Contains(r.Addr()) && r.Bits() >= sub.Bits() {
			p.rng = r.Masked()
		}
	}
	p.gateway = specs.FirstHost(p.subnet)
	if c.GetGateway() != "" {
		if gw, err := netip.ParseAddr(c.Gateway); err == nil {
			p.gateway = gw
		}
	}
	p.cursor, p.hi = uint64(specs.AddrToUint32(p.rng.Addr())), uint64(specs.AddrToUint32(specs.LastAddr(p.rng)))
	p.size = specs.UsableAddrs(p.subnet, p.rng, p.gateway)
	return p, nil
}

func netName(n *api.Network) string { return n.GetSpec().GetAnnotations().GetName() }

// candidate reports whether a can be handed out at all.
func (p *pool) candidate(a netip.Addr) bool {
	return p.rng.Contains(a) && a != p.subnet.Addr() && a != specs.LastAddr(p.subnet) && a != p.gateway
}

// claim records that holder holds a (from the store or a reservation).
// It returns the other holder when a was already held by someone else.
func (p *pool) claim(a netip.Addr, holder string) string {
	if other, ok := p.used[a]; ok && other != holder {
		return other
	}
	p.used[a] = holder
	delete(p.freed, a)
	return ""
}

// release frees a held by holder, quarantined from now; it reports
// whether anything was freed.
func (p *pool) release(a netip.Addr, holder string, now time.Time) bool {
	if p.used[a] != holder {
		return false
	}
	delete(p.used, a)
	if p.candidate(a) {
		p.freed[a] = now
		p.queue = append(p.queue, freedAddr{a, now})
	}
	return true
}

// unreserve gives back an address take handed out to holder in a
// transaction that was not written: it is reusable at once (after the
// never-used addresses, before the quarantined ones).
func (p *pool) unreserve(a netip.Addr, holder string) {
	if p.used[a] != holder {
		return
	}
	delete(p.used, a)
	var zero time.Time
	p.freed[a] = zero
	p.queue = append([]freedAddr{{a, zero}}, p.queue...)
}

// take hands out an address to holder: a never-used one first, else the
// least recently freed one out of quarantine. When none is free, it
// returns the time the next quarantined address frees (zero if none).
func (p *pool) take(holder string, now time.Time, quarantine time.Duration) (netip.Addr, time.Time, bool) {
	for p.cursor <= p.hi {
		a := specs.AddrFromUint32(uint32(p.cursor))
		p.cursor++
		if _, held := p.used[a]; held || !p.candidate(a) {
			continue
		}
		if _, wasFreed := p.freed[a]; wasFreed {
			continue
		}
		p.used[a] = holder
		return a, time.Time{}, true
	}
	for len(p.queue) > 0 {
		e := p.queue[0]
		at, freed := p.freed[e.addr]
		if _, held := p.used[e.addr]; held || !freed || !at.Equal(e.at) {
			p.queue = p.queue[1:]
			continue
		}
		if now.Sub(e.at) < quarantine {
			return netip.Addr{}, e.at.Add(quarantine), false
		}
		p.queue = p.queue[1:]
		delete(p.freed, e.addr)
		p.used[e.addr] = holder
		return e.addr, time.Time{}, true
	}
	return netip.Addr{}, time.Time{}, false
}

// exhausted is the error of a failed take.
func (p *pool) exhausted(now, wake time.Time) string {
	msg := fmt.Sprintf("no free address on network %s (%s): all %d addresses are in use", p.name, p.subnet, p.size)
	if !wake.IsZero() {
		msg += fmt.Sprintf(" (recently freed ones are quarantined; the next is reusable in %v)", wake.Sub(now).Round(time.Millisecond))
	}
	return msg
}

// cidr is a in the subnet's prefix length ("10.0.1.5/24").
func (p *pool) cidr(a netip.Addr) string { return netip.PrefixFrom(a, p.subnet.Bits()).String() }

// parseAddr reads "10.0.1.5/24" or "10.0.1.5".
func parseAddr(s string) (netip.Addr, bool) {
	if pfx, err := netip.ParsePrefix(s); err == nil {
		return pfx.Addr(), true
	}
	a, err := netip.ParseAddr(s)
	return a, err == nil
}
