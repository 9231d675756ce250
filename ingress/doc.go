// Package ingress groups shoal's nftables load balancing, all written with
// github.com/google/nftables in shoal's own tables: ingress/vip balances a
// service's virtual IP inside each task's network namespace, and
// ingress/mesh is the routing mesh (published ports on every node, and the
// return routes that keep the client's address). The package itself holds
// no code; it and its children may import only proto (DESIGN.md).
package ingress
