package scale

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// parallel calls fn for 0..n-1 through 8 workers sharing one Control
// client, each call bounded by 10 s and retried on conflict and
// unavailability until the phase limit; it fails the test with the first
// other error (from this goroutine: only it may).
func (s *scenario) parallel(what string, n int, fn func(ctx context.Context, cl api.ControlClient, i int) error) {
	s.t.Helper()
	cl := s.c.Control()
	deadline := time.Now().Add(s.limit)
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := 0; w < min(8, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				errs <- retrying(deadline, func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					return fn(ctx, cl, i)
				})
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			s.t.Fatalf("%s: %v", what, err)
		}
	}
}

// retrying runs call until it succeeds, fails otherwise than by a
// conflict or unavailability, or deadline passes.
func retrying(deadline time.Time, call func() error) error {
	for {
		err := errdefs.FromGRPC(call())
		if err == nil || !(errdefs.IsConflict(err) || errdefs.IsUnavailable(err) || errors.Is(err, errdefs.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still failing at the phase limit: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
