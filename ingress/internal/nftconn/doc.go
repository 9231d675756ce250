// Package nftconn opens nftables connections for ingress/mesh and
// ingress/vip with netlink socket buffers large enough for their batches.
//
// google/nftables sends a whole change (one transaction) and then reads the
// kernel's answers; with the default socket buffers (about 200 KiB) a table
// of a few dozen published ports already overflows them: Flush fails with
// ENOBUFS, or "message too long" near 1,000 ports, and the rules stay as they
// were. The buffers are limits, not allocations: memory is used only while a
// big batch is in flight. Stateless; safe for concurrent use.
package nftconn
