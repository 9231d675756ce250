package overlay

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
)

// Defaults of Config; each applies when its field is zero.
const (
	// DefaultDataPathPort is the VXLAN UDP port (IANA's, Docker's).
	DefaultDataPathPort = 4789
	// DefaultGossipPort is memberlist's port (TCP and UDP), Docker's.
	DefaultGossipPort = 7946
	// DefaultDrainDelay is the time between a task leaving the tables and
	// its stop signal: long enough for gossip to reach every node.
	DefaultDrainDelay = time.Second
	// DefaultResyncPeriod is the programming loop's anti-entropy period.
	DefaultResyncPeriod = 3 * time.Second
)

// Config configures an Agent. It must not be changed after New.
type Config struct {
	// NodeID is this node's ID: the owner of the gossip entries it
	// publishes. Required.
	NodeID string
	// DataPathAddr is the node's VTEP: the underlay address other nodes
	// send VXLAN to and gossip with. Required.
	DataPathAddr netip.Addr
	// DataPathPort is the VXLAN UDP port until a session message names the
	// cluster's. Default DefaultDataPathPort.
	DataPathPort uint16
	// GossipPort is memberlist's port on DataPathAddr and on the seeds.
	// Default DefaultGossipPort.
	GossipPort int
	// StateDir holds the datapath's namespaces and the agent's task
	// records (restart adoption). Required.
	StateDir string
	// LinkPrefix starts the names of the links the datapath makes in the
	// daemon's namespace, unique per node on a host: 1-4 characters of
	// [a-z0-9-]. Default "ovl".
	LinkPrefix string
	// DrainDelay is how long Draining waits after withdrawing a task.
	// Default DefaultDrainDelay; negative: no wait.
	DrainDelay time.Duration
	// ResyncPeriod is the full reprogramming period. Default
	// DefaultResyncPeriod.
	ResyncPeriod time.Duration
	// OnPeersBack, when set, is called (from a rejoin attempt's goroutine;
	// it must not block) when a rejoin of the seeds brought members back after this
	// node saw too few: the network is likely back after a partition. node/
	// uses it to make the agent retry its session with the managers at once.
	OnPeersBack func()
	// DNSUpstreams are the resolvers for names the cluster does not know.
	// nil: the host's /etc/resolv.conf (non-loopback ones).
	DNSUpstreams []string
	// Clock drives the drain wait and the resync timer. Default real.
	Clock clockwork.Clock
	// Log receives the agent's events. Default slog.Default().
	Log *slog.Logger

	// Libraries: nil selects the real ones (libs.go); tests give fakes.
	NewDatapath func(DatapathConfig) (Datapath, error)
	NewGossip   func(GossipConfig) (Gossip, error)
	NewDNS      func(DNSConfig) (DNS, error)
	VIP         VIP
	// Mesh is ingress/mesh (the routing mesh and host-mode published
	// ports), given by the caller like VIP. nil: this node serves no
	// published port (logged once when one is wanted).
	Mesh Mesh
	// HostNetns is the namespace the node serves published ports in and
	// attaches its own ingress interface to: a namespace path. Default ""
	// is the daemon's own namespace (/proc/self/ns/net for the datapath).
	// Tests set it to a namespace standing for a host.
	HostNetns string
}

func (c *Config) validate() error {
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("overlay: NodeID is required"))
	}
	if !c.DataPathAddr.IsValid() || !c.DataPathAddr.Is4() {
		errs = append(errs, fmt.Errorf("overlay: data path address %v: want the node's IPv4 underlay address (--data-path-addr)", c.DataPathAddr))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("overlay: StateDir is required"))
	} else if abs, err := filepath.Abs(c.StateDir); err == nil {
		c.StateDir = abs
	}
	if c.DataPathPort == 0 {
		c.DataPathPort = DefaultDataPathPort
	}
	if c.GossipPort == 0 {
		c.GossipPort = DefaultGossipPort
	}
	if c.GossipPort < 0 || c.GossipPort > 65535 {
		errs = append(errs, fmt.Errorf("overlay: gossip port %d: want 1..65535", c.GossipPort))
	}
	if c.LinkPrefix == "" {
		c.LinkPrefix = "ovl"
	}
	if len(c.LinkPrefix) > 4 || strings.Trim(c.LinkPrefix, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		errs = append(errs, fmt.Errorf("overlay: link prefix %q: 1-4 characters of [a-z0-9-] (link names are at most 15 bytes)", c.LinkPrefix))
	}
	if c.DrainDelay == 0 {
		c.DrainDelay = DefaultDrainDelay
	}
	if c.ResyncPeriod <= 0 {
		c.ResyncPeriod = DefaultResyncPeriod
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return errors.Join(errs...)
}
