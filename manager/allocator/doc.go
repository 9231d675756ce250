// Package allocator is the leader's allocation loop for overlay networks.
//
// It moves new tasks from NEW to PENDING once what they need from the
// cluster is allocated: per network of the task's spec an attachment
// (address, random locally administered MAC, and the network's facts: name,
// VNI, subnet, gateway, MTU, internal) and a copy of the service's endpoint.
// Tasks without networks go PENDING at once. It also gives each VIP-mode
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
// Concurrency: it runs on the leader only, on a reconcile.Driver (one
// goroutine owned by Run); all allocation state is owned by that goroutine.
package allocator
