package vip

import (
	"fmt"
	"strings"
)

// Rules renders, in nft syntax, the table Apply would install for services
// (the same plan drives both). It returns the validation error Apply would.
func Rules(services []Service) (string, error) {
	p, err := makePlan(services)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s {\n", TableName)
	fmt.Fprintf(&b, "\tmap %s {\n\t\ttype ipv4_addr : verdict\n", vipsMap)
	var elems []string
	for _, s := range p.services {
		elems = append(elems, fmt.Sprintf("%s : goto %s", s.vip, s.chain))
	}
	writeElems(&b, elems)
	b.WriteString("\t}\n")
	fmt.Fprintf(&b, "\tset %s {\n\t\ttype ipv4_addr\n", novipSet)
	elems = elems[:0]
	for _, a := range p.novip {
		elems = append(elems, a.String())
	}
	writeElems(&b, elems)
	b.WriteString("\t}\n")
	fmt.Fprintf(&b, "\tchain %s {\n\t\ttype nat hook output priority -100; policy accept;\n", natChain)
	fmt.Fprintf(&b, "\t\tip daddr vmap @%s\n\t}\n", vipsMap)
	fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook output priority 0; policy accept;\n", filterChain)
	fmt.Fprintf(&b, "\t\tip daddr @%s meta l4proto tcp reject with tcp reset\n", novipSet)
	fmt.Fprintf(&b, "\t\tip daddr @%s reject\n\t}\n", novipSet)
	for _, s := range p.services {
		var m []string
		for i, be := range s.beChains {
			m = append(m, fmt.Sprintf("%d : goto %s", i, be))
		}
		fmt.Fprintf(&b, "\tchain %s {\n\t\tnumgen random mod %d vmap { %s }\n\t}\n", s.chain, len(s.backends), strings.Join(m, ", "))
		for i, be := range s.beChains {
			fmt.Fprintf(&b, "\tchain %s {\n\t\tdnat to %s\n\t}\n", be, s.backends[i])
		}
	}
	b.WriteString("}\n")
	return b.String(), nil
}

func writeElems(b *strings.Builder, elems []string) {
	if len(elems) > 0 {
		fmt.Fprintf(b, "\t\telements = { %s }\n", strings.Join(elems, ", "))
	}
}
