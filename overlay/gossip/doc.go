// Package gossip replicates the overlay's peer and service-endpoint tables
// between nodes with hashicorp/memberlist (one memberlist per node, AES
// encryption with the cluster's network key, port 7946 by default).
//
// The table holds entries keyed (network, key, owner). Only the owner writes:
// Publish and Withdraw stamp the local node as Owner with its Generation
// (incarnation) and a growing Version. Per owner, (Generation, Version)
// orders writes: higher wins, equal is ignored, and a newer Generation
// supersedes all the owner's older entries: each stays until the new
// generation rewrites or withdraws it, at most Config.RestartGrace (10 s),
// so a restarted daemon whose tasks run on keeps them in every table while
// it re-publishes them. Deletes are tombstones kept for
// Config.TombstoneTTL. A node that receives a copy of one of its own entries
// that is not exactly its current one (an old incarnation's after its
// restart grace, or a reaped one) answers with its current entry or a
// tombstone, so stale copies die everywhere.
//
// Spreading: local writes, gathered for FlushWindow, are sent straight to
// every member over memberlist's encrypted TCP streams (direct.go: reliable,
// one round trip); in clusters above 128 members, or when a member cannot
// be reached that way, they are broadcast through memberlist's gossip
// (TransmitLimitedQueue, piggybacked on UDP packets) and re-broadcast by
// every node that learns something new from them; full-state push-pull
// (LocalState/MergeRemoteState) every Config.PushPullInterval repairs what
// was lost. When memberlist declares a node dead or it leaves, its entries
// are dropped at once and its copies ignored until it is alive again, and
// then its state is pulled at once. DropNode does the same on the managers'
// word, and holds until the managers say the node is back or it restarts
// (rule on DropNode).
//
// Concurrency: every method of Gossip is safe for concurrent use.
// memberlist's goroutines call the delegates, which hold Gossip's mutex
// briefly and never call memberlist under it. Gossip owns three goroutines,
// stopped by Close: one calls Config.OnChange (never under a lock,
// coalesced through a one-slot channel and a pending set, so memberlist is
// never blocked by the callback), one reaps tombstones and runs state pulls,
// one sends local writes (direct or gossip). Queues are bounded: broadcasts
// (MaxQueuedBroadcasts, oldest dropped), state pulls (64, lossy: the
// periodic push-pull covers a lost one), unsent local writes (65,536, then
// straight to the broadcast queue), push-pull state and direct messages
// (MaxStateBytes).
//
// The package imports no other shoal package (DESIGN.md: overlay may import
// only proto).
package gossip
