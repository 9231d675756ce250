// Package allocator is the leader's allocation loop for overlay networks.
//
// It moves new tasks from NEW to PENDING once what they need from the
// cluster is allocated: per network of the task's spec an attachment
// (address, random locally administered MAC, and the network's facts: name,
// VNI, subnet, gateway, MTU, internal) and a copy of the service's endpoint.
// Tasks without networks go PENDING at once; the orchestrator creates the
// tasks of a service that needs nothing from this loop (NothingToAllocate:
// no networks, no ingress port, endpoint settled) PENDING already, as the
// loop would make them, sparing a write per task. It also gives each VIP-mode
// service one virtual IP per network it is attached to, gives each node
// that runs an allocated task on a network an address there
// (Node.attachments), and creates the cluster's gossip key
// (Cluster.network_key) when an older cluster has none.
//
// Addresses are tracked in memory per network (pools), rebuilt from the
// store when the loop starts (networks, task and node attachments, service
// VIPs) and kept in line with every store event, so an address held in the
// store is never handed out again. A task's addresses are freed when it is
// deleted or both its state and its desired state are past RUNNING; a
// node's and a service's when the store no longer shows them. Freed
// addresses are quarantined for Config.Quarantine before reuse: never-used
// addresses go first, then the least recently freed. A task that finds no
// free address stays NEW with an error naming the network, and is tried
// again when an address of that network frees (or its quarantine ends).
//
// Published ports and the ingress network (the routing mesh). The Control
// API allocates a service's ports (AllocatePorts: conflicts refused naming
// the other service, ingress ports published as 0 given the lowest free
// port of 30000-32767, host-mode 0 left 0) in the transaction that writes
// its spec, into Service.endpoint.ports; the loop allocates them only when
// the spec changed without them (the orchestrator's rollback, services of
// older clusters), leaving out a port another service holds until it
// frees. A service whose ports hold an ingress-mode port gets a VIP on the
// ingress network (after its own networks' VIPs, whatever its endpoint
// mode), its new tasks an attachment there after their own networks (so
// their own interfaces keep their names), and while any service publishes
// an ingress port every ready node gets an address on it (a node that is
// not ready keeps the one it has); all are released when the last such
// service goes. The ingress network is made at `swarm init`
// (NewIngressNetwork: "ingress", 10.0.0.0/24 when in the pool and free,
// else the pool's first free block, the lowest free VNI, 4096 there); a
// cluster without one gets one from the loop when a service first needs
// it.
//
// Concurrency: it runs on the leader only, on a reconcile.Driver (one
// goroutine owned by Run); all allocation state is owned by that goroutine.
package allocator
