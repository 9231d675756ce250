// Package orchestrator keeps services' tasks in line with their specs: it
// creates tasks for missing replicated slots and for eligible nodes of global
// services, applies restart policies (a restart is a new task in the same
// slot, after the restart delay, counted against max attempts across leader
// failovers because the count travels on the task), moves tasks off down and
// drained nodes, shuts down duplicates and tasks of removed services, and
// reaps history beyond the task history limit.
//
// Tasks are created NEW for the allocator, or PENDING (with the service's
// endpoint, as the allocator would make them) when the service as of the
// creating transaction needs nothing from it (allocator.NothingToAllocate):
// one raft write per task fewer on the way to RUNNING. With a Placer (the
// scheduling loop, schedloop.Loop.PlaceNew: the leader's wiring), such
// tasks are created ASSIGNED to the nodes the scheduler planned for them
// just before the transaction, where that node is still READY and ACTIVE
// in it: one more write fewer (create, then the agent's RUNNING report).
// A service's creates are cut into transactions of up to
// raftstore.BatchItems tasks; when a pass only creates (a scale-up, a new
// service), up to createsInFlight of them are in flight at once, since they
// fill distinct slots; a pass that also updates or deletes writes its
// transactions in order and stops at the first failure.
//
// Reconcile is a pure function from one service's state to the writes it
// needs; Orchestrator.Run is the leader-only loop around it, on a
// reconcile.Driver keyed by service ID: a full reconcile from a snapshot at
// start (and after a cut-off watch), then per event and at each service's
// requested wake-up. It runs in one goroutine owned by Run and stops when
// its context ends.
//
// Passes and their cost: a pass over a service reads all its tasks, so Run
// reconciles a service only when an event may change Reconcile's answer.
// Task updates Reconcile cannot tell apart (progress reports below
// RUNNING) are ignored; quiet events (quiet.go: a task alone in its
// replicated slot, of the current spec, meant to run, moving forward to a
// node that can run it, or created by the pass itself into an empty slot)
// still mark the service, but its pass only checks those tasks' nodes and
// stands on the last pass that had nothing to write, as long as nothing
// else touched the service. Creating a service of N replicas so costs one
// pass over its tasks, not one per batch of the scheduler's and agents'
// writes. A node event marks the services with tasks on the node and the
// global services, no others; a cluster event marks every service. The
// watch may fall reconcile.DefaultWatchBuffer (2^18) events behind before it
// is cut off (and every service is read again); a pass waiting for its
// writes takes the watch's events meanwhile (reconcile.Outcome.Events), so
// a create of minutes (1,000,000 replicas) does not let it fall behind, and
// the quiet state of a pass that only creates stands from its decision, so
// the events of its own creates (placed or not) and their RUNNING reports
// are quiet (TestLongCreatePassKeepsItsWatch).
//
// During a rolling update or rollback no event is quiet (newQuietState):
// a RUNNING report frees room for the next replacements, a stopped old
// task lets its stop-first replacement start, so nearly every pass writes
// (BenchmarkRollingUpdate, parallelism N/10: 0-5 of 42-47 passes wrote
// nothing). The driver coalesces what arrives during a pass, so an update
// costs about four passes per step (N/parallelism steps), each reading all
// the service's tasks; what is left to save is a pass's cost per task
// (BenchmarkReconcileUpdating): a pass groups tasks by slot in one array
// for the replicated slots (slots.go: no map, no slice per slot), a slot's
// tasks are sorted without reflection or time values, a slot within the
// history limit is not sorted for reaping, and the quiet state is an array
// of IDs by slot. A pass over a steady service of 1,000,000 replicas, what a
// new leader pays for it (BenchmarkSteadyPass), takes 0.45 s and 52 MB (it
// took 2.8 s and 382 MB in 2 million allocations with maps).
package orchestrator
