package raftstore

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// The Ready loop must keep up: it ticks raft (elections, heartbeats,
// CheckQuorum) and sends every message. A loop that stalls for an election
// timeout costs the leadership (a leader hears no quorum; followers hear
// no leader). stallWatch says so in the log, with where the time went,
// instead of leaving a silent leader change: a tick handled later than
// stallTicks ticks after the one before, or a Ready that took longer
// than that. It warns at most once per stallWarnEvery (it counts every
// stall, Stalls).

// stallTicks is the delay, in ticks, counted as a stall (half the default
// election timeout).
const stallTicks = 5

// stallWarnEvery spaces the warnings.
const stallWarnEvery = 10 * time.Second

// stallWatch is owned by the Ready loop's goroutine; Stalls may be read
// from any goroutine.
type stallWatch struct {
	log      *slog.Logger
	limit    time.Duration
	lastTick time.Time
	lastWarn time.Time
	stalls   atomic.Uint64
}

func newStallWatch(log *slog.Logger, tick time.Duration) *stallWatch {
	return &stallWatch{log: log, limit: stallTicks * tick}
}

// tick records a tick handled at now.
func (w *stallWatch) tick(now time.Time) {
	if !w.lastTick.IsZero() {
		if gap := now.Sub(w.lastTick); gap > w.limit {
			w.stalled(now, "raft's Ready loop ticked late: it was busy or the process was starved of CPU", "gap", gap.Round(time.Millisecond))
		}
	}
	w.lastTick = now
}

// readyTimes is where one Ready's time went.
type readyTimes struct {
	start      time.Time
	applyQueue time.Duration // waiting for room in the applier's queue
	persist    time.Duration // writing entries and hard state
	send       time.Duration // handing messages to the transport
	snapshot   time.Duration // draining the applier and restoring a snapshot
	entries    int
	committed  int
}

// ready records a Ready handled from t.start to now.
func (w *stallWatch) ready(now time.Time, t readyTimes) {
	if took := now.Sub(t.start); took > w.limit {
		w.stalled(now, "a raft Ready took long", "took", took.Round(time.Millisecond),
			"apply_queue_wait", t.applyQueue.Round(time.Millisecond), "persist", t.persist.Round(time.Millisecond),
			"send", t.send.Round(time.Millisecond), "snapshot", t.snapshot.Round(time.Millisecond),
			"entries", t.entries, "committed", t.committed)
	}
}

func (w *stallWatch) stalled(now time.Time, msg string, args ...any) {
	n := w.stalls.Add(1)
	if now.Sub(w.lastWarn) < stallWarnEvery {
		return
	}
	w.lastWarn = now
	w.log.Warn(msg, append(args, "stalls_so_far", n, "election_timeout_at_risk", true)...)
}

// Stalls is the number of Ready-loop stalls seen (see stallWatch).
func (n *Node) Stalls() uint64 { return n.stall.stalls.Load() }
