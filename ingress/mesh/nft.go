package mesh

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Register numbers: 1 is the first 16-byte register; 8 and 9 are the first
// two 32-bit registers (they overlap register 1), which concatenations use.
const (
	reg1   = 1
	reg2   = 2
	reg32a = 8
	reg32b = 9
)

// ctStatusDNAT is IPS_DST_NAT, the conntrack status bit of a DNATed flow.
const ctStatusDNAT = 1 << 5

var protoPortType = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)

// program queues the objects of p in table t on c. Set IDs are assigned
// here (unique within the batch) rather than by the library's global
// counter, which is not safe for concurrent connections.
func program(c *nftables.Conn, t *nftables.Table, p *plan) error {
	setID := uint32(0)
	nextID := func() uint32 { setID++; return setID }

	nodeports := &nftables.Set{Table: t, ID: nextID(), Name: nodeportsMap, IsMap: true,
		Concatenation: true, KeyType: protoPortType, DataType: nftables.TypeVerdict}
	var npElems []nftables.SetElement
	for _, pt := range p.ports {
		npElems = append(npElems, nftables.SetElement{Key: pt.key(),
			VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: pt.chain}})
	}
	closed := &nftables.Set{Table: t, ID: nextID(), Name: closedSet, Concatenation: true, KeyType: protoPortType}
	var clElems []nftables.SetElement
	for _, pp := range p.closed {
		clElems = append(clElems, nftables.SetElement{Key: pp.key()})
	}

	// Chains first: the map's verdicts name them.
	pre := c.AddChain(&nftables.Chain{Table: t, Name: preChain, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	out := c.AddChain(&nftables.Chain{Table: t, Name: outChain, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	post := c.AddChain(&nftables.Chain{Table: t, Name: postChain, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	input := c.AddChain(&nftables.Chain{Table: t, Name: inputChain, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
	fwd := c.AddChain(&nftables.Chain{Table: t, Name: forwardChain, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter})
	guard := c.AddChain(&nftables.Chain{Table: t, Name: guardChain, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw})
	for _, pt := range p.ports {
		c.AddChain(&nftables.Chain{Table: t, Name: pt.chain})
		for _, be := range pt.beChains {
			c.AddChain(&nftables.Chain{Table: t, Name: be})
		}
	}
	if err := c.AddSet(nodeports, npElems); err != nil {
		return fmt.Errorf("mesh: map %s: %w", nodeportsMap, err)
	}
	if err := c.AddSet(closed, clElems); err != nil {
		return fmt.Errorf("mesh: set %s: %w", closedSet, err)
	}

	// fib daddr type local meta l4proto . th dport vmap @nodeports
	for _, ch := range []*nftables.Chain{pre, out} {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(fibLocal(), append(loadProtoPort(),
			&expr.Lookup{SourceRegister: reg32a, SetName: nodeports.Name, SetID: nodeports.ID, DestRegister: 0, IsDestRegSet: true})...)})
	}
	// meta mark & M == M masquerade
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(MasqueradeMark), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(MasqueradeMark)},
		&expr.Masq{},
	}})
	// ip saddr 127.0.0.0/8 oifname != "lo" ct status dnat masquerade:
	// a local client of 127.0.0.1 DNATed to a backend must not show the
	// backend a loopback source (see EnableLocalhost).
	c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: []byte{255, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{127, 0, 0, 0}},
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: ifname("lo")},
		&expr.Ct{Key: expr.CtKeySTATUS, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ctStatusDNAT), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Masq{},
	}})
	// meta l4proto . th dport @closed meta l4proto tcp reject with tcp reset
	c.AddRule(&nftables.Rule{Table: t, Chain: input, Exprs: append(loadProtoPort(),
		&expr.Lookup{SourceRegister: reg32a, SetName: closed.Name, SetID: closed.ID},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Reject{Type: unix.NFT_REJECT_TCP_RST},
	)})
	// meta l4proto . th dport @closed reject (ICMP port unreachable)
	c.AddRule(&nftables.Rule{Table: t, Chain: input, Exprs: append(loadProtoPort(),
		&expr.Lookup{SourceRegister: reg32a, SetName: closed.Name, SetID: closed.ID},
		&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpPortUnrech},
	)})
	// ct status dnat fib daddr . iif oif != 0 meta mark set meta mark | M:
	// a DNATed connection leaving by the interface it came in on (a client
	// on an overlay reaching a published port whose backend is on the same
	// overlay: a hairpin) must be masqueraded, or the backend answers the
	// client directly and the client drops the answer. (The kernel refuses
	// `fib saddr . oif oif`.)
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: append([]expr.Any{
		&expr.Ct{Key: expr.CtKeySTATUS, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: nativeU32(ctStatusDNAT), Xor: nativeU32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: nativeU32(0)},
		&expr.Fib{Register: reg1, FlagDADDR: true, FlagIIF: true, ResultOIF: true},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: nativeU32(0)},
	}, setMasqMark()...)})
	// iifname != "lo" ip daddr 127.0.0.0/8 drop: with route_localnet on
	// (EnableLocalhost) the kernel would otherwise accept 127/8 from the wire.
	c.AddRule(&nftables.Rule{Table: t, Chain: guard, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: ifname("lo")},
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: []byte{255, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{127, 0, 0, 0}},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})

	for _, pt := range p.ports {
		ch := &nftables.Chain{Table: t, Name: pt.chain}
		if pt.masq {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: setMasqMark()})
		}
		if len(pt.backends) == 1 {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
				&expr.Verdict{Kind: expr.VerdictGoto, Chain: pt.beChains[0]}}})
		} else {
			// numgen random mod N vmap { i : goto be-<proto>-<port>-<i> }
			m := &nftables.Set{Table: t, ID: nextID(), Name: fmt.Sprintf("__map%d", setID),
				Anonymous: true, Constant: true, IsMap: true,
				KeyType: nftables.TypeInteger, DataType: nftables.TypeVerdict,
				KeyByteOrder: binaryutil.NativeEndian}
			var elems []nftables.SetElement
			for i, be := range pt.beChains {
				elems = append(elems, nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(i)),
					VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: be}})
			}
			if err := c.AddSet(m, elems); err != nil {
				return fmt.Errorf("mesh: port %d/%s backend map: %w", pt.port, pt.proto, err)
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
				&expr.Numgen{Register: reg1, Modulus: uint32(len(pt.backends)), Type: unix.NFT_NG_RANDOM},
				&expr.Lookup{SourceRegister: reg1, SetName: m.Name, SetID: m.ID, DestRegister: 0, IsDestRegSet: true},
			}})
		}
		// dnat ip to BACKEND:TARGET
		for i, be := range pt.beChains {
			c.AddRule(&nftables.Rule{Table: t, Chain: &nftables.Chain{Table: t, Name: be}, Exprs: []expr.Any{
				&expr.Immediate{Register: reg1, Data: pt.backends[i].AsSlice()},
				&expr.Immediate{Register: reg2, Data: binaryutil.BigEndian.PutUint16(pt.target)},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1, RegProtoMin: reg2},
			}})
		}
	}
	return nil
}

// setMasqMark is `meta mark set meta mark | MasqueradeMark`.
func setMasqMark() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: nativeU32(^MasqueradeMark), Xor: nativeU32(MasqueradeMark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
	}
}

// fibLocal is `fib daddr type local`.
func fibLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

// loadProtoPort is `meta l4proto . th dport` into the 32-bit registers 8, 9.
func loadProtoPort() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32a},
		&expr.Payload{DestRegister: reg32b, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}
}

// ifname is an interface name as nft compares it: NUL-padded to IFNAMSIZ.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

func nativeU32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }
