package errdefs

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestClassSurvivesGRPC(t *testing.T) {
	cases := []struct {
		err  error
		code codes.Code
		is   error
	}{
		{NotFound("service %q not found", "web"), codes.NotFound, ErrNotFound},
		{InvalidArgument("replicas must be >= 0"), codes.InvalidArgument, ErrInvalidArgument},
		{ErrNoLeader, codes.Unavailable, ErrUnavailable},
		{fmt.Errorf("proposal: %w", ErrNoLeader), codes.Unavailable, ErrUnavailable},
		{Conflict("node %s changed", "x"), codes.Aborted, ErrConflict},
		{context.DeadlineExceeded, codes.DeadlineExceeded, nil},
		{errors.New("plain"), codes.Unknown, nil},
	}
	for _, c := range cases {
		g := ToGRPC(c.err)
		if status.Code(g) != c.code {
			t.Errorf("%v: code %v, want %v", c.err, status.Code(g), c.code)
		}
		back := FromGRPC(g)
		if back.Error() != c.err.Error() {
			t.Errorf("message changed over the wire: %q -> %q", c.err, back)
		}
		if c.is != nil && !errors.Is(back, c.is) {
			t.Errorf("%v: class %v lost over the wire", c.err, c.is)
		}
		if ToGRPC(back) != back {
			t.Errorf("%v: a forwarded status was re-wrapped", c.err)
		}
	}
}

func TestMessagesCarryNoClassSuffix(t *testing.T) {
	err := NotFound("service %q not found", "web")
	if err.Error() != `service "web" not found` {
		t.Fatalf("got %q", err)
	}
	cause := errors.New("disk full")
	err = Newf(ErrUnavailable, "write: %w", cause)
	if !errors.Is(err, cause) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("cause or class lost: %v", err)
	}
}
