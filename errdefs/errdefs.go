// Package errdefs is shoal's one error vocabulary.
//
// Code anywhere in shoal wraps one of the class errors below with %w and the
// identifiers that make the message useful:
//
//	fmt.Errorf("service %q: %w", name, errdefs.ErrNotFound)
//
// and tests for a class with errors.Is or the Is* helpers. Errors become gRPC
// statuses in exactly one place, the server interceptors (ToGRPC), and come
// back into this vocabulary on the client side (FromGRPC), so a class survives
// a network hop. The package imports nothing from shoal and holds no state.
package errdefs

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error classes. Each maps to one gRPC code.
var (
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrConflict is an optimistic-concurrency failure: the object changed
	// since it was read. Retrying with a fresh read may succeed.
	ErrConflict         = errors.New("update out of sequence")
	ErrPermissionDenied = errors.New("permission denied")
	ErrUnauthenticated  = errors.New("unauthenticated")
	// ErrUnavailable: the cluster cannot serve the call right now (no leader,
	// lost quorum, shutting down). Retrying later may succeed.
	ErrUnavailable       = errors.New("unavailable")
	ErrDeadlineExceeded  = errors.New("timed out")
	ErrCanceled          = errors.New("canceled")
	ErrResourceExhausted = errors.New("resource exhausted")
	ErrNotImplemented    = errors.New("not implemented")
	ErrInternal          = errors.New("internal error")
)

// Specific errors, each in one class.
var (
	// ErrNoLeader: the cluster has no leader at the moment.
	ErrNoLeader = New(ErrUnavailable, "the swarm does not have a leader. It may be electing one; if this persists, check that a majority of managers is running and reachable")
	// ErrNotManager: the local node cannot serve the control API.
	ErrNotManager = New(ErrFailedPrecondition, "This node is not a swarm manager. Use \"shoal swarm init\" or \"shoal swarm join\" to connect this node to swarm and try again.")
	// ErrStopped: the component is shutting down.
	ErrStopped = New(ErrUnavailable, "shutting down")
)

// classed is an error whose text is its own message and whose class is
// matched by errors.Is, so messages do not end in the class's name.
type classed struct {
	msg   string
	class error
	cause error
}

func (e *classed) Error() string { return e.msg }

func (e *classed) Is(target error) bool { return target == e.class }

func (e *classed) Unwrap() error { return e.cause }

// New returns an error of the given class that prints msg.
func New(class error, msg string) error { return &classed{msg: msg, class: class} }

// Newf is New with formatting. A %w verb in format keeps that cause
// reachable through errors.Is/As as well.
func Newf(class error, format string, a ...any) error {
	w := fmt.Errorf(format, a...)
	return &classed{msg: w.Error(), class: class, cause: errors.Unwrap(w)}
}

var table = []struct {
	err  error
	code codes.Code
}{
	{ErrInvalidArgument, codes.InvalidArgument},
	{ErrNotFound, codes.NotFound},
	{ErrAlreadyExists, codes.AlreadyExists},
	{ErrFailedPrecondition, codes.FailedPrecondition},
	{ErrConflict, codes.Aborted},
	{ErrPermissionDenied, codes.PermissionDenied},
	{ErrUnauthenticated, codes.Unauthenticated},
	{ErrUnavailable, codes.Unavailable},
	{ErrDeadlineExceeded, codes.DeadlineExceeded},
	{ErrCanceled, codes.Canceled},
	{ErrResourceExhausted, codes.ResourceExhausted},
	{ErrNotImplemented, codes.Unimplemented},
	{ErrInternal, codes.Internal},
}

// Code returns the gRPC code of err's class, Unknown when it has none.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	for _, e := range table {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	return codes.Unknown
}

// ToGRPC turns err into a gRPC status error carrying its class's code and
// its message.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	var st interface{ GRPCStatus() *status.Status }
	if errors.As(err, &st) && st.GRPCStatus().Code() == Code(err) && st.GRPCStatus().Message() == err.Error() {
		return err // already a status, e.g. a forwarded call's answer
	}
	return status.Error(Code(err), err.Error())
}

// grpcError is a status error that also matches its class with errors.Is.
type grpcError struct {
	msg   string
	class error
	st    *status.Status
}

func (e *grpcError) Error() string              { return e.msg }
func (e *grpcError) Unwrap() error              { return e.class }
func (e *grpcError) GRPCStatus() *status.Status { return e.st }

// FromGRPC turns a gRPC status error back into the vocabulary: the result
// prints the server's message and matches the class with errors.Is.
func FromGRPC(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, e := range table {
		if e.code == st.Code() {
			return &grpcError{msg: st.Message(), class: e.err, st: st}
		}
	}
	return &grpcError{msg: st.Message(), st: st}
}

// Helpers for the common checks.
func IsNotFound(err error) bool           { return errors.Is(err, ErrNotFound) }
func IsAlreadyExists(err error) bool      { return errors.Is(err, ErrAlreadyExists) }
func IsInvalidArgument(err error) bool    { return errors.Is(err, ErrInvalidArgument) }
func IsConflict(err error) bool           { return errors.Is(err, ErrConflict) }
func IsUnavailable(err error) bool        { return errors.Is(err, ErrUnavailable) }
func IsFailedPrecondition(err error) bool { return errors.Is(err, ErrFailedPrecondition) }
func IsPermissionDenied(err error) bool   { return errors.Is(err, ErrPermissionDenied) }
func IsInternal(err error) bool           { return errors.Is(err, ErrInternal) }

// InvalidArgument formats an error of class ErrInvalidArgument.
func InvalidArgument(format string, a ...any) error { return Newf(ErrInvalidArgument, format, a...) }

// NotFound formats an error of class ErrNotFound.
func NotFound(format string, a ...any) error { return Newf(ErrNotFound, format, a...) }

// AlreadyExists formats an error of class ErrAlreadyExists.
func AlreadyExists(format string, a ...any) error { return Newf(ErrAlreadyExists, format, a...) }

// FailedPrecondition formats an error of class ErrFailedPrecondition.
func FailedPrecondition(format string, a ...any) error {
	return Newf(ErrFailedPrecondition, format, a...)
}

// Unavailable formats an error of class ErrUnavailable.
func Unavailable(format string, a ...any) error { return Newf(ErrUnavailable, format, a...) }

// Conflict formats an error of class ErrConflict.
func Conflict(format string, a ...any) error { return Newf(ErrConflict, format, a...) }

// PermissionDenied formats an error of class ErrPermissionDenied.
func PermissionDenied(format string, a ...any) error { return Newf(ErrPermissionDenied, format, a...) }

// DeadlineExceeded formats an error of class ErrDeadlineExceeded.
func DeadlineExceeded(format string, a ...any) error { return Newf(ErrDeadlineExceeded, format, a...) }

// Internal formats an error of class ErrInternal.
func Internal(format string, a ...any) error { return Newf(ErrInternal, format, a...) }
