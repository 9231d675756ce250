package storetest

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// Agent is ctx carrying the verified identity of worker node id, as the
// authorizer leaves it for an agent's call.
func Agent(ctx context.Context, id string) context.Context {
	return pki.ContextWithIdentity(ctx, pki.Identity{NodeID: id, Role: api.NodeRole_WORKER, ClusterID: "c"})
}

// SendStream records what a server stream sends on Sent; a Send waits
// while Sent is full.
type SendStream[T any] struct {
	grpc.ServerStream
	Ctx  context.Context
	Sent chan *T
}

// NewSendStream returns a stream on ctx that buffers up to n messages.
func NewSendStream[T any](ctx context.Context, n int) *SendStream[T] {
	return &SendStream[T]{Ctx: ctx, Sent: make(chan *T, n)}
}

func (s *SendStream[T]) Context() context.Context { return s.Ctx }

func (s *SendStream[T]) Send(m *T) error {
	select {
	case s.Sent <- m:
		return nil
	case <-s.Ctx.Done():
		return s.Ctx.Err()
	}
}

// Next is the next message sent; the test fails after 5 s without one.
func (s *SendStream[T]) Next(t *testing.T) *T {
	t.Helper()
	select {
	case m := <-s.Sent:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("nothing sent within 5 s")
		return nil
	}
}
