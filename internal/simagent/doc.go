// Package simagent simulates many worker nodes cheaply, for scale tests:
// each simulated node speaks the real dispatcher protocol
// (proto/dispatcher.proto) to a manager over its own gRPC connection, with
// its own TLS identity (the dispatcher knows a node by its verified
// certificate), but keeps no containers and no task database.
//
// # Protocol
//
// A node opens a Session (with its hostname), takes the session ID from
// the first SessionMessage, heartbeats at once and then every period the
// dispatcher answers with, and follows its Assignments stream. A task
// assigned with a desired state up to RUNNING is reported RUNNING at once
// (the states in between, ACCEPTED..STARTING, are skipped: the dispatcher
// takes any forward move, and the real agent's reporter also keeps only
// the latest state of a task). A task whose desired state is past RUNNING
// is reported SHUTDOWN. Reports of a node are batched (latest state per
// task wins) while one of its UpdateTaskStatus calls is in flight, as the
// real agent's reporter does. A node keeps no per-task memory: after a
// reconnect the COMPLETE assignment set, which carries each task's
// recorded status, says what is still to report. A REMOVE change needs
// nothing (the real agent would stop a container). Session messages
// (manager list, overlay data) are read and dropped: a node chooses among
// the managers it was given as the real agent does (internal/remotes: at
// random, a manager's chance halved for each failure since its last
// session there, never the one that just failed; a node rotating through
// them in turn kept a third of its attempts on a manager that had just
// restarted, whose TLS handshakes then timed out by the hundred thousand
// after leader kills at 10,000 nodes), and followers forward its calls to
// the leader.
//
// Any failure (session stream ended, heartbeat refused, report failed)
// ends the session, as in the real agent, and the node opens a new one
// after a backoff of 100ms to 8s with jitter (Config.BackoffMin/Max),
// with the same manager when the manager only said it did not know the
// session, with another one otherwise; but
// three heartbeats in a row must fail, and a report that runs out of time
// (a leader slow to commit) goes again 1 s, 2 s later in the same session
// unless it is the third in a row.
//
// # Cost
//
// Two goroutines per node (the session reader, whose run owns the node's
// connections, and the assignments reader), plus the gRPC connections' own.
// A node keeps its connection to each manager it used across sessions, as
// the real agent does (node/member.go's dial cache): a session that ends
// (a heartbeat or report not answered in time) reopens on a connection
// that already exists when it goes back to that manager, with no TLS handshake. Each node
// used to dial anew for every session: at 1M tasks on the
// 2-core machine, 110,262 handshakes ran out of time in one run, CPU the
// managers spent for nothing while they were shortest of it. A node holds
// at most one connection per manager. Each node
// has a root context of its own (cancelled by Close): sessions of
// thousands of nodes descending from one shared context would queue on
// its lock. Status reports are sent by a worker pool shared by the whole
// Fleet (Config.Reporters, plus one worker per 50 nodes). Heartbeats are
// started by one scheduler goroutine that scans the nodes every 100ms, each
// due heartbeat in a goroutine of its own (at most one per node), as real
// agents beat independently: a shared pool let slow answers make other
// nodes' heartbeats late, and the managers marked healthy nodes down.
//
// Measured in test/scale (both sides in one process, three managers, 10,000
// nodes, after the join): about 131 KiB of heap, 81 KiB of goroutine
// stacks and 288 KiB of RSS per node, and some 17 goroutines per node in
// all. A node's own side: its two
// goroutines, gRPC's transport reader and writer, three callback
// serializers of its ClientConn and one context watcher per open stream
// (two). Its connection has no gRPC read buffer (Config's DialFunc in
// testcluster sets WithReadBufferSize(0): TLS buffers each record
// already); gRPC's write buffer is shared by default. The largest cost
// left per node is the manager's side: gRPC's 32 KiB server read buffer
// per connection and the per-stream server state.
//
// Sharing one connection among nodes is possible only with a manager
// certificate, whose holder may name any node in the shoal-forwarded-for
// metadata (internal/fwdmeta: how followers forward agents' calls); that
// is not how an agent authenticates, so each node dials on its own.
//
// A node keeps its connection to each manager it has had a session with,
// as the real agent does, so a session that ends costs no new handshake.
// One process holds every node's connections, though, where each real
// agent has file descriptors of its own: Config.MaxConns bounds them (the
// fleet process of testcluster sets it from its open-file limit, 20,000
// on this machine, which root in its container cannot raise), and a node
// that dials past it closes its other connections first. testcluster
// spreads a big fleet over as many processes as keep it within the bound
// (Stats.Add sums their counters).
//
// Fleet.CountHandshakes wraps the nodes' TLS credentials so that Stats
// count every handshake of their connections (gRPC reconnects a broken
// one by itself), the resumed ones and the failed ones: what a reconnect
// storm costs in handshakes.
//
// # Concurrency
//
// A Fleet's methods are safe for concurrent use. Every goroutine it starts
// ends in Close, which waits for them and closes every connection. Stats
// are counters read atomically. Every goroutine of a fleet, and those it
// starts (gRPC's for its connections), carries the pprof label
// shoal=fleet, so that a CPU profile tells its work from the managers'.
package simagent
