// Package dispatcher serves the agents of every node from the leader: one
// session stream per agent, heartbeats (a node is marked DOWN after three
// missed periods; nodes known when a new leader starts get a grace period so
// a failover alone marks nobody down, extended for silent nodes while reconnections still
// arrive, one within stormSessionGap periods, or two below MassDownMin nodes (Config.LeaderGrace); and when most nodes miss their
// heartbeats at once they are held for a while instead, however many of
// the others come back meanwhile, Config.MassDownMin;
// heartbeats that followers relay arrive in batches, RelayedHeartbeats),
// task status reports committed in
// batches (rounds that do not wait for one another: up to four
// transactions of reports commit at once, and a caller is answered when
// its round's have), and each node's assignments as a full set followed
// by batched changes. Session messages also carry the overlay settings every node
// shares (data path port, gossip key, the nodes that are down) and gossip
// seeds; Run follows the store's nodes and cluster and, when those settings
// change, every session sends one new message: at once after a quiet
// heartbeat period, else one message per period for a burst of changes.
// The seeds come from a set kept from those node events (no scan of the
// nodes per message).
//
// Nodes that come due together are marked down in shared transactions,
// and only marks that committed count (the
// shoal_dispatcher_heartbeat_failures_total counter and the log): a dispatcher
// whose term ended marks nothing, and a mark that failed is tried again a
// period later unless the node heartbeats first.
//
// Set-up is bounded for reconnect storms: node status changes (a session's
// start, a node marked down) are committed in batches, one raft write per
// round, and a change that leaves the node as it was writes nothing (agents
// reconnecting after a failover cost no raft write); at most
// Config.SetupSlots assignment streams take their first view of the node's
// tasks at once (that view holds the store's lock); the others wait their
// turn or their deadline.
//
// A Dispatcher lives as long as one leadership term: Run's context ends
// every session. Its RPC handlers are safe for concurrent use; each stream
// is served by its own gRPC goroutine, and Run owns the heartbeat checker,
// the status and node writers and the overlay watch.
package dispatcher
