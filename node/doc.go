// Package node is one shoal node's life, as a library: shoald is flags, a
// Config and Run; tests run whole nodes in one process.
//
// A Node always serves the local control socket (LocalNode: init, join,
// leave, unlock, info; Volumes: this node's local volumes, kept by the
// agent's executor when it has them (volumes.go); Registry: what an image
// tag points to, for the CLI to pin its digest (registry.go); every other
// call is proxied to this node's manager).
// Once it is in a swarm it runs a member: the agent (worker) always, and a
// manager while the node certificate's role says manager. Role changes
// arrive as events: the agent reports each node object a session brings
// (worker.Config.OnNodeUpdate); when the cluster wants another role, the
// member renews its certificate, and a certificate with a new role restarts
// the member in that role (a promoted worker joins raft, a demoted manager
// drops its raft log). The swarm's domain logic lives in manager
// (bootstrap, raft join, leave quorum); this package wires it.
//
// With Config.Overlay (shoald sets it), the agent's member also runs the
// node's overlay.Agent (overlay.go): built on the data path address
// (init/join's --data-path-addr, else the flag, else the advertise host)
// with link names after the node ID, handed to the executor
// (ExecutorFunc's ov), started with the executor's live tasks (stale
// networks go), fed every session message (worker.Config.OnSession: the
// data path port, network key, down nodes and gossip seeds) from a
// goroutine of its own, closed with the agent; leaving a swarm removes its
// networks. It composes ingress/vip through an adapter here, as overlay
// may not import ingress.
//
// With Config.Gateway (shoald: the Docker Engine API), Run also runs a
// gateway beside the control socket (gateway.go): it gets a connection to
// the control socket and the node's current TLS identity, runs until the
// node stops (it is stopped before the member, so requests in flight still
// reach the manager), and its failure stops the node.
//
// The executor (the container runtime), the clock, the cluster API
// listener and the dialer are injected through Config. With a fake clock
// the caller advances it: raft ticks, heartbeats, renewals and the grace of
// a stopping server all wait on it.
//
// Files: config.go (Config, DefaultConfig: every default and timeout of a
// node, written once), node.go (Node, Run, start and resume), member.go (a running
// member: server, manager, connections), agent.go, local.go (control
// socket, Info), init.go, join.go, leave.go, lock.go (encryption at rest,
// autolock, unlock), renew.go (certificate renewal, role changes), gateway.go, state.go
// and addr.go (data directory, addresses), overlay.go (the overlay agent).
//
// Concurrency: a Node is safe for concurrent use. LocalNode calls may arrive
// at any time; those that change what runs (init, join, leave, unlock, a
// role change) are serialized by the node's mutex and its pending flag.
// Every goroutine a Node starts is owned: members run under a context the
// node cancels, and Run waits for all of them before it returns.
package node
