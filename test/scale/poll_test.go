package scale

import (
	"testing"
	"time"
)

// A wait polls by the time its progress says is left: rarely while much is
// left, often near the end, and at the fixed pace when it cannot tell.
func TestPollNext(t *testing.T) {
	every := 5 * time.Second
	for _, c := range []struct {
		name    string
		elapsed time.Duration
		p0, p1  float64
		want    time.Duration
	}{
		{"no progress known", time.Second, -1, 0.5, every},
		{"no progress made", time.Second, 0.5, 0.5, every},
		{"much left: at most twice the pace", 5 * time.Second, 0.10, 0.11, 2 * every},
		{"half left at 10 %/5 s: a quarter of 25 s", 5 * time.Second, 0.40, 0.50, 25 * time.Second / 4},
		{"nearly done: a fifth of the pace", 5 * time.Second, 0.90, 0.99, every / 5},
	} {
		if got := pollNext(every, c.elapsed, c.p0, c.p1); got != c.want {
			t.Errorf("%s: pollNext = %v, want %v", c.name, got, c.want)
		}
	}
}
