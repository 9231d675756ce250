// Package fakeexec is a worker.Executor whose containers exist only in
// memory, for tests of the agent and of whole clusters in one process (the
// in-process cluster harness, internal/testcluster) where neither root nor
// containerd is available.
//
// A task "runs" at once: Prepare makes the container, Start starts its
// process, and the process runs until it is stopped, killed or told to
// exit. What goes wrong is scripted with Rules, shared by any number of
// executors (one per simulated node): a Rule matches tasks (by image, by
// service name, by any predicate) and makes Prepare fail (transiently or
// rejected), Start fail, the process exit with a code after a delay on the
// clock, or the task turn unhealthy (at start, or after a delay). Tests can
// also act on a running container directly (Exit, Unhealthy).
//
// Containers outlive controllers and agents, as containerd's do, so an agent
// restarted over the same Executor finds them; Reset forgets them (a machine
// that rebooted).
//
// # Cost
//
// A container is a small struct and one channel; the executor starts no
// goroutine of its own. A process that exits after a delay waits on a timer
// of the injected clock inside Wait (the agent's runner goroutine), so an
// executor holds thousands of tasks cheaply. Counters are per executor, not
// a call log.
//
// # Concurrency
//
// Executor, Rules and controllers are safe for concurrent use. Controller
// methods honour their context. Time comes from the injected clock only
// (a clockwork.FakeClock in tests).
package fakeexec
