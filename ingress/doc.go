// Package ingress will hold the routing mesh: nftables rules that map
// published ports and service VIPs to task backends on every node, with
// DNAT and per-connection backend choice (DESIGN.md, Networking).
//
// It has no code yet: the routing mesh is roadmap item 5. Published ports
// in service specs are validated and recorded but not yet served. The
// package exists so the import rules of DESIGN.md are checked from the
// start: ingress may import only proto.
package ingress
