package worker

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/jonboulle/clockwork"
)

// backoff is a jittered exponential delay: attempt n waits a random time in
// [d/2, d] with d = min·2ⁿ capped at max. The jitter spreads the reconnects
// of many agents after a manager fails. Not safe for concurrent use.
type backoff struct {
	min, max time.Duration
	n        int
	rng      *rand.Rand
}

func newBackoff(lo, hi time.Duration, seed uint64) *backoff {
	return &backoff{min: lo, max: hi, rng: rand.New(rand.NewPCG(seed, 1))}
}

func (b *backoff) next() time.Duration {
	d := b.max
	if b.n < 32 && b.min<<b.n < b.max && b.min<<b.n > 0 {
		d = b.min << b.n
	}
	b.n++
	half := d / 2
	return half + time.Duration(b.rng.Int64N(int64(d-half)+1))
}

func (b *backoff) reset() { b.n = 0 }

// sleep waits d on clock; it reports false if ctx ended first.
func sleep(ctx context.Context, clock clockwork.Clock, d time.Duration) bool {
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
		return true
	case <-ctx.Done():
		return false
	}
}
