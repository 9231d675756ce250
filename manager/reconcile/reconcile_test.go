package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// pass is one call of Reconcile as the recorder saw it.
type pass struct {
	at   time.Time
	keys []string
}

// recorder is a Handler keyed by node ID that records what the driver asks
// of it and answers as the test scripts it.
type recorder struct {
	clock *clockwork.FakeClock
	// passes receives every pass, in order.
	passes chan pass

	mu        sync.Mutex
	snapshots int
	events    int
	fail      map[string]error         // keys that fail, with their error
	wakeIn    map[string]time.Duration // keys that ask for a wake-up
	hold      chan struct{}            // when set, the next pass waits for it to close
	held      chan struct{}            // closed when a pass is held
	onEvent   func(raftstore.Event)    // runs on the driver's goroutine
	// pump: a held pass takes the watch's events (Outcome.Events) while
	// it waits; ask: it asks for them but takes none.
	pump, ask bool
	inPass    bool  // set during Reconcile, read by Event
	midPass   int   // events handled during a pass
	ctxErr    error // the context's error seen by the last pass
}

func newRecorder(clock *clockwork.FakeClock) *recorder {
	return &recorder{clock: clock, passes: make(chan pass, 1000), fail: map[string]error{}, wakeIn: map[string]time.Duration{}}
}

func (r *recorder) Snapshot(tx raftstore.ReadTx, mark func(string)) {
	r.mu.Lock()
	r.snapshots++
	r.mu.Unlock()
	for _, n := range tx.Nodes() {
		mark(n.Id)
	}
}

func (r *recorder) Event(ev raftstore.Event, mark func(string)) {
	r.mu.Lock()
	r.events++
	f := r.onEvent
	r.mu.Unlock()
	if ev.Action == raftstore.ActionCommit {
		panic("a commit event reached the handler")
	}
	if f != nil {
		f(ev)
	}
	r.mu.Lock()
	if r.inPass {
		r.midPass++
	}
	r.mu.Unlock()
	mark(ev.Object.GetId())
}

func (r *recorder) Reconcile(ctx context.Context, keys []string, out *Outcome) {
	r.mu.Lock()
	hold, held := r.hold, r.held
	r.hold, r.held = nil, nil
	r.inPass = true
	var events <-chan func()
	if r.pump || r.ask {
		events = out.Events() // starts the driver's pump
	}
	if !r.pump {
		events = nil // ask: none taken
	}
	r.mu.Unlock()
	if hold != nil {
		close(held)
	wait:
		for {
			select {
			case <-hold:
				break wait
			case <-ctx.Done():
				break wait
			case f := <-events:
				f()
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inPass = false
	r.ctxErr = ctx.Err()
	for _, k := range keys {
		if err := r.fail[k]; err != nil {
			out.Fail(k, err)
		}
		if d, ok := r.wakeIn[k]; ok {
			out.WakeAt(k, r.clock.Now().Add(d))
		}
	}
	r.passes <- pass{at: r.clock.Now(), keys: slices.Clone(keys)}
}

// holdNext makes the next pass wait until release is called; held is
// closed once the pass waits.
func (r *recorder) holdNext() (<-chan struct{}, func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	hold, held := make(chan struct{}), make(chan struct{})
	r.hold, r.held = hold, held
	return held, func() { close(hold) }
}

func (r *recorder) set(fn func(r *recorder)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(r)
}

func (r *recorder) snapshotCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshots
}

// next waits (at most 5 s of real time) for the next pass.
func (r *recorder) next(t *testing.T) pass {
	t.Helper()
	select {
	case p := <-r.passes:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no pass within 5 s")
		return pass{}
	}
}

// none checks that no pass was recorded.
func (r *recorder) none(t *testing.T) {
	t.Helper()
	select {
	case p := <-r.passes:
		t.Fatalf("unexpected pass %v", p.keys)
	default:
	}
}

type fixture struct {
	t     *testing.T
	clock *clockwork.FakeClock
	store *raftstore.Store
	rec   *recorder
	logs  *testutil.LogBuffer
	ctx   context.Context
	stop  func()
}

// start runs a driver over store (a standalone one when nil) holding nodes
// named by ids.
func start(t *testing.T, store *raftstore.Store, cfg Config, ids ...string) *fixture {
	t.Helper()
	clock := clockwork.NewFakeClock()
	if store == nil {
		store = raftstore.NewStandaloneStore(clock)
	}
	f := &fixture{t: t, clock: clock, store: store, rec: newRecorder(clock), logs: &testutil.LogBuffer{}}
	for _, id := range ids {
		f.create(id)
	}
	cfg.Store, cfg.Clock = store, clock
	cfg.Log = slog.New(slog.NewTextHandler(f.logs, nil))
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(cfg, f.rec).Run(ctx) }()
	f.ctx = ctx
	var once sync.Once
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5 s of its context's end")
		}
	}
	f.stop = func() { once.Do(stop) }
	t.Cleanup(f.stop)
	return f
}

func (f *fixture) create(ids ...string) {
	f.t.Helper()
	err := f.store.Update(context.Background(), func(tx *raftstore.Tx) error {
		for _, id := range ids {
			if err := tx.Create(&api.Node{Id: id}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// waitTimer blocks until the driver waits on its timer.
func (f *fixture) waitTimer() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
	defer cancel()
	if err := f.clock.BlockUntilContext(ctx, 1); err != nil {
		f.t.Fatalf("the driver is not waiting on its timer: %v", err)
	}
}

func keys(p pass) string { return strings.Join(p.keys, ",") }

// The first pass reconciles every key of the snapshot, sorted; then each
// transaction's keys, in one pass once the transaction's commit is seen.
func TestSnapshotThenOnePassPerTransaction(t *testing.T) {
	f := start(t, nil, Config{}, "c", "a", "b")
	if p := f.rec.next(t); keys(p) != "a,b,c" {
		t.Fatalf("first pass %q, want the whole snapshot sorted", keys(p))
	}
	f.create("e", "d")
	if p := f.rec.next(t); keys(p) != "d,e" {
		t.Fatalf("pass %q, want the transaction's keys together", keys(p))
	}
	f.rec.none(t)
	if n := f.rec.snapshotCount(); n != 1 {
		t.Fatalf("%d snapshots, want 1", n)
	}
}

// Transactions committed while a pass runs are reconciled together by the
// next pass.
func TestEventsDuringAPassAreBatched(t *testing.T) {
	f := start(t, nil, Config{})
	held, release := f.rec.holdNext()
	f.create("a")
	<-held
	f.create("b")
	f.create("c")
	f.create("a2")
	release()
	if p := f.rec.next(t); keys(p) != "a" {
		t.Fatalf("first pass %q", keys(p))
	}
	if p := f.rec.next(t); keys(p) != "a2,b,c" {
		t.Fatalf("second pass %q, want the three transactions at once", keys(p))
	}
}

// A pass that takes the watch's events while it waits (Outcome.Events)
// keeps its watch: far more events than the buffer holds arrive during the
// pass, and the loop is not cut off. Each event reaches Event during the
// pass, and its key, though the pass itself reconciles it, is reconciled
// again by the next pass.
func TestEventsDuringAPassArePumped(t *testing.T) {
	f := start(t, nil, Config{WatchBuffer: 4}, "a")
	f.rec.next(t)
	f.rec.set(func(r *recorder) { r.pump = true })
	held, release := f.rec.holdNext()
	updateA(t, f)
	<-held
	handled := func(n int) {
		testutil.Eventually(t, 5*time.Second, time.Millisecond, func() bool {
			f.rec.mu.Lock()
			defer f.rec.mu.Unlock()
			return f.rec.midPass == n
		}, "%d events handled during the pass", n)
	}
	var want []string
	for i := 0; i < 20; i++ { // 40 events and commits: ten times the buffer
		id := fmt.Sprintf("x%02d", i)
		f.create(id)
		want = append(want, id)
		handled(i + 1)
	}
	updateA(t, f)
	handled(21)
	release()
	if p := f.rec.next(t); keys(p) != "a" {
		t.Fatalf("held pass %q", keys(p))
	}
	if p := f.rec.next(t); keys(p) != "a,"+strings.Join(want, ",") {
		t.Fatalf("pass after the held one %q, want a (updated during the pass) and every key created", keys(p))
	}
	f.rec.none(t)
	if n := f.rec.snapshotCount(); n != 1 {
		t.Fatalf("%d snapshots, want 1: the watch was cut off", n)
	}
	if n := f.logs.Count("resyncing"); n != 0 {
		t.Fatalf("resync logged %d times", n)
	}
}

// Events the pump read but the pass did not take are handled after it,
// once and in order.
func TestEventsAskedForButNotTakenAreKept(t *testing.T) {
	f := start(t, nil, Config{}, "a")
	f.rec.next(t)
	f.rec.set(func(r *recorder) { r.ask = true })
	held, release := f.rec.holdNext()
	updateA(t, f)
	<-held
	f.create("b", "c")
	f.create("d")
	time.Sleep(20 * time.Millisecond) // let the pump read them
	release()
	if p := f.rec.next(t); keys(p) != "a" {
		t.Fatalf("held pass %q", keys(p))
	}
	if p := f.rec.next(t); keys(p) != "b,c,d" {
		t.Fatalf("next pass %q, want the events the pump held", keys(p))
	}
	f.rec.none(t)
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	if f.rec.events != 4 || f.rec.midPass != 0 {
		t.Fatalf("%d events handled (%d during the pass), want 4, none during the pass", f.rec.events, f.rec.midPass)
	}
}

// Under a stream of events a pass is put off at most MaxDelay: here the
// clock passes MaxDelay while the first of several queued events is
// handled, so a pass runs before the rest of the queue.
func TestMaxDelayBoundsAStreamOfEvents(t *testing.T) {
	f := start(t, nil, Config{MaxDelay: time.Second})
	held, release := f.rec.holdNext()
	f.create("a")
	<-held
	first := true
	f.rec.set(func(r *recorder) {
		r.onEvent = func(raftstore.Event) {
			if first {
				first = false
				f.clock.Advance(time.Second)
			}
		}
	})
	f.create("b")
	f.create("c")
	f.create("d")
	release()
	if p := f.rec.next(t); keys(p) != "a" {
		t.Fatalf("first pass %q", keys(p))
	}
	if p := f.rec.next(t); keys(p) != "b" {
		t.Fatalf("second pass %q, want b alone (the delay ran out with c and d still queued)", keys(p))
	}
	if p := f.rec.next(t); keys(p) != "c,d" {
		t.Fatalf("third pass %q", keys(p))
	}
}

// A failing key is retried after MinRetry, then twice as long each time up
// to MaxRetry; it never holds up other keys; success resets its backoff.
func TestFailedKeysBackOffExponentially(t *testing.T) {
	f := start(t, nil, Config{MinRetry: 50 * time.Millisecond, MaxRetry: 400 * time.Millisecond})
	f.rec.set(func(r *recorder) { r.fail["a"] = errdefs.Unavailable("injected") })
	f.create("a")
	at := []time.Time{f.rec.next(t).at}
	for len(at) < 7 {
		f.waitTimer() // the driver is idle: any pass is recorded
		select {
		case p := <-f.rec.passes:
			if keys(p) != "a" {
				t.Fatalf("pass %q", keys(p))
			}
			at = append(at, p.at)
		default:
		}
		f.clock.Advance(10 * time.Millisecond)
	}
	var gaps []time.Duration
	for i := 1; i < len(at); i++ {
		gaps = append(gaps, at[i].Sub(at[i-1]))
	}
	want := []time.Duration{50, 100, 200, 400, 400, 400}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(gaps, want) {
		t.Fatalf("retry gaps %v, want %v", gaps, want)
	}
	// Another key is reconciled at once, without waiting for a's backoff.
	f.create("b")
	if p := f.rec.next(t); keys(p) != "b" {
		t.Fatalf("pass %q, want b at once", keys(p))
	}
	// Once a succeeds, its backoff starts over.
	f.rec.set(func(r *recorder) { delete(r.fail, "a") })
	f.waitTimer()
	f.clock.Advance(400 * time.Millisecond)
	if p := f.rec.next(t); keys(p) != "a" {
		t.Fatalf("pass %q, want a", keys(p))
	}
	f.rec.set(func(r *recorder) { r.fail["a"] = errdefs.Unavailable("injected") })
	updateA(t, f)
	failedAt := f.rec.next(t).at
	f.waitTimer()
	f.clock.Advance(50 * time.Millisecond)
	if p := f.rec.next(t); keys(p) != "a" || p.at.Sub(failedAt) != 50*time.Millisecond {
		t.Fatalf("pass %q after %v, want a after MinRetry again", keys(p), p.at.Sub(failedAt))
	}
}

func updateA(t *testing.T, f *fixture) {
	t.Helper()
	err := f.store.Update(context.Background(), func(tx *raftstore.Tx) error {
		n := tx.Node("a")
		return tx.Update(&api.Node{Id: n.Id, Meta: n.Meta, Spec: &api.NodeSpec{Annotations: &api.Annotations{Name: fmt.Sprint(n.Meta.GetVersion())}}})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A conflict is a race, not a fault: it is retried after MinRetry every
// time and is not logged.
func TestConflictsRetrySoonAndQuietly(t *testing.T) {
	f := start(t, nil, Config{MinRetry: 50 * time.Millisecond, MaxRetry: time.Second})
	f.rec.set(func(r *recorder) { r.fail["a"] = errdefs.Conflict("injected race") })
	f.create("a")
	prev := f.rec.next(t).at
	for i := 0; i < 5; i++ {
		f.waitTimer()
		f.clock.Advance(50 * time.Millisecond)
		p := f.rec.next(t)
		if gap := p.at.Sub(prev); gap != 50*time.Millisecond {
			t.Fatalf("retry %d after %v, want 50ms", i, gap)
		}
		prev = p.at
	}
	if n := f.logs.Count("reconcile failed"); n != 0 {
		t.Fatalf("a conflict was logged %d times", n)
	}
}

// A failure is logged when it is new for its key, once per message.
func TestFailuresAreLoggedOncePerNewError(t *testing.T) {
	f := start(t, nil, Config{MinRetry: 50 * time.Millisecond, MaxRetry: 50 * time.Millisecond})
	f.rec.set(func(r *recorder) {
		r.fail["a"] = errors.New("disk on fire")
		r.fail["b"] = errors.New("disk on fire")
	})
	f.create("a", "b")
	f.rec.next(t)
	for i := 0; i < 5; i++ {
		f.waitTimer()
		f.clock.Advance(50 * time.Millisecond)
		f.rec.next(t)
	}
	f.waitTimer() // the pass is booked (and logged)
	if n := f.logs.Count("disk on fire"); n != 1 {
		t.Fatalf("logged %d times, want once for both keys", n)
	}
	f.rec.set(func(r *recorder) { r.fail["a"] = errors.New("disk gone") })
	f.waitTimer()
	f.clock.Advance(50 * time.Millisecond)
	f.rec.next(t)
	f.waitTimer()
	if n := f.logs.Count("disk gone"); n != 1 {
		t.Fatalf("a new error was logged %d times, want 1", n)
	}
}

// A key reconciled with a WakeAt is reconciled again at that time; one
// reconciled without it loses its earlier wake-up.
func TestWakeUps(t *testing.T) {
	f := start(t, nil, Config{})
	f.rec.set(func(r *recorder) { r.wakeIn["a"] = 3 * time.Second })
	f.create("a")
	t0 := f.rec.next(t).at
	f.waitTimer()
	f.clock.Advance(2 * time.Second)
	f.waitTimer()
	f.rec.none(t)
	f.clock.Advance(time.Second)
	if p := f.rec.next(t); keys(p) != "a" || p.at.Sub(t0) != 3*time.Second {
		t.Fatalf("pass %q at +%v, want a at +3s", keys(p), p.at.Sub(t0))
	}
	// Reconciled again (by an event) without asking: the wake-up is gone.
	f.rec.set(func(r *recorder) { delete(r.wakeIn, "a") })
	updateA(t, f)
	f.rec.next(t)
	f.clock.Advance(time.Hour)
	f.create("z")
	if p := f.rec.next(t); keys(p) != "z" {
		t.Fatalf("pass %q, want only z (a's wake-up was dropped)", keys(p))
	}
}

// A watch cut off for falling behind is started again from a fresh
// snapshot: every key is reconciled, events after it are seen, and a
// failing key keeps its backoff.
func TestResyncAfterACutOffWatch(t *testing.T) {
	f := start(t, nil, Config{WatchBuffer: 4, MinRetry: time.Second, MaxRetry: time.Second}, "a")
	f.rec.next(t)
	held, release := f.rec.holdNext()
	f.create("b")
	<-held
	for i := 0; i < 5; i++ { // 10 events and commits: more than the buffer
		f.create(fmt.Sprintf("x%d", i))
	}
	release()
	if p := f.rec.next(t); keys(p) != "b" {
		t.Fatalf("pass %q", keys(p))
	}
	p := f.rec.next(t)
	if keys(p) != "a,b,x0,x1,x2,x3,x4" {
		t.Fatalf("pass after the cut-off %q, want every key from a fresh snapshot", keys(p))
	}
	if n := f.rec.snapshotCount(); n != 2 {
		t.Fatalf("%d snapshots, want 2", n)
	}
	if n := f.logs.Count("resyncing from a full snapshot"); n != 1 {
		t.Fatalf("resync logged %d times", n)
	}
	f.create("y")
	if p := f.rec.next(t); keys(p) != "y" {
		t.Fatalf("pass %q, want y: the new watch delivers events", keys(p))
	}
	// A store restored from a raft snapshot ends the watch too; a key in
	// backoff stays in backoff across the resync.
	f.rec.set(func(r *recorder) { r.fail["a"] = errdefs.Unavailable("injected") })
	updateA(t, f)
	failedAt := f.rec.next(t).at
	objs, version := f.store.Objects()
	if err := f.store.Restore(version+1, objs); err != nil {
		t.Fatal(err)
	}
	p = f.rec.next(t)
	if slices.Contains(p.keys, "a") || len(p.keys) != 7 {
		t.Fatalf("pass after a restore %q, want every key but a (backing off)", keys(p))
	}
	f.waitTimer()
	f.clock.Advance(time.Second)
	if p := f.rec.next(t); keys(p) != "a" || p.at.Sub(failedAt) != time.Second {
		t.Fatalf("pass %q after %v, want a after its 1s backoff", keys(p), p.at.Sub(failedAt))
	}
}

// noopProposer applies transactions like a standalone store and fails the
// no-ops of Store.Sync while failSync is set; it counts them.
type noopProposer struct {
	mu       sync.Mutex
	s        *raftstore.Store
	index    uint64
	syncs    int
	failSync bool
}

func (p *noopProposer) Propose(_ context.Context, cmd raftstore.Command, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	tx, ok, err := raftstore.TransactionOf(cmd, payload)
	if err != nil {
		return err
	}
	if !ok {
		p.syncs++
		if p.failSync {
			return errdefs.Unavailable("injected: no quorum")
		}
		p.index++
		p.s.MarkApplied(p.index)
		return nil
	}
	p.index++
	return p.s.Apply(p.index, append([]byte(nil), tx...))
}

func (p *noopProposer) syncCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.syncs
}

// After a failure without the store's verdict the next pass syncs first;
// while the sync fails, no key is reconciled; a verdict needs no sync.
func TestUnknownWritesAreSettledBeforeTheNextPass(t *testing.T) {
	store := raftstore.NewStore(nil)
	prop := &noopProposer{s: store}
	store.SetProposer(prop)
	f := start(t, store, Config{SettleUnknown: true, MinRetry: 50 * time.Millisecond, MaxRetry: 50 * time.Millisecond})
	f.rec.set(func(r *recorder) { r.fail["a"] = errdefs.Conflict("a verdict") })
	f.create("a")
	f.rec.next(t)
	f.waitTimer()
	f.clock.Advance(50 * time.Millisecond)
	f.rec.next(t)
	if n := prop.syncCount(); n != 0 {
		t.Fatalf("%d syncs after a verdict, want 0", n)
	}
	f.rec.set(func(r *recorder) { r.fail["a"] = errdefs.DeadlineExceeded("timed out") })
	f.waitTimer()
	f.clock.Advance(50 * time.Millisecond)
	f.rec.next(t) // fails without a verdict
	prop.mu.Lock()
	prop.failSync = true
	prop.mu.Unlock()
	f.rec.set(func(r *recorder) { delete(r.fail, "a") })
	for i := 1; i <= 3; i++ {
		f.waitTimer()
		f.clock.Advance(50 * time.Millisecond)
		f.waitTimer()
		f.rec.none(t) // put off: the sync fails
		if n := prop.syncCount(); n != i {
			t.Fatalf("%d syncs, want %d", n, i)
		}
	}
	if n := f.logs.Count("waiting for earlier writes to settle failed"); n != 3 {
		t.Fatalf("sync failure logged %d times, want 3", n)
	}
	prop.mu.Lock()
	prop.failSync = false
	prop.mu.Unlock()
	f.clock.Advance(50 * time.Millisecond)
	if p := f.rec.next(t); keys(p) != "a" {
		t.Fatalf("pass %q, want a once settled", keys(p))
	}
	if n := prop.syncCount(); n != 4 {
		t.Fatalf("%d syncs, want 4", n)
	}
	f.create("b")
	f.rec.next(t)
	if n := prop.syncCount(); n != 4 {
		t.Fatalf("settled: %d syncs, want no more", n)
	}
}

// Without SettleUnknown no sync is made.
func TestNoSettleWithoutTheOption(t *testing.T) {
	store := raftstore.NewStore(nil)
	prop := &noopProposer{s: store}
	store.SetProposer(prop)
	f := start(t, store, Config{MinRetry: 50 * time.Millisecond})
	f.rec.set(func(r *recorder) { r.fail["a"] = errdefs.DeadlineExceeded("timed out") })
	f.create("a")
	f.rec.next(t)
	f.waitTimer()
	f.clock.Advance(50 * time.Millisecond)
	f.rec.next(t)
	if n := prop.syncCount(); n != 0 {
		t.Fatalf("%d syncs", n)
	}
}

// Cancelling the context ends Run, also in the middle of a pass, whose
// context then ends too.
func TestCancelEndsRunMidPass(t *testing.T) {
	f := start(t, nil, Config{})
	held, _ := f.rec.holdNext()
	f.create("a")
	<-held
	f.stop()
	f.rec.next(t)
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	if !errors.Is(f.rec.ctxErr, context.Canceled) {
		t.Fatalf("the pass saw context error %v, want canceled", f.rec.ctxErr)
	}
}

// Config's zero values take the defaults; MaxRetry is never below MinRetry.
func TestConfigDefaults(t *testing.T) {
	d := New(Config{}, nil)
	if d.cfg.MinRetry != DefaultMinRetry || d.cfg.MaxRetry != DefaultMaxRetry || d.cfg.MaxDelay != DefaultMaxDelay || d.cfg.Clock == nil || d.cfg.Log == nil {
		t.Fatalf("defaults: %+v", d.cfg)
	}
	d = New(Config{MinRetry: 10 * time.Second}, nil)
	if d.cfg.MaxRetry != 10*time.Second {
		t.Fatalf("MaxRetry %v below MinRetry", d.cfg.MaxRetry)
	}
}

func TestOutcomeAccessors(t *testing.T) {
	var o Outcome
	if o.Err("a") != nil {
		t.Fatal("error on an empty outcome")
	}
	if _, ok := o.Wake("a"); ok {
		t.Fatal("wake on an empty outcome")
	}
	t0 := time.Unix(100, 0)
	o.WakeAt("a", t0.Add(time.Second))
	o.WakeAt("a", t0)
	o.WakeAt("a", t0.Add(time.Hour))
	o.Fail("a", errdefs.Unavailable("x"))
	if at, ok := o.Wake("a"); !ok || !at.Equal(t0) {
		t.Fatalf("wake %v %v, want the earliest", at, ok)
	}
	if !errdefs.IsUnavailable(o.Err("a")) {
		t.Fatal(o.Err("a"))
	}
}
