package manager

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/testutil"
)

// A control loop that panics is logged and restarted; the manager goes on.
func TestSupervisedLoopRestartsAfterPanic(t *testing.T) {
	clock := clockwork.NewFakeClock()
	m := &Manager{cfg: Config{Clock: clock}, log: quietLogger()}
	var runs atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.supervise(ctx, func(ctx context.Context) error {
			if runs.Add(1) == 1 {
				var nilMap map[string]int
				nilMap["x"]++ // a bug
			}
			<-ctx.Done()
			return nil
		})
	}()
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(loopRestartDelay)
	testutil.Eventually(t, 5*time.Second, time.Millisecond, func() bool { return runs.Load() >= 2 },
		"the loop to be restarted after its panic")
	cancel()
	<-done
}

// A call whose handler panics gets an internal error; the server goes on.
func TestPanickingHandlerBecomesAnError(t *testing.T) {
	c := newTestCluster(t, 1, 0)
	m := c.members[0].m
	info := &grpc.UnaryServerInfo{FullMethod: "/shoal.v1.Control/GetService"}
	_, err := m.UnaryInterceptor()(context.Background(), nil, info, func(context.Context, any) (any, error) {
		panic("boom")
	})
	if !errdefs.IsInternal(err) {
		t.Fatalf("got %v, want an internal error", err)
	}
	sinfo := &grpc.StreamServerInfo{FullMethod: "/shoal.v1.Watch/Watch"}
	err = m.StreamInterceptor()(nil, fakeStream{}, sinfo, func(any, grpc.ServerStream) error { panic("boom") })
	if !errdefs.IsInternal(err) {
		t.Fatalf("stream: got %v, want an internal error", err)
	}
}

type fakeStream struct{ grpc.ServerStream }

func (fakeStream) Context() context.Context { return context.Background() }
