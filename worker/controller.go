package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// Executor is what the agent needs from a container runtime. The only
// implementation that runs real containers is worker/containerd; tests of the
// agent's logic may use a fake.
type Executor interface {
	// Describe reports the node's hostname, platform and resources.
	Describe(ctx context.Context) (*api.NodeDescription, error)
	// Controller returns the controller for a task. It must not start work;
	// it may be called again for the same task after a daemon restart, and the
	// controller then finds the container that already exists. deps gives
	// the secrets and configs the task references (nil when it has none).
	Controller(t *api.Task, deps Dependencies) (Controller, error)
	// Tasks lists the IDs of the tasks that have a container in the runtime,
	// running or not, so the agent can remove those it no longer owns.
	Tasks(ctx context.Context) ([]string, error)
}

// Controller runs one task's container through its lifecycle. The agent calls
// a controller's methods from one goroutine at a time (Wait may run while
// Shutdown or Terminate is called from another). Every method is idempotent:
// calling Prepare on a prepared task returns ErrTaskPrepared, Start on a
// running task ErrTaskStarted, so a restarted agent can replay the lifecycle.
type Controller interface {
	// Prepare pulls the image and creates the container. Errors that retrying
	// cannot fix (no such image, invalid spec) are wrapped in ErrTaskRejected
	// style: see IsRejected.
	Prepare(ctx context.Context) error
	// Start starts the container's process.
	Start(ctx context.Context) error
	// Wait blocks until the process exits. A zero exit returns nil; a
	// non-zero exit returns an *ExitError.
	Wait(ctx context.Context) error
	// Shutdown stops the process with the stop signal, then SIGKILL once the
	// stop grace period has passed.
	Shutdown(ctx context.Context) error
	// Terminate kills the process at once.
	Terminate(ctx context.Context) error
	// Remove deletes the container, its snapshot and its log file.
	Remove(ctx context.Context) error
	// Status reports what the runtime knows about the container (ID, pid,
	// exit code, addresses). It may be called at any time.
	Status(ctx context.Context) (*api.ContainerStatus, error)
	// Close releases the controller's resources; the container stays.
	Close() error
}

// EndpointUpdater is implemented by controllers that take a running task's
// new endpoint (published ports changed by `service update --publish-add`
// without a new task). The agent calls it from the task's goroutine when
// an assignment brings a different endpoint.
type EndpointUpdater interface {
	UpdateEndpoint(t *api.Task)
}

// ServiceRemovedNotifier is implemented by controllers that act at once
// when the task's service is removed (Task.service_removed), before the
// task is stopped: the routing mesh frees the service's published ports
// then, as Docker's `service rm` does, rather than keeping them refused
// while the task drains. The agent calls it from the task's goroutine, once.
type ServiceRemovedNotifier interface {
	ServiceRemoved(t *api.Task)
}

// Dependencies hands a controller the secrets and configs assigned to this
// node. Secrets carry their plaintext data: they live in the agent's memory
// only and reach the container on tmpfs, never a disk. Safe for concurrent
// use.
type Dependencies interface {
	Secret(id string) (*api.Secret, bool)
	Config(id string) (*api.Config, bool)
}

// LogOptions select which log lines a LogSource returns.
type LogOptions struct {
	Follow bool
	// Tail is the number of lines from the end; negative means all.
	Tail  int64
	Since time.Time
}

// LogSource is implemented by controllers that keep their container's output.
type LogSource interface {
	// Logs sends the task's log lines to fn until the lines run out (or, with
	// Follow, until ctx ends). fn returning an error stops the read.
	Logs(ctx context.Context, opts LogOptions, fn func(*api.LogMessage) error) error
}

var (
	// ErrTaskPrepared is returned by Prepare when the container already exists.
	ErrTaskPrepared = errors.New("task already prepared")
	// ErrTaskStarted is returned by Start when the process already runs or ran.
	ErrTaskStarted = errors.New("task already started")
	// ErrTaskNotFound is returned when the container the controller expects
	// is gone from the runtime.
	ErrTaskNotFound = errors.New("container not found")
)

// ExitError is a process's non-zero exit.
type ExitError struct {
	Code  int
	Cause error // e.g. "container unhealthy", "OOM killed"; may be nil
}

func (e *ExitError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("task: non-zero exit (%d): %v", e.Code, e.Cause)
	}
	return fmt.Sprintf("task: non-zero exit (%d)", e.Code)
}

func (e *ExitError) Unwrap() error { return e.Cause }

// rejectedError marks an error after which the task must not be retried on
// this node as is.
type rejectedError struct{ err error }

func (e *rejectedError) Error() string { return e.err.Error() }
func (e *rejectedError) Unwrap() error { return e.err }

// Rejected marks err as a reason to reject the task (state REJECTED), such as
// an image that does not exist or an invalid spec.
func Rejected(err error) error {
	if err == nil {
		return nil
	}
	return &rejectedError{err: err}
}

// IsRejected tells whether err was marked with Rejected.
func IsRejected(err error) bool {
	var r *rejectedError
	return errors.As(err, &r)
}
