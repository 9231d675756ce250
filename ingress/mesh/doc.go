// Package mesh is the data path of the ingress routing mesh and of
// host-mode published ports, on nftables (github.com/google/nftables) and
// netlink (github.com/vishvananda/netlink). It holds no state: the caller
// (the node's overlay Agent) knows, per published port, the serving
// backends on all nodes and calls Apply with the full desired set.
//
// # Node side: table "shoal-ingress" (Apply, Remove, Rules)
//
// In the daemon's namespace (netnsPath "") or a given one, Apply replaces in
// one nftables transaction the table "shoal-ingress" (family ip):
//
//   - map nodeports {inet_proto . inet_service : verdict}, consulted by nat
//     prerouting and nat output (priority -100) as `fib daddr type local
//     meta l4proto . th dport vmap @nodeports`: every local address of the
//     node accepts every published port, also from the node itself;
//   - per port a chain spreading new connections with `numgen random` over
//     per-backend chains that `dnat to BACKEND:TARGET`. Backends are task
//     addresses on an overlay the node is attached to: the node has its own
//     address on each overlay (a veth into the overlay's bridge), so it
//     routes to the overlay subnet; established flows stay on their backend
//     (conntrack);
//   - Port.Masquerade (Docker's behaviour): the port's chain sets
//     MasqueradeMark and postrouting masquerades marked packets, so the
//     backend sees the node's address on its overlay. The default keeps the
//     client's address; the backend then needs ApplyReturn;
//   - ingress ports with no backend are in the set "closed", which a filter
//     input chain refuses at once: TCP with a reset, UDP with an ICMP
//     port-unreachable (not a timeout);
//   - host-mode ports (Port.HostMode) use the same map with only the local
//     tasks as backends; with none the port is simply not served here;
//   - hairpin: a DNATed connection leaving by the interface it came in on
//     (a client on an overlay reaching a port whose backend is on the same
//     overlay) is masqueraded, or the backend would answer the client
//     directly;
//   - 127.0.0.1: the output chain DNATs it like any local address, but the
//     kernel will not send a packet with a loopback source off the host
//     unless route_localnet=1 on the outgoing interface (verified: without
//     it the connection hangs). EnableLocalhost sets it on the interfaces
//     given (the node's overlay veths); the table masquerades such
//     connections (`ip saddr 127.0.0.0/8 oifname != "lo" ct status dnat
//     masquerade`, the backend sees the node's overlay address) and drops
//     127.0.0.0/8 arriving on any interface but lo (guard chain, priority
//     -300), which route_localnet would otherwise let in.
//
// Apply also sets net.ipv4.ip_forward=1 (never back). A FORWARD policy of
// drop in someone else's table (Docker's iptables, a firewall) must let the
// mesh's traffic through; this package adds no accept rules elsewhere.
// FlushConntrack drops the conntrack entries of flows DNATed to a removed
// backend (TCP and UDP) so their next packet is balanced again.
//
// # Task side: table "shoal-ret" and policy routing (ApplyReturn, RemoveReturn, ReturnRules)
//
// With the client address kept, a backend on another node than the ingress
// node must answer through the ingress node (which undoes the DNAT). In the
// task's namespace ApplyReturn marks each new connection arriving on the
// overlay interface from outside the overlay subnet with a mark chosen by
// its source MAC (the ingress node's interface on the overlay), copies the
// connection's mark to the packets the task sends, and routes marked
// packets by "fwmark ID lookup ID" to a table holding "default via <that
// node's overlay address>" (networking/c2-return.nft). A node's ID is
// ReturnIDBase plus the host part of its overlay address, so it is stable
// while the node stays. See ApplyReturn for the fallback route and the UDP
// ports rule, both verified needed in the lab tests.
//
// # Use (the overlay Agent, on every node)
//
//  1. Attach the node to each overlay that carries published ports'
//     backends: a veth from the daemon's namespace into the overlay's bridge
//     with the node's attachment address and MAC (api.Node.attachments).
//     Then EnableLocalhost("", thatVeth) for 127.0.0.1.
//  2. On every change of published ports or of serving tasks: Apply("",
//     all ports) (ingress ports with every serving task on every node,
//     host-mode ports with the local ones); after a backend leaves,
//     FlushConntrack("", its address).
//  3. In every task that backs a published port, after its overlay veth
//     exists: ApplyReturn(taskNetns, Return{Interface, Subnet, Nodes: every
//     node's attachment (address, MAC) on that overlay, UDPPorts: the UDP
//     target ports}); again when nodes join or leave. The namespace's
//     deletion removes it all; RemoveReturn is for a task that stays.
//  4. When the last published port goes: Remove("").
//
// # Rule text
//
// Rules and ReturnRules render, as nft (and ip) syntax, exactly what Apply
// and ApplyReturn install (golden tests, debugging). `nft list` shows the
// keys of a numgen map and the marks of node-macs byte-swapped (the library
// does not write nft's byte-order user data); the kernel uses them as
// intended (the lab tests reach every backend and route every reply).
//
// Set IDs are numbered per transaction (not the library's global counter,
// which races between concurrent connections).
//
// Concurrency: the functions hold no state and may be called from any
// goroutine; calls for different namespaces may run concurrently. Calls for
// the same namespace must be serialized by the caller (the last Apply
// wins). Every call is bounded: netlink round trips, sysctl writes, no
// network waits.
package mesh
