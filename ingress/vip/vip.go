package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/shoal-project/shoal/ingress/internal/nftconn"
)

// TableName is the nftables table (family ip) Apply owns in a task netns.
const TableName = "shoal-vip"

// Names of the objects inside the table.
const (
	vipsMap     = "vips"          // VIP -> goto svc-<id>
	novipSet    = "novip"         // VIPs of services with no backend
	natChain    = "nat-output"    // type nat hook output priority -100
	filterChain = "filter-output" // type filter hook output priority 0
)

// maxChainName is the longest chain name Apply generates (the brief's bound,
// well under the kernel's limit).
const maxChainName = 31

// maxIDPart is how many characters of a service ID go into chain names:
// "be-" + 16 + "-" + up to 11 digits fits in maxChainName.
const maxIDPart = 16

// Service is one VIP-mode service as seen from a task: its virtual IP on the
// task's network and the addresses of its serving tasks on that network.
// ID must be unique among the services given to one Apply; Backends may be
// empty (the VIP then answers with a reset / ICMP unreachable).
type Service struct {
	ID       string
	VIP      netip.Addr
	Backends []netip.Addr
}

// plan is the validated, sorted form of a service list, from which both
// Apply (netlink) and Rules (text) are produced, so they cannot disagree.
type plan struct {
	services []plannedService // with at least one backend, sorted by ID
	novip    []netip.Addr     // VIPs of services with no backend, sorted
}

type plannedService struct {
	id       string
	vip      netip.Addr
	chain    string       // svc-<short id>
	backends []netip.Addr // sorted, deduplicated
	beChains []string     // be-<short id>-<i>, parallel to backends
}

// makePlan validates services and fixes chain names.
func makePlan(services []Service) (*plan, error) {
	svcs := slices.Clone(services)
	slices.SortFunc(svcs, func(a, b Service) int { return strings.Compare(a.ID, b.ID) })
	p := &plan{}
	ids := map[string]bool{}
	vips := map[netip.Addr]string{}
	shorts := map[string]bool{}
	for i, s := range svcs {
		if s.ID == "" {
			return nil, fmt.Errorf("vip: service with VIP %s has an empty ID: give every service its ID", s.VIP)
		}
		if ids[s.ID] {
			return nil, fmt.Errorf("vip: service %q is listed twice: give each service once", s.ID)
		}
		ids[s.ID] = true
		if !s.VIP.IsValid() || !s.VIP.Is4() {
			return nil, fmt.Errorf("vip: service %q: VIP %q is not an IPv4 address: only IPv4 VIPs are supported", s.ID, s.VIP)
		}
		if other, ok := vips[s.VIP]; ok {
			return nil, fmt.Errorf("vip: services %q and %q share VIP %s: each service needs its own VIP", other, s.ID, s.VIP)
		}
		vips[s.VIP] = s.ID
		if len(s.Backends) == 0 {
			p.novip = append(p.novip, s.VIP)
			continue
		}
		backends := slices.Clone(s.Backends)
		for _, b := range backends {
			if !b.IsValid() || !b.Is4() {
				return nil, fmt.Errorf("vip: service %q: backend %q is not an IPv4 address", s.ID, b)
			}
		}
		slices.SortFunc(backends, func(a, b netip.Addr) int { return a.Compare(b) })
		backends = slices.Compact(backends)
		short := chainID(s.ID)
		if shorts[short] {
			// Two IDs share their first characters: fall back to a
			// name made unique by the service's position.
			short = fmt.Sprintf("%s_%d", short[:min(len(short), 10)], i)
			if shorts[short] {
				return nil, fmt.Errorf("vip: service %q: no unique chain name (IDs too alike): give services distinct ID prefixes", s.ID)
			}
		}
		shorts[short] = true
		ps := plannedService{id: s.ID, vip: s.VIP, chain: "svc-" + short, backends: backends}
		for j := range backends {
			ps.beChains = append(ps.beChains, fmt.Sprintf("be-%s-%d", short, j))
		}
		if n := ps.beChains[len(ps.beChains)-1]; len(n) > maxChainName {
			return nil, fmt.Errorf("vip: service %q: chain name %q is longer than %d characters", s.ID, n, maxChainName)
		}
		p.services = append(p.services, ps)
	}
	slices.SortFunc(p.novip, func(a, b netip.Addr) int { return a.Compare(b) })
	return p, nil
}

// chainID is the part of a service ID used in chain names: at most
// maxIDPart characters, only letters, digits, '_' and '-' ('.' otherwise).
func chainID(id string) string {
	b := []byte(id[:min(len(id), maxIDPart)])
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			b[i] = '.'
		}
	}
	return string(b)
}

// Apply atomically replaces the table "shoal-vip" in the network namespace
// at netnsPath (a bind-mounted or /proc/<pid>/ns/net path) with the rules
// for services. An empty list leaves an empty table (no VIP is
// intercepted); use Remove to delete it.
func Apply(netnsPath string, services []Service) error {
	p, err := makePlan(services)
	if err != nil {
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
			return fmt.Errorf("vip: replace table %s in %s: %w", TableName, netnsPath, err)
		}
		return nil
	})
}

// Remove deletes the table "shoal-vip" from the namespace at netnsPath. It
// is not an error if the table does not exist.
func Remove(netnsPath string) error {
	return withConn(netnsPath, func(c *nftables.Conn) error {
		t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
		c.AddTable(t) // so that the delete never fails on a missing table
		c.DelTable(t)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("vip: delete table %s in %s: %w", TableName, netnsPath, err)
		}
		return nil
	})
}

// withConn runs f with an nftables connection into the namespace at path.
func withConn(netnsPath string, f func(c *nftables.Conn) error) error {
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return fmt.Errorf("vip: open network namespace %s: %w (is the task's namespace still there?)", netnsPath, err)
	}
	defer ns.Close()
	c, err := nftconn.New(int(ns))
	if err != nil {
		return fmt.Errorf("vip: nftables connection into %s: %w", netnsPath, err)
	}
	return f(c)
}

// program queues the objects of p in table t on c. Set IDs are assigned
// here (unique within the batch) rather than by the library's global
// counter, which is not safe for concurrent connections.
func program(c *nftables.Conn, t *nftables.Table, p *plan) error {
	setID := uint32(0)
	nextID := func() uint32 { setID++; return setID }

	vips := &nftables.Set{Table: t, ID: nextID(), Name: vipsMap, IsMap: true,
		KeyType: nftables.TypeIPAddr, DataType: nftables.TypeVerdict}
	var vipElems []nftables.SetElement
	for _, s := range p.services {
		vipElems = append(vipElems, nftables.SetElement{Key: s.vip.AsSlice(),
			VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: s.chain}})
	}
	novip := &nftables.Set{Table: t, ID: nextID(), Name: novipSet, KeyType: nftables.TypeIPAddr}
	var novipElems []nftables.SetElement
	for _, a := range p.novip {
		novipElems = append(novipElems, nftables.SetElement{Key: a.AsSlice()})
	}

	// Chains first: the map's verdicts name them.
	nat := c.AddChain(&nftables.Chain{Table: t, Name: natChain, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	filter := c.AddChain(&nftables.Chain{Table: t, Name: filterChain, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter})
	for _, s := range p.services {
		c.AddChain(&nftables.Chain{Table: t, Name: s.chain})
		for _, be := range s.beChains {
			c.AddChain(&nftables.Chain{Table: t, Name: be})
		}
	}
	if err := c.AddSet(vips, vipElems); err != nil {
		return fmt.Errorf("vip: map %s: %w", vipsMap, err)
	}
	if err := c.AddSet(novip, novipElems); err != nil {
		return fmt.Errorf("vip: set %s: %w", novipSet, err)
	}

	// ip daddr vmap @vips
	c.AddRule(&nftables.Rule{Table: t, Chain: nat, Exprs: []expr.Any{
		loadDaddr(),
		&expr.Lookup{SourceRegister: 1, SetName: vips.Name, SetID: vips.ID, DestRegister: 0, IsDestRegSet: true},
	}})
	// ip daddr @novip meta l4proto tcp reject with tcp reset
	c.AddRule(&nftables.Rule{Table: t, Chain: filter, Exprs: []expr.Any{
		loadDaddr(),
		&expr.Lookup{SourceRegister: 1, SetName: novip.Name, SetID: novip.ID},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Reject{Type: unix.NFT_REJECT_TCP_RST},
	}})
	// ip daddr @novip reject (icmp port-unreachable)
	c.AddRule(&nftables.Rule{Table: t, Chain: filter, Exprs: []expr.Any{
		loadDaddr(),
		&expr.Lookup{SourceRegister: 1, SetName: novip.Name, SetID: novip.ID},
		&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpPortUnreach},
	}})

	for _, s := range p.services {
		// numgen random mod N vmap { i : goto be-<id>-<i> }
		m := &nftables.Set{Table: t, ID: nextID(), Name: fmt.Sprintf("__map%d", setID),
			Anonymous: true, Constant: true, IsMap: true,
			KeyType: nftables.TypeInteger, DataType: nftables.TypeVerdict,
			KeyByteOrder: binaryutil.NativeEndian}
		var elems []nftables.SetElement
		for i, be := range s.beChains {
			elems = append(elems, nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(i)),
				VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: be}})
		}
		if err := c.AddSet(m, elems); err != nil {
			return fmt.Errorf("vip: service %q backend map: %w", s.id, err)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: &nftables.Chain{Table: t, Name: s.chain}, Exprs: []expr.Any{
			&expr.Numgen{Register: 1, Modulus: uint32(len(s.backends)), Type: unix.NFT_NG_RANDOM},
			&expr.Lookup{SourceRegister: 1, SetName: m.Name, SetID: m.ID, DestRegister: 0, IsDestRegSet: true},
		}})
		// dnat ip to BACKEND (ports kept)
		for i, be := range s.beChains {
			c.AddRule(&nftables.Rule{Table: t, Chain: &nftables.Chain{Table: t, Name: be}, Exprs: []expr.Any{
				&expr.Immediate{Register: 1, Data: s.backends[i].AsSlice()},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
			}})
		}
	}
	return nil
}

// loadDaddr loads the IPv4 destination address into register 1.
func loadDaddr() expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
}

// FlushConntrack deletes, in the namespace at netnsPath, the TCP and UDP
// conntrack entries whose reply source is backend, that is the flows a VIP
// DNATed to it (and any direct flow to it), so their next packet is
// balanced again over the current backends.
func FlushConntrack(netnsPath string, backend netip.Addr) error {
	if !backend.IsValid() || !backend.Is4() {
		return fmt.Errorf("vip: flush conntrack: backend %q is not an IPv4 address", backend)
	}
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return fmt.Errorf("vip: open network namespace %s: %w (is the task's namespace still there?)", netnsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		return fmt.Errorf("vip: netlink handle in %s: %w", netnsPath, err)
	}
	defer h.Close()
	var filters []netlink.CustomConntrackFilter
	for _, proto := range []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
		f := &netlink.ConntrackFilter{}
		if err := errors.Join(f.AddProtocol(proto), f.AddIP(netlink.ConntrackReplySrcIP, net.IP(backend.AsSlice()))); err != nil {
			return fmt.Errorf("vip: conntrack filter: %w", err)
		}
		filters = append(filters, f)
	}
	if _, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filters...); err != nil {
		return fmt.Errorf("vip: delete conntrack flows to %s in %s: %w", backend, netnsPath, err)
	}
	return nil
}

// icmpPortUnreach is ICMP destination-unreachable code 3 (port
// unreachable), nft's default for a bare `reject` in an ip table.
const icmpPortUnreach = 3
