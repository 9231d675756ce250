package lab

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Network faults. Packets are dropped by an nftables table (inet shoal_lab) inside the receiving host's
// namespace, at prerouting before anything else: whatever enters the host from a blocked peer — to the
// host, or forwarded to its containers — is lost. Senders see silence (timeouts), as in a real
// partition, never the immediate EPERM that an output drop gives. The rules live in the namespace, so
// they survive Kill, Restart and LinkDown, and end with Heal or the lab. Traffic with Outside is never
// dropped.

// Partition cuts h off from the given hosts in both directions; with none, from every other lab host.
func (h *Host) Partition(from ...*Host) error {
	peers := h.peers(from)
	return h.lab.setDrops(h, peers, 100, true)
}

// DropInbound drops what the given hosts (or all others) send to h, while what h sends still arrives:
// a one-way partition. TCP connections break both ways (their acknowledgements are lost), UDP and
// gossip do not.
func (h *Host) DropInbound(from ...*Host) error {
	return h.lab.setDrops(h, h.peers(from), 100, false)
}

// Loss drops the given percentage (0..100) of packets between h and the given hosts (or all others),
// at random, in both directions. Loss(0, ...) removes the rule; 100 is a partition.
func (h *Host) Loss(percent int, from ...*Host) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("lab: Loss: percent %d out of 0..100", percent)
	}
	return h.lab.setDrops(h, h.peers(from), percent, true)
}

// Heal removes every drop between h and any host, in both directions (rules other hosts hold against
// each other stay).
func (h *Host) Heal() error {
	l := h.lab
	l.mu.Lock()
	defer l.mu.Unlock()
	touched := []*Host{h}
	delete(l.drops, h)
	for r, senders := range l.drops {
		if _, ok := senders[h]; ok {
			delete(senders, h)
			touched = append(touched, r)
		}
	}
	return l.applyDropsLocked(touched)
}

// HealAll removes every drop in the lab.
func (l *Lab) HealAll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	touched := make([]*Host, 0, len(l.drops))
	for r := range l.drops {
		touched = append(touched, r)
	}
	clear(l.drops)
	return l.applyDropsLocked(touched)
}

// LinkDown sets the root-namespace end of h's veth down: h's eth0 loses carrier, like a pulled cable.
func (h *Host) LinkDown() error {
	_, err := run("ip", "link", "set", h.Veth, "down")
	return err
}

// LinkUp undoes LinkDown.
func (h *Host) LinkUp() error {
	_, err := run("ip", "link", "set", h.Veth, "up")
	return err
}

func (h *Host) peers(from []*Host) []*Host {
	if len(from) == 0 {
		return h.lab.Others(h)
	}
	return from
}

// setDrops records that receiver drops percent of packets from each sender (and, if both, the reverse
// too), then rewrites the tables of every host concerned.
func (l *Lab) setDrops(h *Host, peers []*Host, percent int, both bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	set := func(recv, send *Host) {
		if percent == 0 {
			delete(l.drops[recv], send)
			return
		}
		if l.drops[recv] == nil {
			l.drops[recv] = map[*Host]int{}
		}
		l.drops[recv][send] = percent
	}
	touched := []*Host{h}
	for _, p := range peers {
		if p == h || p.lab != l {
			return fmt.Errorf("lab: %s cannot drop traffic from %s", h.Name, p.Name)
		}
		set(h, p)
		if both {
			set(p, h)
			touched = append(touched, p)
		}
	}
	return l.applyDropsLocked(touched)
}

// applyDropsLocked replaces, in one atomic nft transaction per host, each touched host's table with one
// made from l.drops (no table when the host drops nothing).
func (l *Lab) applyDropsLocked(touched []*Host) error {
	slices.SortFunc(touched, func(a, b *Host) int { return a.Index - b.Index })
	touched = slices.Compact(touched)
	var errs []error
	for _, r := range touched {
		if _, err := runInput(dropRules(l.drops[r]), "nsenter", "--net="+r.Path(), "--", "nft", "-f", "-"); err != nil {
			errs = append(errs, fmt.Errorf("lab: nft in %s: %w", r.Name, err))
		}
	}
	return errors.Join(errs...)
}

func dropRules(senders map[*Host]int) string {
	var b strings.Builder
	b.WriteString("table inet shoal_lab\ndelete table inet shoal_lab\n")
	if len(senders) == 0 {
		return b.String()
	}
	b.WriteString("table inet shoal_lab {\n\tchain drops {\n\t\ttype filter hook prerouting priority -400; policy accept;\n")
	hosts := make([]*Host, 0, len(senders))
	for s := range senders {
		hosts = append(hosts, s)
	}
	slices.SortFunc(hosts, func(a, b *Host) int { return a.Index - b.Index })
	for _, s := range hosts {
		if p := senders[s]; p >= 100 {
			fmt.Fprintf(&b, "\t\tip saddr %s drop\n", s.Addr)
		} else {
			fmt.Fprintf(&b, "\t\tip saddr %s numgen random mod 100 < %d drop\n", s.Addr, p)
		}
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}
