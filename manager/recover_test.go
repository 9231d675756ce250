package manager

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/errdefs"
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
	deadline := time.Now().Add(5 * time.Second)
	for runs.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the loop was not restarted after its panic")
		}
		time.Sleep(time.Millisecond)
	}
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
