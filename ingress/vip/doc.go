// Package vip programs service virtual IPs inside a task's network
// namespace with nftables (github.com/google/nftables): the table
// "shoal-vip" holds a verdict map from each VIP to a per-service chain that
// picks one serving backend per new flow (numgen random) and DNATs to it,
// keeping the destination port, so a VIP balances every port and protocol
// as Docker's does. A service with no backend has its VIP in the set
// "novip", which a filter chain answers at once: TCP with a reset, other
// protocols with an ICMP port-unreachable, so clients fail fast instead of
// timing out.
//
// Apply replaces the whole table in one nftables transaction, so a client
// never sees a half-written table; Remove deletes it; FlushConntrack drops
// the conntrack entries (TCP and UDP) that were DNATed to a backend, so the
// next packet of such a flow is balanced again. Rules renders, as nft
// syntax, exactly what Apply installs (golden tests, debugging).
//
// The rules are verified on this machine in
// shared/reference/networking/vip.nft (kernel 6.18). One cosmetic quirk:
// `nft list` shows the keys of a service's numgen map as 0, 16777216,
// 33554432, ... because the library marks anonymous maps big-endian in
// their user data; the keys are host-order as numgen writes them, and the
// kernel matches them correctly (the tests reach every backend).
//
// Concurrency: the functions hold no state and may be called from any
// goroutine. Calls for the same namespace must be serialized by the caller
// (the last Apply wins). Every call is bounded: a netlink round trip in the
// target namespace, which never blocks on the network.
package vip
