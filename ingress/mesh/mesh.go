package mesh

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
)

// TableName is the nftables table (family ip) Apply owns in the node's
// namespace.
const TableName = "shoal-ingress"

// MasqueradeMark is the packet-mark bit a port with Masquerade set puts on
// its new connections; the table's postrouting chain masquerades packets
// carrying it. Other bits of the mark are kept.
const MasqueradeMark uint32 = 0x10000000

// Names of the objects inside the table.
const (
	nodeportsMap   = "nodeports"   // proto . port -> goto port chain
	closedSet      = "closed"      // proto . port of ingress ports with no backend
	preChain       = "prerouting"  // nat prerouting -100
	outChain       = "output"      // nat output -100
	postChain      = "postrouting" // nat postrouting 100
	inputChain     = "input"       // filter input 0: closed ports refused
	forwardChain   = "forward"     // filter forward 0: hairpin connections marked for masquerade
	guardChain     = "guard"       // filter prerouting -300: no 127/8 from the wire
	maxChainName   = 31
	icmpPortUnrech = 3
)

// Port is one published port as the node serves it.
//
// Proto is "tcp" or "udp". Published is the port accepted on every local
// address of the node (1-65535); Target the port the backends listen on
// (1-65535). Backends are the addresses of the serving tasks on an overlay
// the node is attached to (the node routes to it through its own address on
// that overlay); order and duplicates do not matter.
//
// Masquerade (Docker's behaviour) rewrites the client address to the
// node's address on the backend's overlay; the default keeps the client
// address, which needs the return path of ApplyReturn in every backend.
//
// HostMode ports are programmed the same way but are meant for the node's
// own tasks only (the caller passes only local backends); a host-mode port
// with no backend is not programmed at all (the port is simply not served
// on this node), whereas an ingress port with no backend is refused at
// once: TCP with a reset, UDP with an ICMP port-unreachable.
type Port struct {
	Proto      string
	Published  uint16
	Target     uint16
	Backends   []netip.Addr
	Masquerade bool
	HostMode   bool
}

// plan is the validated, sorted form of a port list, from which both Apply
// (netlink) and Rules (text) are produced, so they cannot disagree.
type plan struct {
	ports  []plannedPort // with at least one backend, sorted by proto, port
	closed []protoPort   // ingress ports with no backend, sorted
}

type protoPort struct {
	proto string // "tcp" | "udp"
	port  uint16
}

func (p protoPort) num() byte {
	if p.proto == "udp" {
		return 17
	}
	return 6
}

// key is the concatenated set key: l4proto and port, each padded to a
// 32-bit register as nft's concatenations are.
func (p protoPort) key() []byte {
	return []byte{p.num(), 0, 0, 0, byte(p.port >> 8), byte(p.port), 0, 0}
}

type plannedPort struct {
	protoPort
	target   uint16
	masq     bool
	host     bool
	chain    string       // port-<proto>-<published>
	backends []netip.Addr // sorted, deduplicated
	beChains []string     // be-<proto>-<published>-<i>, parallel to backends
}

func comparePP(a, b protoPort) int {
	if a.proto != b.proto {
		if a.proto < b.proto {
			return -1
		}
		return 1
	}
	return int(a.port) - int(b.port)
}

// makePlan validates ports and fixes chain names.
func makePlan(ports []Port) (*plan, error) {
	p := &plan{}
	seen := map[protoPort]bool{}
	for _, in := range ports {
		if in.Proto != "tcp" && in.Proto != "udp" {
			return nil, fmt.Errorf("mesh: port %d: protocol %q is not supported: use \"tcp\" or \"udp\"", in.Published, in.Proto)
		}
		pp := protoPort{in.Proto, in.Published}
		if in.Published == 0 {
			return nil, fmt.Errorf("mesh: a %s port has published port 0: give the port the node accepts (1-65535)", in.Proto)
		}
		if in.Target == 0 {
			return nil, fmt.Errorf("mesh: port %d/%s has target port 0: give the port the tasks listen on (1-65535)", in.Published, in.Proto)
		}
		if seen[pp] {
			return nil, fmt.Errorf("mesh: port %d/%s is listed twice: a published port can serve one service only", in.Published, in.Proto)
		}
		seen[pp] = true
		for _, b := range in.Backends {
			if !b.IsValid() || !b.Is4() || b.IsUnspecified() || b.IsLoopback() {
				return nil, fmt.Errorf("mesh: port %d/%s: backend %q is not a usable IPv4 address: give the task's overlay address", in.Published, in.Proto, b)
			}
		}
		if len(in.Backends) == 0 {
			if !in.HostMode {
				p.closed = append(p.closed, pp)
			}
			continue
		}
		backends := slices.Clone(in.Backends)
		slices.SortFunc(backends, func(a, b netip.Addr) int { return a.Compare(b) })
		backends = slices.Compact(backends)
		pl := plannedPort{protoPort: pp, target: in.Target, masq: in.Masquerade, host: in.HostMode,
			chain: fmt.Sprintf("port-%s-%d", pp.proto, pp.port), backends: backends}
		for i := range backends {
			pl.beChains = append(pl.beChains, fmt.Sprintf("be-%s-%d-%d", pp.proto, pp.port, i))
		}
		if n := pl.beChains[len(pl.beChains)-1]; len(n) > maxChainName {
			// Not reachable with uint16 ports and < 10^12 backends; kept
			// as a guard should the naming change.
			return nil, fmt.Errorf("mesh: port %d/%s: chain name %q is too long", pp.port, pp.proto, n)
		}
		p.ports = append(p.ports, pl)
	}
	slices.SortFunc(p.ports, func(a, b plannedPort) int { return comparePP(a.protoPort, b.protoPort) })
	slices.SortFunc(p.closed, comparePP)
	return p, nil
}

// Apply atomically replaces the table "shoal-ingress" in the network
// namespace at netnsPath ("" means the calling process's namespace) with the
// rules for ports, and makes sure net.ipv4.ip_forward is 1 there (the mesh
// forwards to the overlays; Apply never turns it off). An empty list leaves
// a table that intercepts nothing; use Remove to delete it. Applying the
// same list again changes nothing a connection could notice (established
// flows keep their conntrack entries).
func Apply(netnsPath string, ports []Port) error {
	p, err := makePlan(ports)
	if err != nil {
		return err
	}
	if err := setSysctl(netnsPath, "net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	return withConn(netnsPath, func(c *nftables.Conn) error {
		t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
		// add + delete + add in one transaction: replaces whatever is
		// there (or nothing) atomically.
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
		if err := program(c, t, p); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("mesh: replace table %s in %s: %w", TableName, nsName(netnsPath), err)
		}
		return nil
	})
}

// Remove deletes the table "shoal-ingress" from the namespace at netnsPath
// ("" = the caller's). It is not an error if the table does not exist. It
// leaves ip_forward and route_localnet as they are.
func Remove(netnsPath string) error {
	return withConn(netnsPath, func(c *nftables.Conn) error {
		t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
		c.AddTable(t) // so that the delete never fails on a missing table
		c.DelTable(t)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("mesh: delete table %s in %s: %w", TableName, nsName(netnsPath), err)
		}
		return nil
	})
}

func nsName(p string) string {
	if p == "" {
		return "the daemon's namespace"
	}
	return p
}
