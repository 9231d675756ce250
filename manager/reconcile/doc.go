// Package reconcile is the one driver every leader-only control loop of the
// manager runs on (orchestrator, allocator, scheduling loop, role manager).
//
// A loop supplies a Handler that names what is out of date by keys (a
// service ID, a task ID, a node ID): Snapshot marks keys from a full
// snapshot, Event marks the keys one store event touches, and Reconcile
// brings a batch of keys in line and reports, per key, a failure (retried
// after a per-key exponential backoff: MinRetry doubling to MaxRetry, a
// conflict always after MinRetry) or a time to look again (WakeAt). The
// Driver owns the rest: the watch (started from the same snapshot, so
// nothing is missed or seen twice), the dirty set, batching (a pass runs
// once the event queue is drained at a transaction boundary, and at the
// latest MaxDelay after the first unhandled event), retries, wake-ups, the
// settling of writes whose outcome is unknown (Store.Sync before the next
// pass, when SettleUnknown is set), one log line per new failure, and a full
// resync from a fresh snapshot when the watch is cut off (a slow consumer,
// a store restored from a raft snapshot).
//
// A pass that waits long (for its writes) may take the watch's events
// meanwhile (Outcome.Events, pump.go): they reach Event on the pass's own
// goroutine, between its steps, and the keys they mark stay dirty for the
// next pass; without it, a pass of minutes lets the watch fall behind until
// it is cut off. A pass's keys are clean from its start; failed ones are
// marked again when it ends.
//
// Time comes from the injected clock only. The driver holds at most one
// timer, created on first need and then reset, never created and stopped
// at once: a test counting a fake clock's waiters sees it only while the
// driver really waits on it.
//
// Concurrency: Run owns one goroutine and returns when its context ends.
// Every Handler method is called from that goroutine, one at a time
// (Snapshot under the store's lock: it must be quick and must not write;
// Event also from inside Reconcile, when the pass runs what
// Outcome.Events hands it), so a handler's own state needs no locking.
// During a pass that asked for events, a second goroutine reads the watch
// and hands them over; it ends with the pass.
package reconcile
