package mesh

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ReturnTableName is the nftables table (family ip) ApplyReturn owns in a
// task's namespace.
const ReturnTableName = "shoal-ret"

// ReturnRulePriority is the priority of the fwmark rules ApplyReturn
// installs in a task's namespace (before "main", 32766); the UDP-port rules
// use ReturnRulePriority+1 and +2. RemoveReturn deletes the rules at these
// priorities (and ReturnFallbackPriority) that lead into the return range,
// and the "lookup main suppress_prefixlength 0" rule at +1.
const ReturnRulePriority = 100

// ReturnIDBase is the first mark and routing-table number of the return
// path. A node's mark and table are both ReturnIDBase plus the host part
// of its overlay address (its offset in the subnet), so they stay the same
// for a node whatever other nodes come and go, and connections already
// marked keep routing to the same node. The range is
// [ReturnIDBase, ReturnIDBase+2^24).
const ReturnIDBase = 0x10000

const returnIDEnd = ReturnIDBase + 1<<24

// ReturnFallbackPriority is the priority of the rule, after "main" and
// "default", that sends lookups no other table answers to table
// ReturnIDBase, which holds "default dev <Return.Interface>". The kernel routes a reply
// (a TCP SYN-ACK, a UDP answer) once before the output hook sets its mark;
// in a task with no default route of its own that first lookup would fail
// and the reply would be dropped before the mark could reroute it. Tasks
// with a default route (eth0 on the node-local bridge) never reach it.
const ReturnFallbackPriority = 32800

// Names of the objects inside the return table.
const (
	nodeMACsMap = "node-macs" // ether_addr : mark
	retPre      = "pre"       // filter prerouting -150
	retOut      = "out"       // route output -150
)

// IngressNode is a node that may forward mesh connections into a task: the
// MAC and address of the node's own interface on the task's overlay.
type IngressNode struct {
	MAC  net.HardwareAddr
	Addr netip.Addr
}

// Return is the return path of one task (see ApplyReturn).
//
// Interface is the task's interface on the overlay the mesh reaches it by
// (e.g. "eth1"); Subnet that overlay's subnet (IPv4, /8 or longer); Nodes
// every node that may forward to the task, with its own address on that
// overlay (in Subnet) and that interface's MAC, the task's own node
// included. UDPPorts are the task's UDP target ports served through the
// mesh with the client address kept: see ApplyReturn for why they are
// needed. Empty Nodes installs a table that marks nothing and no route.
type Return struct {
	Interface string
	Subnet    netip.Prefix
	Nodes     []IngressNode
	UDPPorts  []uint16
}

type retNode struct {
	mac  net.HardwareAddr
	addr netip.Addr
	id   uint32 // mark and table
}

type retPlan struct {
	ifName   string
	subnet   netip.Prefix
	nodes    []retNode // sorted by id
	udpPorts []uint16  // sorted, deduplicated
}

func (r Return) plan() (*retPlan, error) {
	ifName, subnet := r.Interface, r.Subnet
	if ifName == "" || len(ifName) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("mesh: return path: interface name %q is not valid: give the task's overlay interface (e.g. eth1)", ifName)
	}
	if !subnet.IsValid() || !subnet.Addr().Is4() || subnet.Bits() < 8 {
		return nil, fmt.Errorf("mesh: return path: subnet %q is not an IPv4 prefix of /8 or longer: give the overlay's subnet", subnet)
	}
	subnet = subnet.Masked()
	p := &retPlan{ifName: ifName, subnet: subnet}
	macs := map[string]bool{}
	ids := map[uint32]bool{}
	base := binaryU32(subnet.Addr())
	for _, n := range r.Nodes {
		if len(n.MAC) != 6 {
			return nil, fmt.Errorf("mesh: return path: node %s: MAC %q is not a 6-byte Ethernet address", n.Addr, n.MAC)
		}
		if !n.Addr.Is4() || !subnet.Contains(n.Addr) {
			return nil, fmt.Errorf("mesh: return path: node address %q is not in the overlay subnet %s: give the node's own address on this overlay", n.Addr, subnet)
		}
		id := ReturnIDBase + (binaryU32(n.Addr) - base)
		if id == ReturnIDBase {
			return nil, fmt.Errorf("mesh: return path: node address %s is the subnet's network address: give the node's own address on this overlay", n.Addr)
		}
		if macs[n.MAC.String()] || ids[id] {
			return nil, fmt.Errorf("mesh: return path: node %s / %s is listed twice (same MAC or address): list each node once", n.Addr, n.MAC)
		}
		macs[n.MAC.String()], ids[id] = true, true
		p.nodes = append(p.nodes, retNode{mac: slices.Clone(n.MAC), addr: n.Addr, id: id})
	}
	slices.SortFunc(p.nodes, func(a, b retNode) int { return int(a.id) - int(b.id) })
	for _, u := range r.UDPPorts {
		if u == 0 {
			return nil, fmt.Errorf("mesh: return path: UDP port 0: give the task's UDP target ports (1-65535)")
		}
	}
	p.udpPorts = slices.Compact(slices.Sorted(slices.Values(r.UDPPorts)))
	return p, nil
}

func binaryU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// ApplyReturn programs, in a task's namespace at netnsPath ("" = the
// caller's), the return path that lets the task answer mesh connections
// whose client address was kept (Port.Masquerade false), whichever node
// they entered by (networking/c2-return.nft):
//
//   - table "shoal-ret": a new connection arriving on r.Interface from
//     outside r.Subnet gets a conntrack mark chosen by its source MAC (the
//     ingress node's interface on this overlay); the task's own packets of
//     a marked connection carry the mark, which reroutes them;
//   - per node a rule "fwmark ID lookup ID" (priority ReturnRulePriority)
//     and in table ID "default via <node's overlay address> dev IF";
//   - a fallback (ReturnFallbackPriority, table ReturnIDBase, "default dev
//     IF") so that the kernel's first route lookup of a reply, made before
//     the mark is set, succeeds in a task that has no default route;
//   - per UDP port: a rule "ipproto udp sport PORT lookup ReturnIDBase"
//     (priority ReturnRulePriority+2, after "lookup main
//     suppress_prefixlength 0" at ReturnRulePriority+1, so that connected
//     subnets still win). A UDP server bound to 0.0.0.0 answers from the
//     address of the interface its first route lookup picks; in a task
//     whose default route is on eth0 that is eth0's address, the answer
//     matches no conntrack entry and is lost. The rule makes that lookup
//     pick r.Interface. TCP needs nothing: a reply's source is fixed by the
//     connection.
//
// r.Nodes is the full desired set; ApplyReturn removes the rules and routes
// of nodes no longer listed, so a node's mark and table are stable while it
// stays. It is idempotent. One interface per namespace: a second call with
// another Interface replaces the first. On an error the namespace may hold
// part of the new state: call ApplyReturn again or RemoveReturn.
//
// Limits: the task's namespace must not drop the inbound packets by strict
// reverse-path filtering (rp_filter=1 on the interface or "all"; new
// namespaces default to 0). A task's own UDP traffic from a listed port to
// a destination outside its connected subnets leaves by r.Interface.
func ApplyReturn(netnsPath string, r Return) error {
	p, err := r.plan()
	if err != nil {
		return err
	}
	h, err := handle(netnsPath, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer h.Close()
	ifName := p.ifName
	link, err := h.LinkByName(ifName)
	if err != nil {
		return fmt.Errorf("mesh: return path: interface %s in %s: %w (attach the task to the overlay first)", ifName, nsName(netnsPath), err)
	}
	ifIndex := link.Attrs().Index
	// want: table -> gateway ("" = on-link fallback), all via ifName.
	want := map[int]string{}
	if len(p.nodes) > 0 {
		want[ReturnIDBase] = ""
	}
	for _, n := range p.nodes {
		want[int(n.id)] = n.addr.String()
	}
	for table, gw := range want {
		rt := &netlink.Route{Table: table, LinkIndex: ifIndex,
			Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}
		if gw == "" {
			rt.Scope = netlink.SCOPE_LINK
		} else {
			rt.Gw = net.ParseIP(gw).To4()
		}
		if err := h.RouteReplace(rt); err != nil {
			return fmt.Errorf("mesh: return path: default route in table %d (gateway %q) dev %s: %w", table, gw, ifName, err)
		}
	}
	if err := pruneRoutes(h, want, ifIndex); err != nil {
		return err
	}
	rules, err := ourRules(h)
	if err != nil {
		return err
	}
	wantRules := map[ruleKey]bool{}
	for _, k := range p.ruleKeys() {
		wantRules[k] = true
	}
	for _, rl := range rules {
		k := keyOf(rl)
		if wantRules[k] {
			delete(wantRules, k) // present; a duplicate is deleted below
			continue
		}
		if err := h.RuleDel(&rl); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("mesh: return path: delete stale rule to table %d: %w", rl.Table, err)
		}
	}
	for _, k := range p.ruleKeys() {
		if !wantRules[k] {
			continue
		}
		if err := h.RuleAdd(k.rule()); err != nil {
			return fmt.Errorf("mesh: return path: add rule %s: %w", k, err)
		}
	}
	return withConn(netnsPath, func(c *nftables.Conn) error {
		t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: ReturnTableName}
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
		if err := programReturn(c, t, p); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("mesh: replace table %s in %s: %w", ReturnTableName, nsName(netnsPath), err)
		}
		return nil
	})
}

// RemoveReturn deletes, in the namespace at netnsPath, the table
// "shoal-ret", the rules at ReturnRulePriority into the return range and
// every route in the return range's tables. Nothing there is not an error.
func RemoveReturn(netnsPath string) error {
	err := withConn(netnsPath, func(c *nftables.Conn) error {
		t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: ReturnTableName}
		c.AddTable(t)
		c.DelTable(t)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("mesh: delete table %s in %s: %w", ReturnTableName, nsName(netnsPath), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	h, err := handle(netnsPath, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer h.Close()
	rules, err := ourRules(h)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if err := h.RuleDel(&r); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("mesh: return path: delete rule to table %d: %w", r.Table, err)
		}
	}
	return pruneRoutes(h, nil, 0)
}

// ruleKey identifies one of our rules.
type ruleKey struct {
	prio     int
	table    int
	mark     uint32 // fwmark (mask 0xffffffff); 0 = none
	sport    uint16 // ipproto udp sport; 0 = none
	suppress bool   // suppress_prefixlength 0
}

func (k ruleKey) String() string {
	s := fmt.Sprintf("%d: from all", k.prio)
	if k.mark != 0 {
		s += fmt.Sprintf(" fwmark %#x", k.mark)
	}
	if k.sport != 0 {
		s += fmt.Sprintf(" ipproto udp sport %d", k.sport)
	}
	if k.table == unix.RT_TABLE_MAIN {
		s += " lookup main"
	} else {
		s += fmt.Sprintf(" lookup %d", k.table)
	}
	if k.suppress {
		s += " suppress_prefixlength 0"
	}
	return s
}

// ruleKeys are the rules p wants, in the order they are listed and added.
func (p *retPlan) ruleKeys() []ruleKey {
	if len(p.nodes) == 0 {
		return nil
	}
	var ks []ruleKey
	for _, n := range p.nodes {
		ks = append(ks, ruleKey{prio: ReturnRulePriority, table: int(n.id), mark: n.id})
	}
	if len(p.udpPorts) > 0 {
		ks = append(ks, ruleKey{prio: ReturnRulePriority + 1, table: unix.RT_TABLE_MAIN, suppress: true})
	}
	for _, u := range p.udpPorts {
		ks = append(ks, ruleKey{prio: ReturnRulePriority + 2, table: ReturnIDBase, sport: u})
	}
	return append(ks, ruleKey{prio: ReturnFallbackPriority, table: ReturnIDBase})
}

// keyOf is the key of a kernel rule; rules with anything else set get a
// key no plan wants (so they are replaced).
func keyOf(r netlink.Rule) ruleKey {
	k := ruleKey{prio: r.Priority, table: r.Table, mark: r.Mark, suppress: r.SuppressPrefixlen == 0}
	odd := r.Invert || r.Src != nil || r.Dst != nil || r.IifName != "" || r.OifName != "" || r.Dport != nil ||
		(r.Mark != 0 && (r.Mask == nil || *r.Mask != 0xffffffff))
	if r.Sport != nil {
		odd = odd || r.IPProto != unix.IPPROTO_UDP || r.Sport.Start != r.Sport.End || r.Sport.Start == 0
		k.sport = r.Sport.Start
	} else if r.IPProto != 0 {
		odd = true
	}
	if odd {
		k.prio = -1
	}
	return k
}

func (k ruleKey) rule() *netlink.Rule {
	r := netlink.NewRule()
	r.Family = unix.AF_INET
	r.Priority = k.prio
	r.Table = k.table
	if k.mark != 0 {
		r.Mark = k.mark
		mask := uint32(0xffffffff)
		r.Mask = &mask
	}
	if k.sport != 0 {
		r.IPProto = unix.IPPROTO_UDP
		r.Sport = netlink.NewRulePortRange(k.sport, k.sport)
	}
	if k.suppress {
		r.SuppressPrefixlen = 0
	}
	return r
}

// ourRules lists the IPv4 rules ApplyReturn may have made: at
// ReturnRulePriority..+2 or ReturnFallbackPriority into the return range,
// or at ReturnRulePriority+1 into main with suppress_prefixlength 0.
func ourRules(h *netlink.Handle) ([]netlink.Rule, error) {
	all, err := h.RuleList(unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("mesh: return path: list rules: %w", err)
	}
	var out []netlink.Rule
	for _, r := range all {
		inRange := r.Table >= ReturnIDBase && r.Table < returnIDEnd
		switch {
		case (r.Priority == ReturnRulePriority || r.Priority == ReturnRulePriority+2 || r.Priority == ReturnFallbackPriority) && inRange,
			r.Priority == ReturnRulePriority+1 && r.Table == unix.RT_TABLE_MAIN && r.SuppressPrefixlen == 0:
			out = append(out, r)
		}
	}
	return out, nil
}

// pruneRoutes deletes the IPv4 routes in return-range tables other than
// the wanted default route of each wanted table (gateway "" = on-link).
func pruneRoutes(h *netlink.Handle, want map[int]string, ifIndex int) error {
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("mesh: return path: list routes: %w", err)
	}
	for _, r := range routes {
		if r.Table < ReturnIDBase || r.Table >= returnIDEnd {
			continue
		}
		if gw, ok := want[r.Table]; ok && isDefault(r.Dst) && r.LinkIndex == ifIndex &&
			((gw == "" && r.Gw == nil) || (gw != "" && r.Gw.Equal(net.ParseIP(gw)))) {
			continue
		}
		if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("mesh: return path: delete stale route in table %d: %w", r.Table, err)
		}
	}
	return nil
}

func isDefault(d *net.IPNet) bool {
	if d == nil {
		return true
	}
	ones, _ := d.Mask.Size()
	return ones == 0
}

// programReturn queues the objects of the return table.
func programReturn(c *nftables.Conn, t *nftables.Table, p *retPlan) error {
	m := &nftables.Set{Table: t, ID: 1, Name: nodeMACsMap, IsMap: true,
		KeyType: nftables.TypeEtherAddr, DataType: nftables.TypeMark}
	var elems []nftables.SetElement
	for _, n := range p.nodes {
		elems = append(elems, nftables.SetElement{Key: n.mac, Val: nativeU32(n.id)})
	}
	pre := c.AddChain(&nftables.Chain{Table: t, Name: retPre, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(-150)})
	out := c.AddChain(&nftables.Chain{Table: t, Name: retOut, Type: nftables.ChainTypeRoute,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityRef(-150)})
	if err := c.AddSet(m, elems); err != nil {
		return fmt.Errorf("mesh: map %s: %w", nodeMACsMap, err)
	}
	sub := p.subnet.Addr().As4()
	mask := net.CIDRMask(p.subnet.Bits(), 32)
	// iifname IF ct state new ip saddr != SUBNET ct mark set ether saddr map @node-macs
	c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: ifname(p.ifName)},
		&expr.Ct{Key: expr.CtKeySTATE, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: nativeU32(expr.CtStateBitNEW), Xor: nativeU32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: nativeU32(0)},
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: []byte(mask), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: sub[:]},
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
		&expr.Lookup{SourceRegister: reg1, SetName: m.Name, SetID: m.ID, DestRegister: reg1, IsDestRegSet: true},
		&expr.Ct{Key: expr.CtKeyMARK, SourceRegister: true, Register: reg1},
	}})
	// ct mark != 0 meta mark set ct mark
	c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: nativeU32(0)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
	}})
	return nil
}
