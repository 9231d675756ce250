package mesh

import (
	"fmt"
	"strings"
)

// Rules renders, in nft syntax, the table Apply would install for ports
// (the same plan drives both). It returns the validation error Apply would.
func Rules(ports []Port) (string, error) {
	p, err := makePlan(ports)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s {\n", TableName)
	fmt.Fprintf(&b, "\tmap %s {\n\t\ttype inet_proto . inet_service : verdict\n", nodeportsMap)
	var elems []string
	for _, pt := range p.ports {
		elems = append(elems, fmt.Sprintf("%s . %d : goto %s", pt.proto, pt.port, pt.chain))
	}
	writeElems(&b, elems)
	b.WriteString("\t}\n")
	fmt.Fprintf(&b, "\tset %s {\n\t\ttype inet_proto . inet_service\n", closedSet)
	elems = elems[:0]
	for _, pp := range p.closed {
		elems = append(elems, fmt.Sprintf("%s . %d", pp.proto, pp.port))
	}
	writeElems(&b, elems)
	b.WriteString("\t}\n")
	for _, c := range []struct{ name, hook string }{{preChain, "prerouting"}, {outChain, "output"}} {
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype nat hook %s priority -100; policy accept;\n", c.name, c.hook)
		fmt.Fprintf(&b, "\t\tfib daddr type local meta l4proto . th dport vmap @%s\n\t}\n", nodeportsMap)
	}
	fmt.Fprintf(&b, "\tchain %s {\n\t\ttype nat hook postrouting priority 100; policy accept;\n", postChain)
	fmt.Fprintf(&b, "\t\tmeta mark & %#08x == %#08x masquerade\n", MasqueradeMark, MasqueradeMark)
	b.WriteString("\t\tip saddr 127.0.0.0/8 oifname != \"lo\" ct status dnat masquerade\n\t}\n")
	fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook input priority 0; policy accept;\n", inputChain)
	fmt.Fprintf(&b, "\t\tmeta l4proto . th dport @%s meta l4proto tcp reject with tcp reset\n", closedSet)
	fmt.Fprintf(&b, "\t\tmeta l4proto . th dport @%s reject\n\t}\n", closedSet)
	fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook forward priority 0; policy accept;\n", forwardChain)
	fmt.Fprintf(&b, "\t\tct status dnat fib daddr . iif oif != 0 meta mark set meta mark | %#08x\n\t}\n", MasqueradeMark)
	fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook prerouting priority -300; policy accept;\n", guardChain)
	b.WriteString("\t\tiifname != \"lo\" ip daddr 127.0.0.0/8 drop\n\t}\n")
	for _, pt := range p.ports {
		fmt.Fprintf(&b, "\tchain %s {\n", pt.chain)
		if pt.masq {
			fmt.Fprintf(&b, "\t\tmeta mark set meta mark | %#08x\n", MasqueradeMark)
		}
		if len(pt.beChains) == 1 {
			fmt.Fprintf(&b, "\t\tgoto %s\n", pt.beChains[0])
		} else {
			var m []string
			for i, be := range pt.beChains {
				m = append(m, fmt.Sprintf("%d : goto %s", i, be))
			}
			fmt.Fprintf(&b, "\t\tnumgen random mod %d vmap { %s }\n", len(pt.backends), strings.Join(m, ", "))
		}
		b.WriteString("\t}\n")
		for i, be := range pt.beChains {
			fmt.Fprintf(&b, "\tchain %s {\n\t\tdnat to %s:%d\n\t}\n", be, pt.backends[i], pt.target)
		}
	}
	b.WriteString("}\n")
	return b.String(), nil
}

// ReturnRules renders what ApplyReturn would install for the same
// arguments: the nft table in nft syntax, then the policy-routing rules and
// routes in `ip` syntax, one per line. It returns ApplyReturn's validation
// error.
func ReturnRules(r Return) (string, error) {
	p, err := r.plan()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s {\n", ReturnTableName)
	fmt.Fprintf(&b, "\tmap %s {\n\t\ttype ether_addr : mark\n", nodeMACsMap)
	var elems []string
	for _, n := range p.nodes {
		elems = append(elems, fmt.Sprintf("%s : %#x", n.mac, n.id))
	}
	writeElems(&b, elems)
	b.WriteString("\t}\n")
	fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook prerouting priority -150; policy accept;\n", retPre)
	fmt.Fprintf(&b, "\t\tiifname %q ct state new ip saddr != %s ct mark set ether saddr map @%s\n\t}\n", p.ifName, p.subnet, nodeMACsMap)
	fmt.Fprintf(&b, "\tchain %s {\n\t\ttype route hook output priority -150; policy accept;\n", retOut)
	b.WriteString("\t\tct mark != 0x0 meta mark set ct mark\n\t}\n}\n")
	for _, k := range p.ruleKeys() {
		fmt.Fprintf(&b, "ip rule: %s\n", k)
	}
	for _, n := range p.nodes {
		fmt.Fprintf(&b, "ip route: default via %s dev %s table %d\n", n.addr, p.ifName, n.id)
	}
	if len(p.nodes) > 0 {
		fmt.Fprintf(&b, "ip route: default dev %s scope link table %d\n", p.ifName, ReturnIDBase)
	}
	return b.String(), nil
}

func writeElems(b *strings.Builder, elems []string) {
	if len(elems) > 0 {
		fmt.Fprintf(b, "\t\telements = { %s }\n", strings.Join(elems, ", "))
	}
}
