package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/raftstore"
)

// Handler is one control loop's logic. The Driver calls it from one
// goroutine, one method at a time.
type Handler interface {
	// Snapshot resets whatever state the handler derives from events and
	// marks the keys to reconcile, from a full snapshot of the store. It
	// runs at start and after every cut-off watch, under the store's lock:
	// it must be quick and must not write.
	Snapshot(tx raftstore.ReadTx, mark func(key string))
	// Event marks the keys one store event touches. Commit events are not
	// passed on.
	Event(ev raftstore.Event, mark func(key string))
	// Reconcile brings keys (sorted, none waiting out a backoff) in line.
	// A key it does not report on through out is done.
	Reconcile(ctx context.Context, keys []string, out *Outcome)
}

// Outcome collects what one pass reports per key; reports on keys that
// were not in the pass are ignored.
type Outcome struct {
	failed map[string]error
	wake   map[string]time.Time
	pump   *pump // the watch's events during a driver's pass; nil otherwise
}

// Events hands the pass the watch's events that arrive while it runs: each
// value is a function that feeds a few of them to the handler's Event. A
// pass that waits (for its writes) should receive and run them on its own
// goroutine, where Event then runs between its steps: a pass that waits
// minutes (a service scaled by 1,000,000) otherwise lets its watch fall
// behind until it is cut off and the loop resyncs from a full snapshot.
// A key an event marks stays dirty for the next pass, even when this pass
// reconciles it. Events not taken by the pass's end are handled after it.
// Outside a driver's pass the channel is nil (never ready).
func (o *Outcome) Events() <-chan func() {
	if o.pump == nil {
		return nil
	}
	return o.pump.start()
}

// Fail reports that key could not be reconciled: it stays dirty and is
// retried after its backoff.
func (o *Outcome) Fail(key string, err error) {
	if o.failed == nil {
		o.failed = map[string]error{}
	}
	o.failed[key] = err
}

// WakeAt asks for key to be reconciled again at t (the earliest of several
// requests wins). A key reconciled without a WakeAt loses any earlier one.
func (o *Outcome) WakeAt(key string, t time.Time) {
	if o.wake == nil {
		o.wake = map[string]time.Time{}
	}
	if at, ok := o.wake[key]; !ok || t.Before(at) {
		o.wake[key] = t
	}
}

// Err is the failure reported for key, nil if none (for handlers' tests).
func (o *Outcome) Err(key string) error { return o.failed[key] }

// Wake is the wake-up asked for key, if any (for handlers' tests).
func (o *Outcome) Wake(key string) (time.Time, bool) {
	at, ok := o.wake[key]
	return at, ok
}

// Defaults of Config.
const (
	DefaultMinRetry = 50 * time.Millisecond
	DefaultMaxRetry = 5 * time.Second
	DefaultMaxDelay = time.Second
	// settleTimeout bounds the Store.Sync that settles unknown writes.
	settleTimeout = 10 * time.Second
	// DefaultWatchBuffer is how far a loop's watch may fall behind before
	// it is cut off and the loop resyncs from a full snapshot. A pass over
	// 100,000 tasks lasts long enough for the other loops and the agents
	// to write far more than raftstore.DefaultWatchBuffer (4,096) events,
	// and a resync reads every task again, during which the next cut-off
	// builds up: creating 1,000 services x 100 tasks cut the scheduler's
	// watch off 21 times and the allocator's 14 in 2.4 minutes. The queue
	// grows only while the loop is behind (about 64 bytes an event: 16 MiB
	// when full).
	DefaultWatchBuffer = 1 << 18
)

// Config configures a Driver. Zero values take the defaults.
type Config struct {
	// Name tells the loop's log lines apart (e.g. "orchestrator").
	Name  string
	Store *raftstore.Store
	// Kinds are the object kinds watched; empty means all.
	Kinds []string
	Clock clockwork.Clock
	Log   *slog.Logger
	// MinRetry and MaxRetry bound a failed key's backoff: it waits MinRetry
	// after its first failure (and after any conflict), twice as long after
	// each further one, at most MaxRetry.
	MinRetry, MaxRetry time.Duration
	// MaxDelay bounds how long a stream of events may put a pass off.
	MaxDelay time.Duration
	// SettleUnknown: after a failure that is not the store's verdict
	// (raftstore.IsVerdict), the write may still commit, so the next pass
	// first waits for Store.Sync; until it succeeds every key is put off.
	SettleUnknown bool
	// WatchBuffer is the watch's buffer (DefaultWatchBuffer when zero); a
	// consumer that falls further behind is cut off and resyncs.
	WatchBuffer int
	// Filter, when set, drops the events it returns false for before they
	// are queued (raftstore.WatchOptions.Filter: it runs on the store's
	// apply path and must be quick). Events a loop ignores then take no
	// room in its buffer.
	Filter func(raftstore.Event) bool
	// Calls, when set, carries functions the driver runs on its own
	// goroutine between events and passes, in the order received: how
	// another goroutine reads or changes the handler's state without a
	// lock (a handler may also serve them during its passes). A call must
	// be quick and must not wait for the store's writes.
	Calls <-chan func()
}

// Driver runs one Handler against the store.
type Driver struct {
	cfg Config
	h   Handler

	// Owned by Run's goroutine.
	dirty     map[string]bool
	notBefore map[string]time.Time
	backoff   map[string]time.Duration
	wake      map[string]time.Time
	lastErr   map[string]string
	unsettled bool
	timer     clockwork.Timer
	armed     bool
	armedAt   time.Time
	// boundary: the last event handled closed a transaction; since: when
	// the first event since the last pass was handled (zero: none).
	boundary bool
	since    time.Time
}

// New returns a driver for h. cfg.Store is required.
func New(cfg Config, h Handler) *Driver {
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.MinRetry <= 0 {
		cfg.MinRetry = DefaultMinRetry
	}
	if cfg.MaxRetry < cfg.MinRetry {
		cfg.MaxRetry = max(DefaultMaxRetry, cfg.MinRetry)
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = DefaultMaxDelay
	}
	if cfg.WatchBuffer <= 0 {
		cfg.WatchBuffer = DefaultWatchBuffer
	}
	return &Driver{cfg: cfg, h: h,
		dirty: map[string]bool{}, notBefore: map[string]time.Time{}, backoff: map[string]time.Duration{},
		wake: map[string]time.Time{}, lastErr: map[string]string{}}
}

// Run drives the handler until ctx ends, then returns nil. A watch that is
// cut off is started again from a fresh snapshot; the keys' backoffs and
// wake-ups carry over.
func (d *Driver) Run(ctx context.Context) error {
	defer func() {
		if d.timer != nil {
			d.timer.Stop()
		}
	}()
	for {
		err := d.run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		d.cfg.Log.Warn("watch ended; resyncing from a full snapshot", "loop", d.cfg.Name, "err", err)
	}
}

func (d *Driver) mark(key string) { d.dirty[key] = true }

// run is one watch: from its snapshot until it is cut off (its error) or
// ctx ends (nil).
func (d *Driver) run(ctx context.Context) error {
	w := d.cfg.Store.ViewAndWatch(raftstore.WatchOptions{Kinds: d.cfg.Kinds, Commits: true, Buffer: d.cfg.WatchBuffer, Filter: d.cfg.Filter},
		func(tx raftstore.ReadTx) { d.h.Snapshot(tx, d.mark) })
	defer w.Close()
	d.boundary, d.since = true, time.Time{}
	for {
		now := d.cfg.Clock.Now()
		drained := len(w.C) == 0 && d.boundary
		late := !d.since.IsZero() && now.Sub(d.since) >= d.cfg.MaxDelay
		// A watch that was cut off resyncs before any pass: its
		// snapshot marks everything anyway.
		if (drained || late) && w.Err() == nil {
			d.since = time.Time{}
			if ready := d.ready(now); len(ready) > 0 {
				d.pass(ctx, ready, w)
				if ctx.Err() != nil {
					return nil
				}
				if !d.since.IsZero() {
					continue // the pass took events: their keys may be due now
				}
				now = d.cfg.Clock.Now()
			}
		}
		d.arm(now)
		var timerC <-chan time.Time
		if d.timer != nil {
			timerC = d.timer.Chan()
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.C:
			if !ok {
				return w.Err()
			}
			d.handle(ev, now)
		case f := <-d.cfg.Calls:
			f()
		case <-timerC:
			d.armed = false
			now := d.cfg.Clock.Now()
			for key, at := range d.wake {
				if !now.Before(at) {
					d.dirty[key] = true
					delete(d.wake, key)
				}
			}
		}
	}
}

// handle takes one event off the watch at now.
func (d *Driver) handle(ev raftstore.Event, now time.Time) {
	if d.since.IsZero() {
		d.since = now
	}
	if d.boundary = ev.Action == raftstore.ActionCommit; !d.boundary {
		d.h.Event(ev, d.mark)
	}
}

// ready lists, sorted, the dirty keys whose backoff has run out.
func (d *Driver) ready(now time.Time) []string {
	var keys []string
	for key := range d.dirty {
		if !now.Before(d.notBefore[key]) {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	return keys
}

// errUnsettled puts a pass off until earlier writes settle.
var errUnsettled = errors.New("waiting for an earlier write whose outcome is unknown")

// pass reconciles keys and books the outcome. The keys are clean from its
// start: an event the pass takes from w (Outcome.Events) marks its key
// again, for the next pass.
func (d *Driver) pass(ctx context.Context, keys []string, w *raftstore.Watcher) {
	for _, key := range keys {
		delete(d.dirty, key)
	}
	out := Outcome{pump: &pump{d: d, w: w}}
	defer out.pump.stop()
	if d.unsettled && !d.settle(ctx) {
		for _, key := range keys {
			out.Fail(key, errUnsettled)
		}
	} else {
		d.unsettled = false
		d.h.Reconcile(ctx, keys, &out)
		for _, key := range keys {
			if at, ok := out.wake[key]; ok {
				d.wake[key] = at
			} else {
				delete(d.wake, key)
			}
		}
	}
	now := d.cfg.Clock.Now()
	fresh := map[string][]string{} // new error message -> keys
	for _, key := range keys {
		err, bad := out.failed[key]
		if !bad {
			delete(d.notBefore, key)
			delete(d.backoff, key)
			delete(d.lastErr, key)
			continue
		}
		d.dirty[key] = true
		b := d.cfg.MinRetry
		if !errdefs.IsConflict(err) { // a conflict is a race: retry soon
			b = min(max(2*d.backoff[key], d.cfg.MinRetry), d.cfg.MaxRetry)
		}
		d.backoff[key], d.notBefore[key] = b, now.Add(b)
		if d.cfg.SettleUnknown && err != errUnsettled && !raftstore.IsVerdict(err) {
			d.unsettled = true
		}
		if quiet(err) || d.lastErr[key] == err.Error() {
			continue
		}
		d.lastErr[key] = err.Error()
		fresh[err.Error()] = append(fresh[err.Error()], key)
	}
	msgs := make([]string, 0, len(fresh))
	for msg := range fresh {
		msgs = append(msgs, msg)
	}
	sort.Strings(msgs)
	for _, msg := range msgs {
		d.cfg.Log.Warn("reconcile failed; retrying with backoff", "loop", d.cfg.Name,
			"key", fresh[msg][0], "keys", len(fresh[msg]), "err", msg)
	}
}

// quiet errors are expected and not logged: conflicts (a race, retried at
// once), a cancelled context (leadership ending), a pass put off.
func quiet(err error) bool {
	return errdefs.IsConflict(err) || errors.Is(err, context.Canceled) || err == errUnsettled
}

// settle waits until every earlier write through the store was applied or
// dropped for good, and reports whether it could.
func (d *Driver) settle(ctx context.Context) bool {
	sctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	if err := d.cfg.Store.Sync(sctx); err != nil {
		if ctx.Err() == nil {
			d.cfg.Log.Warn("waiting for earlier writes to settle failed; retrying", "loop", d.cfg.Name, "err", err)
		}
		return false
	}
	return true
}

// arm points the driver's one timer at the next wake-up or retry, making
// it on first need and stopping it when nothing is due.
func (d *Driver) arm(now time.Time) {
	var next time.Time
	// Only keys backing off have a notBefore: arm runs after every event,
	// and a loop can have 100,000 keys dirty.
	for key, at := range d.notBefore {
		if d.dirty[key] && now.Before(at) && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	for _, at := range d.wake {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	switch {
	case next.IsZero():
		if d.armed {
			d.timer.Stop()
			d.armed = false
		}
		return
	case d.armed && next.Equal(d.armedAt):
		return
	}
	dur := max(next.Sub(now), time.Millisecond)
	if d.timer == nil {
		d.timer = d.cfg.Clock.NewTimer(dur)
	} else {
		d.timer.Reset(dur)
	}
	d.armed, d.armedAt = true, next
}
