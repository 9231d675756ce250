package command

import (
	"errors"
	"fmt"
	"io"

	"github.com/shoal-project/shoal/errdefs"
)

// ioEOF is io.EOF, named here so the stream wrapper reads clearly.
var ioEOF = io.EOF

// UsageExitCode is the exit status of a command line the flag parser refused
// (unknown flag, bad flag value such as --replicas -1), as docker 28.2.2
// exits. A wrong number of arguments, an unknown command and every error
// after parsing (the daemon's included) exit 1, as in docker.
const UsageExitCode = 125

// StatusError ends the CLI with Code after printing Status (when not empty)
// on stderr.
type StatusError struct {
	Status string
	Code   int
}

func (e StatusError) Error() string {
	return fmt.Sprintf("%s (exit status %d)", e.Status, e.Code)
}

// ConnectError says the daemon's socket could not be reached.
type ConnectError struct{ Host string }

func (e *ConnectError) Error() string {
	return fmt.Sprintf("Cannot connect to the shoal daemon at %s. Is the shoal daemon running?", e.Host)
}

// TransportError is a call that lost its connection to the daemon (the
// daemon was killed, restarted or stopped answering): it says what
// happened and whether the change may have been applied.
type TransportError struct {
	Host   string
	Fault  errdefs.TransportFault
	Method string
	Err    error // the raw error, for errors.Is
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("the shoal daemon at %s %s: %s", e.Host, e.Fault.What, errdefs.Outcome(e.Method, e.Fault.MayHaveArrived))
}

// Unwrap gives the classed error (errdefs.ErrUnavailable and the like).
func (e *TransportError) Unwrap() error { return e.Err }

// DaemonError is an error the daemon answered with. It prints like Docker's
// "Error response from daemon: <message>" and matches the errdefs class of
// the server's gRPC code through errors.Is.
type DaemonError struct{ Err error }

func (e *DaemonError) Error() string { return "Error response from daemon: " + e.Err.Error() }

// Unwrap gives the classed error (errdefs.FromGRPC).
func (e *DaemonError) Unwrap() error { return e.Err }

// Message returns the server's message without the prefix.
func (e *DaemonError) Message() string { return e.Err.Error() }

// IsConnectError reports whether err says the daemon could not be reached.
func IsConnectError(err error) bool {
	var ce *ConnectError
	return errors.As(err, &ce)
}
