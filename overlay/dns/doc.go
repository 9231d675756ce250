// Package dns is the node's service DNS server (github.com/miekg/dns): one
// Server per node answers, inside every task's network namespace, at
// 127.0.0.11:53, as Docker's embedded DNS does.
//
// AddTask opens a UDP and a TCP socket bound to 127.0.0.11 on random ports
// inside the task's namespace (the calling thread switches into it, opens
// them and switches back; the sockets stay in that namespace), sets the
// namespace's loopback up, and installs there the nftables table
// "shoal-dns" that DNATs 127.0.0.11:53 (udp and tcp, nat output hook,
// priority -100) to those ports (shared/reference/networking/dns.nft).
// The server goroutines run in the daemon's namespace.
//
// Answers come from the consumer's Resolver, asked with the task's ID and
// the lowercased name without its trailing dot:
//   - known, with addresses: A records, shuffled, TTL Config.TTL (≤ 5 s);
//   - known, no address (no serving task), or any other type than A for a
//     known name (AAAA included): NOERROR with no record;
//   - unknown: forwarded, from the daemon's namespace, to the upstream
//     resolvers (Config.Upstreams, default the non-loopback nameservers of
//     /etc/resolv.conf) within 2 s; SERVFAIL when there is none or none
//     answers.
//
// Each task has a bound on queries in flight (Config.MaxInflight); a query
// over it gets SERVFAIL at once.
//
// Concurrency: all methods are safe for concurrent use. AddTask and
// RemoveTask are serialized by the Server; queries are answered
// concurrently and call Resolver.Resolve from many goroutines, so the
// Resolver must be safe for concurrent use and must not block. Close
// stops every task's servers and waits for them (bounded).
package dns
