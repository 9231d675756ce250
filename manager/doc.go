// Package manager is a manager node's control plane. A Manager owns one raft
// member (raftstore) and its store, and serves the Raft, Control, CA,
// Dispatcher, Logs, LogBroker, Stats, StatsBroker and Watch services. While it leads, and only
// after a raft barrier (so it reads a store holding every committed entry),
// it runs the control loops: orchestrator, allocator, scheduling loop,
// dispatcher and log broker; losing leadership cancels them and waits.
//
// Calls meant for the leader that reach a follower are forwarded to the
// leader (UnaryInterceptor/StreamInterceptor), with a pass-through codec so
// one proxy serves unary and streaming methods; agent calls carry the
// agent's identity in metadata, trusted only from managers. A forwarded call
// is never forwarded again. A follower that knows no leader while a
// majority of managers is reachable holds such a call until the election's
// outcome (at most an election timeout; electwait.go: one goroutine relays
// raft's leadership changes to every held call); an agent's call (session,
// assignments, status, relayed heartbeats) that reaches a leader whose
// control loops have not started yet waits for its dispatcher, as long
// (servingDispatcher). A unary call whose forward failed without reaching
// the leader (a leader just killed), or that only reads, goes once more
// to the next leader, waited for as long (awaitNextLeader). A Control call
// the leader serves first passes a read barrier (raft ReadIndex, rounds
// shared by concurrent calls: a quorum confirms the leadership, and the
// store has applied everything committed before the call), so a leader that was deposed without knowing it yet
// (paused, or cut off) fails the call instead of answering from a stale
// store: Control reads and the version checks of writes are linearizable
// (test/lab TestLinearizable). Policy lists the roles allowed on every
// method, enforced by pki.Authorizer. Its IsRemovedNode and IsDemotedNode
// answer from sets kept in memory by a watch Filter that runs inside
// Store.Apply (nodeauth.go): never staler than a store read, and no store
// read per authenticated call. AdmitHandshake, which the server's TLS
// config asks about every new connection (pki.Admit), refuses a share of
// them while the Go scheduler's run-queue wait says this process is
// overloaded (admission.go, internal/overload), and agents' while the
// manager's raft member has not started (it reads its snapshot and log);
// other managers' are never refused, joining nodes' never for restoring.
//
// Subpackages each do one job: controlapi (validation and CRUD),
// orchestrator (slots, restarts, reaping), allocator (NEW to PENDING),
// schedloop (the pure scheduler against the store), dispatcher (agents),
// caserver (certificates), logbroker (service logs). The orchestrator,
// allocator, scheduling loop and role manager (roles.go) all run on one
// driver, reconcile: watch, dirty keys, per-key backoff, wake-ups and a
// full resync after a cut-off watch, on the injected clock.
//
// Manager is safe for concurrent use; every goroutine it starts stops when
// Run's context ends.
package manager
