// Package dispatcher serves the agents of every node from the leader: one
// session stream per agent, heartbeats (a node is marked DOWN after three
// missed periods; nodes known when a new leader starts get a grace period so
// a failover alone marks nobody down), task status reports committed in
// batches, and each node's assignments as a full set followed by batched
// changes.
//
// A Dispatcher lives as long as one leadership term: Run's context ends
// every session. Its RPC handlers are safe for concurrent use; each stream
// is served by its own gRPC goroutine, and Run owns the heartbeat checker
// and the status writer.
package dispatcher
