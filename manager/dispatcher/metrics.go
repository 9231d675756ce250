package dispatcher

import "sync/atomic"

// Metrics are the dispatcher's counters. The manager keeps one across
// leadership terms (each term has a dispatcher of its own) and exports
// them (manager/metrics.go, docs/metrics.md). Safe for concurrent use.
type Metrics struct {
	sessions   atomic.Uint64 // sessions opened
	heartbeats atomic.Uint64 // heartbeats received
	expired    atomic.Uint64 // nodes marked down for missed heartbeats
	held       atomic.Uint64 // times a node was held from a mass down
}

// Sessions is the number of agent sessions opened.
func (m *Metrics) Sessions() uint64 { return m.sessions.Load() }

// Heartbeats is the number of heartbeats received.
func (m *Metrics) Heartbeats() uint64 { return m.heartbeats.Load() }

// Expired is the number of times a node missed its heartbeats and was
// marked down.
func (m *Metrics) Expired() uint64 { return m.expired.Load() }

// Held is the number of times a node that missed its heartbeats was held
// instead of marked down, because most nodes missed theirs at once
// (Config.MassDownMin).
func (m *Metrics) Held() uint64 { return m.held.Load() }

// OpenSessions is the number of agent sessions open now.
func (d *Dispatcher) OpenSessions() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.sessions)
}
