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
// (manager list, overlay data) are read and dropped: a node rotates
// through the managers it was given, and followers forward its calls to
// the leader.
//
// Any failure (session stream ended, heartbeat refused, report failed)
// ends the session; the node closes its connection and opens a new one to
// the next manager after a backoff of 100ms to 2s with jitter.
//
// # Cost
//
// Two goroutines per node (the session reader, which owns the connection,
// and the assignments reader), plus the gRPC connection's own (client
// transport reader and keepalive). Heartbeats and status reports are sent
// by two worker pools shared by the whole Fleet (Config.Heartbeaters and
// Config.Reporters, plus one worker each per 50 nodes: 8 workers could not
// keep 5,000 nodes' heartbeats on time against a loaded manager), fed by
// one scheduler goroutine that scans the nodes every 100ms.
//
// Measured in test/scale (both sides in one process, three managers):
// about 480 KiB of heap and 400-590 KiB of RSS per node, and some 17
// goroutines per node in all, most of them gRPC's and the dispatcher's.
// Sharing one connection among nodes is possible only with a manager
// certificate, whose holder may name any node in the shoal-forwarded-for
// metadata (internal/fwdmeta: how followers forward agents' calls); that
// is not how an agent authenticates, so each node dials on its own.
//
// # Concurrency
//
// A Fleet's methods are safe for concurrent use. Every goroutine it starts
// ends in Close, which waits for them and closes every connection. Stats
// are counters read atomically.
package simagent
