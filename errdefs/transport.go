package errdefs

import (
	"errors"
	"io"
	"strings"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A call can fail because the connection failed, not because the other side
// answered: a peer that stopped answering (SIGSTOP, a partition), or whose
// process died (kill -9: EOF, broken pipe, connection reset). gRPC reports
// these in its own words ("keepalive ping failed to receive ACK within
// timeout", "error reading from server: EOF"). Transport turns them into a
// sentence saying what happened, and whether the request may have arrived,
// which decides whether a write may have been applied.

// TransportFault is a connection failure.
type TransportFault struct {
	// What happened to the peer, e.g. "stopped answering (no reply to
	// keepalive pings: it may be stopped, overloaded or cut off)".
	What string
	// MayHaveArrived is false only when the request surely never left
	// (the connection could not be made).
	MayHaveArrived bool
}

const closedDuringCall = "closed the connection during the call (its process may have exited or restarted)"

var transportMarks = []struct {
	mark, what string
	arrived    bool
}{
	{"keepalive ping failed", "stopped answering (no reply to keepalive pings: it may be stopped, overloaded or cut off from this node)", true},
	{"broken pipe", closedDuringCall, true},
	{"connection reset", closedDuringCall, true},
	{"RST_STREAM", closedDuringCall, true},
	{"error reading from server", closedDuringCall, true},
	{"transport is closing", closedDuringCall, true},
	{"connection is draining", "closed the connection during the call (it is shutting down)", true},
	{"server preface", "closed the connection before answering (its process may have exited or restarted)", true},
}

// Transport reports whether err is a connection failure rather than an
// answer, and describes it.
func Transport(err error) (TransportFault, bool) {
	if err == nil {
		return TransportFault{}, false
	}
	msg := err.Error()
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable, codes.Internal, codes.Unknown:
		default:
			return TransportFault{}, false
		}
		msg = st.Message()
	} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return TransportFault{What: closedDuringCall, MayHaveArrived: true}, true
	}
	if strings.Contains(msg, "connection error") || strings.Contains(msg, "Error while dialing") {
		// The connection was never made: nothing was sent.
		switch {
		case strings.Contains(msg, "connection refused"):
			return TransportFault{What: "refused the connection (it is not running or not listening)"}, true
		case strings.Contains(msg, "no such file or directory"):
			return TransportFault{What: "is not there (its socket does not exist)"}, true
		}
		return TransportFault{What: "could not be reached"}, true
	}
	if msg == "EOF" || msg == "unexpected EOF" {
		return TransportFault{What: closedDuringCall, MayHaveArrived: true}, true
	}
	for _, m := range transportMarks {
		if strings.Contains(msg, m.mark) {
			return TransportFault{What: m.what, MayHaveArrived: m.arrived}, true
		}
	}
	return TransportFault{}, false
}

// ReadOnly reports whether a gRPC method (full name or bare) only reads.
func ReadOnly(method string) bool {
	name := method[strings.LastIndex(method, "/")+1:]
	for _, p := range []string{"Get", "List", "Info", "Inspect", "Watch", "Subscribe", "Version"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// Outcome says what a failed call did to the state: nothing, for reads and
// for requests that never left; for a write that may have arrived, that it
// may or may not have been applied.
func Outcome(method string, mayHaveArrived bool) string {
	switch {
	case ReadOnly(method):
		return "nothing was changed: retry"
	case !mayHaveArrived:
		return "the change was not applied: retry"
	}
	return "the change may or may not have been applied: check the current state (e.g. `shoal service ls`, `shoal service ps`) before retrying"
}
