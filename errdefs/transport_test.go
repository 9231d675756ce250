package errdefs

import (
	"fmt"
	"io"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestTransport(t *testing.T) {
	cases := []struct {
		err     error
		what    string
		arrived bool
	}{
		{status.Error(codes.Unavailable, "keepalive ping failed to receive ACK within timeout"), "stopped answering", true},
		{status.Error(codes.Unavailable, "error reading from server: EOF"), "closed the connection during the call", true},
		{status.Error(codes.Unavailable, "error reading from server: read unix @->/run/shoal/shoal.sock: read: connection reset by peer"), "closed the connection during the call", true},
		{status.Error(codes.Unavailable, "write unix @->/run/shoal/shoal.sock: write: broken pipe"), "closed the connection during the call", true},
		{status.Error(codes.Internal, "stream terminated by RST_STREAM with error code: INTERNAL_ERROR"), "closed the connection during the call", true},
		{status.Error(codes.Unavailable, "EOF"), "closed the connection during the call", true},
		{status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.1:4242: connect: connection refused"`), "refused the connection", false},
		{status.Error(codes.Unavailable, `connection error: desc = "error reading from server: EOF"`), "could not be reached", false},
		{io.EOF, "closed the connection during the call", true},
		{fmt.Errorf("write: %w", syscall.EPIPE), "closed the connection during the call", true},
	}
	for _, c := range cases {
		f, ok := Transport(c.err)
		if !ok || f.MayHaveArrived != c.arrived || len(f.What) < len(c.what) || f.What[:len(c.what)] != c.what {
			t.Errorf("%v: got %+v (%v), want %q arrived=%v", c.err, f, ok, c.what, c.arrived)
		}
	}
	for _, err := range []error{
		status.Error(codes.Unavailable, "the swarm does not have a leader. It may be electing one"),
		status.Error(codes.Internal, "raft.db: unexpected EOF reading entry 12"),
		status.Error(codes.NotFound, "EOF"),
		fmt.Errorf("plain"),
	} {
		if f, ok := Transport(err); ok {
			t.Errorf("%v: taken for a transport failure: %+v", err, f)
		}
	}
}

func TestOutcome(t *testing.T) {
	if got := Outcome("/shoal.v1.Control/ListServices", true); got != "nothing was changed: retry" {
		t.Errorf("read: %q", got)
	}
	if got := Outcome("/shoal.v1.Control/CreateService", false); got != "the change was not applied: retry" {
		t.Errorf("not sent: %q", got)
	}
	if got := Outcome("/shoal.v1.Control/RemoveService", true); got[:46] != "the change may or may not have been applied: c" {
		t.Errorf("write: %q", got)
	}
}
