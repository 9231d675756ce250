// Package overload tells a busy process to refuse new work before it takes
// it on. Its one signal is the Go scheduler's own: how long goroutines that
// were ready to run waited for a processor (runtime/metrics
// "/sched/latencies:seconds"), the 90th percentile over the last window.
// That wait is what starves a manager's raft loop when thousands of agents
// reconnect at once: each new TLS handshake is a goroutine that costs a
// millisecond of CPU, and on a machine already saturated they pile up in
// the run queues until the handshakes outlast their clients' deadlines
// (wasted whole) and the leader's heartbeats to its followers go out late
// enough for CheckQuorum to depose it.
//
// A Shedder refuses a growing fraction of new work as the wait rises above
// a target (none below it, at most MaxShed at or above Full, never all of
// it: something must still get through when the wait is high for another
// reason), spreading the refusals evenly over the admissions (error
// diffusion, not chance, so that tests are exact). Each window's first
// Floor arrivals are admitted whatever the wait, so that only a storm of
// new work meets refusals, never a CLI's connection to a process busy for
// another reason. Refusing costs the
// refused client a fast failure and its backoff, where admitting it
// under overload costs both sides a handshake that then times out.
//
// A Shedder is safe for concurrent use. It owns no goroutine: it samples
// the scheduler's histogram on the call that finds the last sample a
// window old.
package overload
