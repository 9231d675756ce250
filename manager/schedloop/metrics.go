package schedloop

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-project/shoal/raftstore"
)

// Metrics are the scheduling loop's figures. The manager keeps one across
// leadership terms (each term has a loop of its own) and exports them
// (manager/metrics.go, docs/metrics.md). A nil *Metrics records nothing.
// Safe for concurrent use.
type Metrics struct {
	placements   atomic.Uint64 // placements committed (the loop's own and tasks created as planned by PlaceNew)
	transactions atomic.Uint64 // transactions that committed placements (the loop's and the creating ones)
	passes       raftstore.Histogram

	mu     sync.Mutex
	causes map[string]string // pending task -> why the last pass left it
	counts map[string]int    // cause -> tasks
}

// MetricsSnapshot is what Metrics hold at one moment.
type MetricsSnapshot struct {
	Placements, Transactions uint64
	// Passes times each scheduling pass: planning and committing.
	Passes raftstore.HistogramSnapshot
	// Unplaced counts the pending tasks the scheduler could not place, by
	// cause (scheduler.Unplaced.Cause); empty when this manager does not
	// lead.
	Unplaced map[string]int
}

// Snapshot reads the metrics.
func (m *Metrics) Snapshot() MetricsSnapshot {
	s := MetricsSnapshot{Placements: m.placements.Load(), Transactions: m.transactions.Load(), Passes: m.passes.Snapshot(), Unplaced: map[string]int{}}
	m.mu.Lock()
	for c, n := range m.counts {
		if n > 0 {
			s.Unplaced[c] = n
		}
	}
	m.mu.Unlock()
	return s
}

func (m *Metrics) committed(placements int) {
	if m == nil || placements == 0 {
		return
	}
	m.placements.Add(uint64(placements))
	m.transactions.Add(1)
}

// pass times one scheduling pass.
func (m *Metrics) pass(d time.Duration) {
	if m != nil {
		m.passes.Observe(d)
	}
}

// unplaced records why a pending task waits ("" forgets it: placed, or no
// longer pending).
func (m *Metrics) unplaced(taskID, cause string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.causes == nil {
		m.causes, m.counts = map[string]string{}, map[string]int{}
	}
	old, had := m.causes[taskID]
	if old == cause {
		return
	}
	if had {
		m.counts[old]--
		delete(m.causes, taskID)
	}
	if cause != "" {
		m.causes[taskID] = cause
		m.counts[cause]++
	}
}

// reset forgets every unplaced task (a new view, or the term ended).
func (m *Metrics) reset() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.causes, m.counts = nil, nil
	m.mu.Unlock()
}
