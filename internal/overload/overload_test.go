package overload

import (
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

// fakeSched is a scheduler-wait histogram the test fills: buckets of 1 ms
// up to 1 s, then one to +Inf.
type fakeSched struct {
	mu     sync.Mutex
	counts []uint64
}

var fakeBuckets = func() []float64 {
	b := make([]float64, 0, 1002)
	for i := 0; i <= 1000; i++ {
		b = append(b, float64(i)/1000)
	}
	return append(b, inf())
}()

func inf() float64 { var z float64; return 1 / z }

func newFakeSched() *fakeSched { return &fakeSched{counts: make([]uint64, len(fakeBuckets)-1)} }

// waited records n goroutines that waited d (rounded down to the ms).
func (f *fakeSched) waited(n int, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := int(d / time.Millisecond)
	if i >= len(f.counts) {
		i = len(f.counts) - 1
	}
	f.counts[i] += uint64(n)
}

func (f *fakeSched) read() *metrics.Float64Histogram {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &metrics.Float64Histogram{Counts: append([]uint64(nil), f.counts...), Buckets: fakeBuckets}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// newTestShedder returns a Shedder on a fake histogram and clock that
// admits floor arrivals per window whatever the wait (-1: none).
func newTestShedder(t *testing.T, floor int) (*Shedder, *fakeSched, *fakeClock) {
	t.Helper()
	f, c := newFakeSched(), &fakeClock{t: time.Unix(1000, 0)}
	s, err := New(Config{Now: c.now, Read: f.read, Floor: floor})
	if err != nil {
		t.Fatal(err)
	}
	return s, f, c
}

// shedOf calls Shed n times and returns how many it refused.
func shedOf(s *Shedder, n int) int {
	shed := 0
	for i := 0; i < n; i++ {
		if s.Shed() {
			shed++
		}
	}
	return shed
}

func TestRefusesInProportionToTheSchedulersWait(t *testing.T) {
	s, f, c := newTestShedder(t, -1)
	// Within the target: nothing refused, however many arrive.
	f.waited(1000, 2*time.Millisecond)
	f.waited(50, 40*time.Millisecond)
	c.advance(300 * time.Millisecond)
	if got := shedOf(s, 1000); got != 0 {
		t.Fatalf("p90 wait 2ms (target 50ms): refused %d of 1000, want 0", got)
	}
	if st := s.Stats(); st.Wait != 3*time.Millisecond || st.Fraction != 0 {
		t.Fatalf("stats %+v, want wait 3ms (the 2ms bucket's upper bound), fraction 0", st)
	}

	// Half-way from the target (50ms) to full (500ms): MaxShed/2 = 45 %.
	f.waited(10, time.Millisecond)
	f.waited(90, 274*time.Millisecond) // bucket [274, 275) ms: p90 = 275 ms
	c.advance(300 * time.Millisecond)
	if got := shedOf(s, 1000); got != 450 {
		t.Fatalf("p90 wait 275ms: refused %d of 1000, want 450", got)
	}

	// At or past full: MaxShed, never all.
	f.waited(100, 3*time.Second)
	c.advance(300 * time.Millisecond)
	if got := shedOf(s, 1000); got != 900 {
		t.Fatalf("p90 wait past 1s: refused %d of 1000, want 900", got)
	}

	// A quiet window (nothing ran that had to wait) refuses nothing again.
	c.advance(300 * time.Millisecond)
	if got := shedOf(s, 1000); got != 0 {
		t.Fatalf("window without waits: refused %d of 1000, want 0", got)
	}
	if st := s.Stats(); st.Shed != 1350 || st.Admitted != 2650 {
		t.Fatalf("stats %+v, want 1350 shed and 2650 admitted", st)
	}
}

func TestSamplesOncePerWindow(t *testing.T) {
	s, f, c := newTestShedder(t, -1)
	f.waited(100, 2*time.Second)
	// Not yet a window since New: the old (empty) sample stands.
	c.advance(100 * time.Millisecond)
	if got := shedOf(s, 100); got != 0 {
		t.Fatalf("within the first window refused %d, want 0", got)
	}
	c.advance(200 * time.Millisecond)
	if got := shedOf(s, 100); got != 90 {
		t.Fatalf("after a window of 2s waits refused %d of 100, want 90", got)
	}
	// The waits are counted once: the next window has none.
	c.advance(250 * time.Millisecond)
	if got := shedOf(s, 100); got != 0 {
		t.Fatalf("next window (no new waits) refused %d, want 0", got)
	}
}

// Each window admits its first Floor arrivals whatever the wait: a few
// connections to a process busy for another reason are not a storm.
func TestAdmitsAFloorPerWindow(t *testing.T) {
	s, f, c := newTestShedder(t, 10)
	f.waited(100, 2*time.Second)
	c.advance(300 * time.Millisecond)
	if got := shedOf(s, 10); got != 0 {
		t.Fatalf("the first 10 in an overloaded window: refused %d, want 0", got)
	}
	if got := shedOf(s, 100); got != 90 {
		t.Fatalf("the next 100: refused %d, want 90", got)
	}
	f.waited(100, 2*time.Second)
	c.advance(300 * time.Millisecond)
	if got := shedOf(s, 10); got != 0 {
		t.Fatalf("the first 10 of the next window: refused %d, want 0", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{
		{MaxShed: 1},
		{MaxShed: -0.1},
		{Target: time.Second, Full: time.Millisecond},
		{Window: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v): no error", cfg)
		}
	}
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Window != 250*time.Millisecond || s.cfg.Target != 50*time.Millisecond || s.cfg.Full != 500*time.Millisecond || s.cfg.MaxShed != 0.9 || s.cfg.Floor != 16 {
		t.Fatalf("defaults %+v", s.cfg)
	}
}

// TestReadsTheRuntimesHistogram: the default Read sees this process's
// scheduler, which has run goroutines by now.
func TestReadsTheRuntimesHistogram(t *testing.T) {
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() { defer wg.Done() }()
	}
	wg.Wait()
	h := readSchedLatencies()
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	if n == 0 || len(h.Buckets) != len(h.Counts)+1 {
		t.Fatalf("runtime histogram: %d samples, %d buckets for %d counts", n, len(h.Buckets), len(h.Counts))
	}
}
