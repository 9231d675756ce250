package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// Config configures an Agent. It must not be modified after New.
type Config struct {
	// NodeID is this node's ID (the CN of its certificate). Required.
	NodeID string
	// Managers are the "host:port" addresses of the managers to try first.
	// Each session replaces the list with the managers' own. Required.
	Managers []string
	// Dial returns a connection to a manager, with mTLS set up. The dialler
	// owns the connections: the agent never closes them, so the dialler may
	// cache one per address. Required.
	Dial func(ctx context.Context, addr string) (*grpc.ClientConn, error)
	// Executor runs the containers. Required.
	Executor Executor
	// DataDir holds the task db (tasks.db). Required.
	DataDir string
	// TaskDBKey, when set, seals every record value of the task db with
	// AES-256-GCM (pki.Seal), so that task specs (with their labels and
	// environment) are not plaintext on disk. It must be 32 bytes. Records
	// written without a key are read and sealed at start. nil (the
	// default) writes plaintext; records sealed with a key then no longer
	// open and are dropped (the managers' assignments rebuild them).
	TaskDBKey []byte
	// Clock drives every schedule of the agent (heartbeats, backoff, status
	// batching, retries) and the status timestamps. Leave nil except in
	// tests: nil is the real clock.
	Clock clockwork.Clock
	// OnNodeUpdate, when set, is called after each session message that
	// carries this node's object or the managers' list. It is how the node
	// learns of role changes (promote, demote) and of the managers to
	// remember, as events rather than polls. It is called from the session
	// goroutine, never concurrently with itself, and must not block (hand
	// the update to a buffered channel, say). It owns the update it gets.
	OnNodeUpdate func(NodeUpdate)
	// OnSession, when set, is called with every session message, for the
	// cluster-wide settings it carries (the overlay's data path port,
	// gossip key, down nodes and seeds). Same rules as OnNodeUpdate: the
	// session goroutine calls it, it must not block and must not modify
	// the message.
	OnSession func(*api.SessionMessage)
	// Logger receives the agent's logs as is (give it the attributes that
	// name the component and node); nil discards them.
	Logger *slog.Logger

	// RPCTimeout bounds every unary RPC (except heartbeats, bounded by the
	// heartbeat period), dialling, and the wait for a session's first
	// message. Default 5s.
	RPCTimeout time.Duration
	// HeartbeatPeriod is the period used until a manager names its own.
	// Default 5s.
	HeartbeatPeriod time.Duration
	// MaxHeartbeatFailures failed heartbeats in a row end the session.
	// Default 3: the manager declares the node down after 3 periods.
	MaxHeartbeatFailures int
	// BackoffMin and BackoffMax bound the jittered exponential delay between
	// session attempts. Default 100ms and 8s.
	BackoffMin, BackoffMax time.Duration
	// StatusFlushInterval is how often pending status updates are sent.
	// Default 100ms.
	StatusFlushInterval time.Duration
	// MaxStatusTimeouts UpdateTaskStatus calls in a row that run out of
	// time end the session; fewer keep it, and the updates go again 1 s,
	// 2 s... later. A manager answers a report once it is committed, so a
	// leader loaded with writes answers late: ending the session at the
	// first late answer cut thousands of sessions in a 1M-task create,
	// whose reconnections then cost the managers more. Any other failure
	// ends the session at once. Default 3, as MaxHeartbeatFailures.
	MaxStatusTimeouts int
	// StatusBatchSize is the most updates per UpdateTaskStatus call; this
	// many pending updates are sent at once without waiting for the
	// interval. Default 100.
	StatusBatchSize int
	// PrepareRetries is how many times a transient Prepare failure (a
	// registry hiccup, say) is retried before the task is FAILED; the delay
	// starts at PrepareRetryDelay and doubles. Defaults 3 and 1s.
	PrepareRetries    int
	PrepareRetryDelay time.Duration
	// LogTimeout bounds a log subscription without follow. Default 1 min.
	LogTimeout time.Duration
	// MaxLogSubscriptions bounds the log subscriptions served at once; more
	// are answered at once with no lines. Default 64.
	MaxLogSubscriptions int
	// LogBatchSize is the most lines per PublishLogs message (which also
	// stays under 1 MiB of data). Default 100.
	LogBatchSize int
	// RemovedServiceStopGrace caps the stop grace period of the tasks of a
	// removed service (desired state REMOVE with service_removed set): the
	// process gets the stop signal, and SIGKILL at the latest this long
	// after the node learned of the removal, whatever the task's own stop
	// grace period. Updates and scale-downs keep the full grace period.
	// Default 1 min.
	RemovedServiceStopGrace time.Duration
}

// DefaultConfig returns a Config with every tunable at its default and the
// required fields empty.
func DefaultConfig() Config {
	return Config{
		RPCTimeout:           5 * time.Second, // SwarmKit's agent RPC timeout
		HeartbeatPeriod:      5 * time.Second, // DESIGN.md: dispatcher heartbeat
		MaxHeartbeatFailures: 3,               // the manager's "down after 3 periods"
		MaxStatusTimeouts:    3,
		BackoffMin:           100 * time.Millisecond,
		BackoffMax:           8 * time.Second,
		StatusFlushInterval:  100 * time.Millisecond,
		StatusBatchSize:      100,
		PrepareRetries:       3,
		PrepareRetryDelay:    time.Second,
		LogTimeout:           time.Minute,
		MaxLogSubscriptions:  64,
		LogBatchSize:         100,
		// `service rm` must remove the containers in bounded time
		// (README: services).
		RemovedServiceStopGrace: time.Minute,
	}
}

// maxLogBatchBytes keeps a PublishLogs message well under gRPC's 4 MiB.
const maxLogBatchBytes = 1 << 20

// validate fills zero tunables with their defaults and rejects missing or
// contradictory settings.
func (c *Config) validate() error {
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("NodeID is required"))
	}
	var addrs []string
	seen := map[string]bool{}
	for _, a := range c.Managers {
		if a != "" && !seen[a] {
			seen[a] = true
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		errs = append(errs, errors.New("at least one manager address is required"))
	}
	c.Managers = addrs
	if c.Dial == nil {
		errs = append(errs, errors.New("Dial is required"))
	}
	if c.Executor == nil {
		errs = append(errs, errors.New("Executor is required"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("DataDir is required"))
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d := DefaultConfig()
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"RPCTimeout", &c.RPCTimeout, d.RPCTimeout},
		{"HeartbeatPeriod", &c.HeartbeatPeriod, d.HeartbeatPeriod},
		{"BackoffMin", &c.BackoffMin, d.BackoffMin},
		{"BackoffMax", &c.BackoffMax, d.BackoffMax},
		{"StatusFlushInterval", &c.StatusFlushInterval, d.StatusFlushInterval},
		{"PrepareRetryDelay", &c.PrepareRetryDelay, d.PrepareRetryDelay},
		{"LogTimeout", &c.LogTimeout, d.LogTimeout},
		{"RemovedServiceStopGrace", &c.RemovedServiceStopGrace, d.RemovedServiceStopGrace},
	}
	for _, f := range durations {
		switch {
		case *f.v == 0:
			*f.v = f.def
		case *f.v < 0:
			errs = append(errs, fmt.Errorf("%s must not be negative", f.name))
		}
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxHeartbeatFailures", &c.MaxHeartbeatFailures, d.MaxHeartbeatFailures},
		{"MaxStatusTimeouts", &c.MaxStatusTimeouts, d.MaxStatusTimeouts},
		{"StatusBatchSize", &c.StatusBatchSize, d.StatusBatchSize},
		{"PrepareRetries", &c.PrepareRetries, d.PrepareRetries},
		{"MaxLogSubscriptions", &c.MaxLogSubscriptions, d.MaxLogSubscriptions},
		{"LogBatchSize", &c.LogBatchSize, d.LogBatchSize},
	}
	for _, f := range ints {
		switch {
		case *f.v == 0:
			*f.v = f.def
		case *f.v < 0:
			errs = append(errs, fmt.Errorf("%s must not be negative", f.name))
		}
	}
	if c.TaskDBKey != nil && len(c.TaskDBKey) != pki.SealKeySize {
		errs = append(errs, fmt.Errorf("TaskDBKey has %d bytes, want %d (or none)", len(c.TaskDBKey), pki.SealKeySize))
	}
	if c.BackoffMin > c.BackoffMax {
		errs = append(errs, fmt.Errorf("BackoffMin %v is above BackoffMax %v", c.BackoffMin, c.BackoffMax))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("worker config: %w", err)
	}
	return nil
}
