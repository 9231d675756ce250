package lab

import (
	"fmt"
	"testing"
	"time"
)

// WaitFor polls cond until it returns nil and fails t (from the test's goroutine) with cond's last error if
// that has not happened within timeout. cond must itself be bounded in time.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatal(err)
	}
}

// Poll calls cond, first every 10ms, backing off to every 250ms, until it returns nil, and returns an error
// wrapping cond's last error if timeout passes first. cond is always called at least once.
func Poll(timeout time.Duration, cond func() error) error {
	start := time.Now()
	deadline := start.Add(timeout)
	interval := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("not done after %v: %w", time.Since(start).Round(time.Millisecond), err)
		}
		time.Sleep(min(interval, left))
		interval = min(interval*3/2, 250*time.Millisecond)
	}
}
