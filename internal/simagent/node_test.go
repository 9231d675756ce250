package simagent

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Causes that differ only in addresses (a node's own ephemeral port) are
// one cause.
func TestCauseOfHidesAddresses(t *testing.T) {
	a := causeOf("report", status.Error(codes.Unavailable, "error reading from server: read tcp 127.0.0.1:54806->127.0.0.1:39041: read: connection reset by peer"))
	b := causeOf("report", status.Error(codes.Unavailable, "error reading from server: read tcp 127.0.0.1:55732->127.0.0.1:39041: read: connection reset by peer"))
	c := causeOf("report", status.Error(codes.Unavailable, "dial tcp [::1]:4242: connect: connection refused"))
	if a != b {
		t.Fatalf("%q != %q", a, b)
	}
	if want := "report: Unavailable: error reading from server: read tcp ADDR->ADDR: read: connection reset by peer"; a != want {
		t.Fatalf("got %q, want %q", a, want)
	}
	if want := "report: Unavailable: dial tcp ADDR: connect: connection refused"; c != want {
		t.Fatalf("got %q, want %q", c, want)
	}
}
