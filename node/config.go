package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/overlay"
	"github.com/shoal-project/shoal/worker"
)

// Executor is the container runtime a node's agent drives: worker's
// Executor, and Close to release it when the agent stops.
type Executor interface {
	worker.Executor
	io.Closer
}

// ExecutorFunc opens the executor of the node nodeID, whose own files live
// in dir (<DataDir>/executor). The node calls it when its agent starts,
// again every Config.ExecutorRetry while it fails (containerd not up yet,
// say), and once more when the node leaves a swarm, to remove the
// containers it ran. ov is the node's overlay agent for the executor's
// controllers to attach tasks to overlay networks (nil: the node has none;
// the node owns it: it starts and closes it). shoald passes the containerd
// executor; tests a fake.
type ExecutorFunc func(ctx context.Context, nodeID, dir string, ov *overlay.Agent) (Executor, error)

// Config configures a Node. It must not be modified after New. Zero fields
// take the defaults of DefaultConfig; Executor is required.
type Config struct {
	// DataDir holds everything the node keeps: certificates and keyring,
	// state.json, the raft log, the task db and the executor's files.
	DataDir string
	// ListenAddr is the address managers serve the cluster API on
	// (host:port), unless `swarm init|join --listen-addr` names another.
	ListenAddr string
	// AdvertiseAddr is the address other nodes reach this one at (an IP,
	// IP:port or interface name); empty: derived from the listen address.
	AdvertiseAddr string
	// ControlSocket is the unix socket the CLI talks to.
	ControlSocket string
	// Executor opens the container runtime. Required.
	Executor ExecutorFunc
	// Overlay turns on overlay networks (VXLAN, gossip, service DNS and
	// VIPs); nil: the node has none, and tasks on networks are rejected.
	// DefaultConfig sets it (shoald); tests that run several nodes in one
	// network namespace leave it nil.
	Overlay *OverlayConfig
	// ExecutorRetry is how long the agent waits before it tries to open an
	// executor again.
	ExecutorRetry time.Duration
	// RaftTick is the raft tick; 0 is raftstore's default (100ms).
	RaftTick time.Duration
	// HeartbeatPeriod overrides the cluster's agent heartbeat period
	// (tests); 0 follows the cluster.
	HeartbeatPeriod time.Duration
	// Version is reported by `shoal info` and in the node's description.
	Version string
	// Listen opens the cluster API listener of a manager. Default
	// net.Listen.
	Listen func(network, address string) (net.Listener, error)
	// DialContext opens the connections to other nodes' cluster API under
	// TLS. nil: gRPC's own TCP dialer.
	DialContext func(ctx context.Context, addr string) (net.Conn, error)
	// Clock drives every wait of the node and its manager and agent (raft
	// ticks, heartbeats, renewal, retries). nil: the real clock.
	Clock  clockwork.Clock
	Logger *slog.Logger
	// Gateway runs beside the control socket while the node runs (shoald:
	// the Docker Engine API); nil: none. See GatewayFunc.
	Gateway GatewayFunc
	// InsecureRegistries are the registries reached over plain HTTP besides
	// loopback ones ("host", "host:port" or a CIDR), when the control
	// socket's Registry service resolves an image's digest (shoald passes
	// its --insecure-registry, which the executor pulls by).
	InsecureRegistries []string
	// RegistryTimeout bounds one Registry.ResolveImage; zero:
	// registry.DefaultTimeout.
	RegistryTimeout time.Duration
	// MetricsAddr serves Prometheus metrics, /healthz and /readyz on this
	// host:port (package metrics); "" (the default, as dockerd's): off.
	MetricsAddr string
}

// DefaultConfig returns a Config with every default set: the one place
// where a node's defaults are written (shoald's flags show them).
func DefaultConfig() Config {
	return Config{
		DataDir:       "/var/lib/shoal",
		ListenAddr:    "0.0.0.0:4242", // DESIGN.md: cluster API port
		ControlSocket: "/run/shoal/shoal.sock",
		ExecutorRetry: 5 * time.Second,
		Overlay:       &OverlayConfig{GossipPort: overlay.DefaultGossipPort},
		Listen:        net.Listen,
		Clock:         clockwork.NewRealClock(),
		Logger:        slog.Default(),
	}
}

// Timeouts of the node's own steps. They bound waits on other nodes and on
// the node's own manager; each runs on the node's clock.
const (
	// joinTimeout bounds each remote step of a join.
	joinTimeout = 15 * time.Second
	// raftJoinTimeout bounds a new manager's joining the raft cluster.
	raftJoinTimeout = 30 * time.Second
	// leaderTimeout bounds the wait for a new swarm's manager to lead.
	leaderTimeout = 20 * time.Second
	// leaveRaftTimeout bounds a manager's leaving raft.
	leaveRaftTimeout = 20 * time.Second
	// leaveWaitBusy bounds how long `swarm leave` waits for an operation
	// in progress (a role change restarting the member) to end before it
	// refuses with "wait for it to finish".
	leaveWaitBusy = 15 * time.Second
	// removeTimeout bounds the removal of the containers of a node that
	// leaves.
	removeTimeout = time.Minute
	// renewTimeout bounds one certificate renewal call.
	renewTimeout = 10 * time.Second
	// roleRetry is how soon a renewal is tried again when it failed, or
	// when the cluster wants another role than the certificate carries.
	roleRetry = time.Second
	// keyRetry is how long a failed re-wrap of the data key waits.
	keyRetry = 5 * time.Second
	// serverStopGrace is how long a manager's server drains its calls.
	serverStopGrace = 2 * time.Second
)

// maxMsg is the gRPC message cap everywhere (DESIGN.md).
const maxMsg = 4 << 20

// validate fills zero fields with their defaults and rejects bad ones.
func (c *Config) validate() error {
	def := DefaultConfig()
	if c.DataDir == "" {
		c.DataDir = def.DataDir
	}
	if c.ListenAddr == "" {
		c.ListenAddr = def.ListenAddr
	}
	if c.ControlSocket == "" {
		c.ControlSocket = def.ControlSocket
	}
	if c.ExecutorRetry == 0 {
		c.ExecutorRetry = def.ExecutorRetry
	}
	if c.Listen == nil {
		c.Listen = def.Listen
	}
	if c.Clock == nil {
		c.Clock = def.Clock
	}
	if c.Logger == nil {
		c.Logger = def.Logger
	}
	var errs []error
	if c.Executor == nil {
		errs = append(errs, errors.New("Executor is required"))
	}
	if o := c.Overlay; o != nil {
		if o.GossipPort < 0 || o.GossipPort > 65535 {
			errs = append(errs, fmt.Errorf("--gossip-port %d: want 1..65535 (default 7946)", o.GossipPort))
		}
		if o.DataPathAddr != "" {
			if _, err := resolveDataPath(o.DataPathAddr); err != nil {
				errs = append(errs, fmt.Errorf("--data-path-addr: %w", err))
			}
		}
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		errs = append(errs, fmt.Errorf("--listen-addr %q: %v (expected host:port, e.g. 0.0.0.0:4242)", c.ListenAddr, err))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"ExecutorRetry", c.ExecutorRetry}, {"RaftTick", c.RaftTick}, {"HeartbeatPeriod", c.HeartbeatPeriod}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", d.name))
		}
	}
	return errors.Join(errs...)
}
