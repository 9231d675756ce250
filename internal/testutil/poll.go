package testutil

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
)

// Eventually polls cond every interval until it holds, and fails t after
// timeout with "timed out after TIMEOUT waiting for MSG". cond is called at
// once, so a condition already true costs no wait.
func Eventually(t TB, timeout, interval time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if err := poll(timeout, interval, cond); err != nil {
		t.Fatalf("timed out after %s waiting for %s", timeout, fmt.Sprintf(format, args...))
	}
}

// EventuallyErr is Eventually with a condition that says why it does not
// hold yet: the last error is in the failure message.
func EventuallyErr(t TB, timeout, interval time.Duration, cond func() error, format string, args ...any) {
	t.Helper()
	var last error
	if err := poll(timeout, interval, func() bool { last = cond(); return last == nil }); err != nil {
		t.Fatalf("timed out after %s waiting for %s: %v", timeout, fmt.Sprintf(format, args...), last)
	}
}

var errTimeout = errors.New("timeout")

// poll returns nil once cond holds, or an error once timeout has passed
// without it holding.
func poll(timeout, interval time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if cond() {
			return nil
		}
		if !time.Now().Before(deadline) {
			return errTimeout
		}
		<-tick.C
	}
}

// Consistently checks cond every interval for d and fails t the first time
// it does not hold ("MSG stopped holding after ELAPSED"): it is the "still
// true for N seconds" assertion, a bounded wait that can fail, where a bare
// sleep followed by one check would see only the last instant.
func Consistently(t TB, d, interval time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	start := time.Now()
	end := start.Add(d)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if !cond() {
			t.Fatalf("%s stopped holding after %s (of %s)", fmt.Sprintf(format, args...), time.Since(start).Round(time.Millisecond), d)
			return
		}
		if !time.Now().Before(end) {
			return
		}
		<-tick.C
	}
}

// ConsistentlyErr is Consistently with a condition that says why it stopped
// holding.
func ConsistentlyErr(t TB, d, interval time.Duration, cond func() error, format string, args ...any) {
	t.Helper()
	var last error
	Consistently(&wrapErr{TB: t, last: &last}, d, interval, func() bool { last = cond(); return last == nil }, format, args...)
}

type wrapErr struct {
	TB
	last *error
}

func (w *wrapErr) Fatalf(format string, args ...any) {
	w.TB.Helper()
	w.TB.Fatalf(format+": %v", append(args, *w.last)...)
}

// EventuallyClock waits for cond on a fake clock: while cond does not hold,
// it advances clk by step, then gives the code under test up to settle of
// real time to react (polling cond every millisecond), and fails t once
// maxAdvance of fake time has passed without cond holding. The fake clock
// moves only here, by fixed steps, so a test sees schedules (heartbeats,
// backoff, timeouts) fire in their order however slow the machine is; the
// real time bound is settle per step.
func EventuallyClock(t TB, clk *clockwork.FakeClock, step, maxAdvance, settle time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	var advanced time.Duration
	for {
		if cond() {
			return
		}
		if advanced >= maxAdvance {
			t.Fatalf("%s did not happen within %s of fake time", fmt.Sprintf(format, args...), maxAdvance)
			return
		}
		clk.Advance(step)
		advanced += step
		if poll(settle, time.Millisecond, cond) == nil {
			return
		}
	}
}

// SortedLines is the non-empty lines of s, trimmed and sorted: command
// output compared as a set of lines.
func SortedLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}
