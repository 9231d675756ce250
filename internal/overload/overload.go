package overload

import (
	"errors"
	"math"
	"runtime/metrics"
	"sync"
	"time"
)

// Config configures a Shedder. Zero values take the defaults in validate.
type Config struct {
	// Window is how often the scheduler's wait is sampled, and the span
	// the percentile is taken over. Default 250ms.
	Window time.Duration
	// Target is the 90th-percentile wait at or below which nothing is
	// refused. Default 50ms: a saturated but healthy process stays well
	// under it; a run queue that deep means the queue, not the work, is
	// what callers are waiting on.
	Target time.Duration
	// Full is the wait at which MaxShed of new work is refused; between
	// Target and Full the fraction grows in proportion. Default 10×Target.
	Full time.Duration
	// MaxShed is the largest fraction refused, in (0, 1). Default 0.9.
	MaxShed float64
	// Floor is how many new pieces of work each window admits whatever
	// the wait: a process busy for another reason (a garbage collection,
	// a test suite on a small machine) still takes a CLI's or a few
	// agents' connections, and only a storm of them meets refusals. At
	// the defaults, 64 a second. Default 16; negative: none.
	Floor int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Read returns the scheduler's cumulative wait histogram (default:
	// runtime/metrics' "/sched/latencies:seconds"). Tests replace it.
	Read func() *metrics.Float64Histogram
}

func (c *Config) validate() error {
	if c.Window == 0 {
		c.Window = 250 * time.Millisecond
	}
	if c.Target == 0 {
		c.Target = 50 * time.Millisecond
	}
	if c.Full == 0 {
		c.Full = 10 * c.Target
	}
	if c.MaxShed == 0 {
		c.MaxShed = 0.9
	}
	if c.Floor == 0 {
		c.Floor = 16
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Read == nil {
		c.Read = readSchedLatencies
	}
	switch {
	case c.Window < 0 || c.Target < 0:
		return errors.New("overload: Window and Target must not be negative")
	case c.Full <= c.Target:
		return errors.New("overload: Full must be above Target")
	case c.MaxShed <= 0 || c.MaxShed >= 1:
		return errors.New("overload: MaxShed must be between 0 and 1 (never refuse everything)")
	}
	return nil
}

// Shedder decides, one new piece of work at a time, whether to refuse it.
type Shedder struct {
	cfg Config

	mu      sync.Mutex
	sampled time.Time // when prev was read
	prev    []uint64  // cumulative counts at sampled
	wait    time.Duration
	// perMillion is the share of new work to refuse until the next
	// sample, in millionths; debt the refusals owed to it (error
	// diffusion: exact in integers, where float sums drift).
	perMillion, debt int64
	arrivals         int // since sampled: the first Floor are admitted
	stats            Stats
}

const million = 1_000_000

// Stats counts a Shedder's decisions.
type Stats struct {
	Admitted, Shed uint64
	// Wait is the last window's 90th-percentile scheduler wait; Fraction
	// the share of new work refused until the next sample.
	Wait     time.Duration
	Fraction float64
}

// New returns a Shedder. The first window refuses nothing.
func New(cfg Config) (*Shedder, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Shedder{cfg: cfg}
	s.sampled = cfg.Now()
	s.prev = append([]uint64(nil), cfg.Read().Counts...)
	return s, nil
}

// Shed reports whether to refuse one new piece of work now, and counts
// the decision.
func (s *Shedder) Shed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := s.cfg.Now(); now.Sub(s.sampled) >= s.cfg.Window {
		s.sample(now)
	}
	if s.arrivals++; s.arrivals > s.cfg.Floor {
		if s.debt += s.perMillion; s.debt >= million {
			s.debt -= million
			s.stats.Shed++
			return true
		}
	}
	s.stats.Admitted++
	return false
}

// Stats returns the decisions so far and the last sample.
func (s *Shedder) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Wait, st.Fraction = s.wait, float64(s.perMillion)/million
	return st
}

// sample reads the histogram and sets the fraction from the wait since
// the last sample. A window in which nothing waited at all refuses nothing.
func (s *Shedder) sample(now time.Time) {
	h := s.cfg.Read()
	s.wait = percentile(h, s.prev, 0.9)
	s.prev = append(s.prev[:0], h.Counts...)
	s.sampled, s.arrivals = now, 0
	f := 0.0
	switch {
	case s.wait <= s.cfg.Target:
		s.debt = 0
	case s.wait >= s.cfg.Full:
		f = s.cfg.MaxShed
	default:
		f = s.cfg.MaxShed * float64(s.wait-s.cfg.Target) / float64(s.cfg.Full-s.cfg.Target)
	}
	s.perMillion = int64(math.Round(f * million))
}

// percentile returns the q-quantile of the samples h gained since prev
// (its counts then), as the upper bound of the bucket it falls in; zero
// when there were none.
func percentile(h *metrics.Float64Histogram, prev []uint64, q float64) time.Duration {
	var total uint64
	for i, c := range h.Counts {
		total += c - at(prev, i)
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range h.Counts {
		seen += c - at(prev, i)
		if seen >= want {
			upper := h.Buckets[i+1]
			if math.IsInf(upper, 1) {
				upper = h.Buckets[i]
			}
			return time.Duration(upper * float64(time.Second))
		}
	}
	return 0
}

func at(counts []uint64, i int) uint64 {
	if i < len(counts) {
		return counts[i]
	}
	return 0
}

func readSchedLatencies() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return &metrics.Float64Histogram{Buckets: []float64{0}}
	}
	return s[0].Value.Float64Histogram()
}
