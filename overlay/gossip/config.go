package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/jonboulle/clockwork"
)

// DefaultPort is the gossip port (TCP and UDP), Docker's 7946.
const DefaultPort = 7946

// EphemeralPort as Config.Port lets the kernel choose the port (tests).
const EphemeralPort = -1

// Config configures a Gossip. Zero values take the documented defaults.
//
// Failure detection (ProbeInterval 1 s, ProbeTimeout 500 ms, SuspicionMult
// as given): some member probes a dead node within about one
// probe interval (each member probes one member per interval, round robin);
// the probe (direct, then indirect through 3 members, then TCP) fails at the
// end of that interval and the node is suspected; the suspicion timeout is
// SuspicionMult × max(1, log10 N) × ProbeInterval = 2 s up to 10 nodes (3 s
// at 100, 4 s at 1,000), after which the node is declared dead, and the news
// is gossiped within one or two GossipIntervals. TestKilledMemberDropped
// (5 nodes, in-memory transport, a loaded 2-core machine) measures 3.5-4.7 s
// from the kill to the entries being gone on every other node; with
// ProbeInterval 800 ms and ProbeTimeout 400 ms it measured 2.7-3.7 s.
// The default is memberlist's LAN value, SuspicionMult 4, which gives 5-6 s
// (at most 8 s: SuspicionMaxTimeoutMult is 2, see memberlistConfig):
// with 2, live members of a loaded 2-core host were declared dead under
// -race, and a false death withdraws a live node's backends until it is seen
// alive again. 5-6 s is well inside the bound for a killed node
// (three 5 s heartbeats), and the managers' down list backs it up.
// SuspicionMult 1 would leave a falsely suspected node 1 s to refute.
type Config struct {
	// NodeID is this node's name in memberlist and the Owner of its entries.
	// Required.
	NodeID string
	// BindAddr is the address to listen on. Default 0.0.0.0.
	BindAddr netip.Addr
	// Port is the TCP and UDP port. 0 means DefaultPort (7946);
	// EphemeralPort (-1) lets the kernel choose one.
	Port int
	// AdvertiseAddr is the address other nodes reach this one at. Default:
	// memberlist picks BindAddr, or a private address of the host when
	// BindAddr is unspecified.
	AdvertiseAddr netip.Addr
	// Key is the cluster's network key: 32 bytes, AES-256-GCM encryption of
	// every gossip packet and stream (memberlist SecretKey). Required:
	// gossip carries addresses of every task and is never sent in clear.
	Key []byte
	// Generation is this node's incarnation. Default: the clock's time in
	// nanoseconds at New, which grows across restarts.
	Generation uint64
	// Transport replaces memberlist's UDP/TCP transport (tests). When set,
	// BindAddr, Port and AdvertiseAddr are ignored.
	Transport memberlist.NodeAwareTransport
	// OnChange is called with a network's ID after its live entries changed.
	// Calls come from one goroutine of Gossip, never under its lock (the
	// callback may call Entries), are coalesced (several changes may give
	// one call) and happen in order for a network. A slow callback delays
	// later calls, never gossip. Optional.
	OnChange func(network string)
	// Log receives Gossip's and memberlist's logs. Default slog.Default().
	Log *slog.Logger
	// Clock drives tombstone reaping and the default Generation. Default real time.
	Clock clockwork.Clock

	// GossipInterval is the interval between gossip rounds. Default 150 ms.
	GossipInterval time.Duration
	// GossipNodes is the number of random members per gossip round. Default 3.
	GossipNodes int
	// RetransmitMult: each broadcast is sent RetransmitMult × ceil(log10(N+1))
	// times by each node that learns it. Default 4.
	RetransmitMult int
	// ProbeInterval is the failure-detection probe interval. Default 1 s.
	ProbeInterval time.Duration
	// ProbeTimeout is the wait for a direct probe's ack. Default 500 ms.
	ProbeTimeout time.Duration
	// SuspicionMult: a suspected node is declared dead after SuspicionMult ×
	// max(1, log10 N) × ProbeInterval. Default 4 (see above).
	SuspicionMult int
	// PushPullInterval is the interval of full-state anti-entropy with one
	// random member. Default 15 s (memberlist scales it up beyond 32 nodes).
	PushPullInterval time.Duration
	// TombstoneTTL is how long a withdrawn entry's tombstone is kept. It must
	// exceed the time a copy can stay in flight (several push-pull
	// intervals). Default 5 min.
	TombstoneTTL time.Duration
	// OwnerRetention is how long the record of a dead or dropped node (which
	// keeps its stale copies out) is kept once it has no entries. Default 1 h.
	OwnerRetention time.Duration
	// RestartGrace: when a node comes back with a new Generation (its
	// daemon restarted; its tasks run on), the entries of its previous
	// generation stay for RestartGrace, each until the new generation
	// writes it again (its tasks re-published as they are re-attached) or
	// withdraws it, instead of all going at its first new entry: the
	// mesh and VIPs then keep their backends, and their connections,
	// across a daemon restart. The restarted node leaves its previous
	// generation's copies alone as long. Default 10 s; negative: none (the
	// previous generation goes at once).
	RestartGrace time.Duration
	// MaxQueuedBroadcasts bounds the broadcast queue; the oldest are dropped
	// beyond it (push-pull repairs what they carried). Default 8192.
	MaxQueuedBroadcasts int
	// DirectThreshold: local writes gathered within FlushWindow go straight
	// to every member over TCP when there are at least this many, and by UDP
	// gossip otherwise (direct.go). Default 1: always direct (clusters of up
	// to 128 members; larger ones always gossip).
	DirectThreshold int
	// MaxStateBytes bounds the push-pull state (memberlist refuses more than
	// 20 MiB). Beyond it tombstones, then other owners' entries, are left
	// out and a warning logged. Default 8 MiB.
	MaxStateBytes int
}

// Defaults, see Config.
const (
	DefaultGossipInterval      = 150 * time.Millisecond
	DefaultGossipNodes         = 3
	DefaultRetransmitMult      = 4
	DefaultProbeInterval       = time.Second
	DefaultProbeTimeout        = 500 * time.Millisecond
	DefaultSuspicionMult       = 4
	DefaultPushPullInterval    = 15 * time.Second
	DefaultTombstoneTTL        = 5 * time.Minute
	DefaultOwnerRetention      = time.Hour
	DefaultRestartGrace        = 10 * time.Second
	DefaultMaxQueuedBroadcasts = 8192
	DefaultMaxStateBytes       = 8 << 20
	DefaultDirectThreshold     = 1
	maxStateBytesLimit         = 20 << 20
)

// validate checks c and fills the defaults.
func (c *Config) validate() error {
	if c.NodeID == "" {
		return errors.New("gossip: Config.NodeID is empty: set it to the node's ID")
	}
	if len(c.Key) != 32 {
		return fmt.Errorf("gossip: Config.Key has %d bytes, need 32: pass the cluster's network key (Cluster.network_key)", len(c.Key))
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Port < EphemeralPort || c.Port > 65535 {
		return fmt.Errorf("gossip: Config.Port %d is out of range: use 1-65535, 0 for %d or %d for an ephemeral port", c.Port, DefaultPort, EphemeralPort)
	}
	if !c.BindAddr.IsValid() {
		c.BindAddr = netip.IPv4Unspecified()
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	if c.Generation == 0 {
		c.Generation = uint64(c.Clock.Now().UnixNano())
	}
	switch {
	case c.RestartGrace == 0:
		c.RestartGrace = DefaultRestartGrace
	case c.RestartGrace < 0:
		c.RestartGrace = 0
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"GossipInterval", &c.GossipInterval, DefaultGossipInterval},
		{"ProbeInterval", &c.ProbeInterval, DefaultProbeInterval},
		{"ProbeTimeout", &c.ProbeTimeout, DefaultProbeTimeout},
		{"PushPullInterval", &c.PushPullInterval, DefaultPushPullInterval},
		{"TombstoneTTL", &c.TombstoneTTL, DefaultTombstoneTTL},
		{"OwnerRetention", &c.OwnerRetention, DefaultOwnerRetention},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return fmt.Errorf("gossip: Config.%s is negative (%v): use 0 for the default %v", d.name, *d.v, d.def)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"GossipNodes", &c.GossipNodes, DefaultGossipNodes},
		{"RetransmitMult", &c.RetransmitMult, DefaultRetransmitMult},
		{"SuspicionMult", &c.SuspicionMult, DefaultSuspicionMult},
		{"MaxQueuedBroadcasts", &c.MaxQueuedBroadcasts, DefaultMaxQueuedBroadcasts},
		{"MaxStateBytes", &c.MaxStateBytes, DefaultMaxStateBytes},
		{"DirectThreshold", &c.DirectThreshold, DefaultDirectThreshold},
	}
	for _, d := range ints {
		if *d.v < 0 {
			return fmt.Errorf("gossip: Config.%s is negative (%d): use 0 for the default %d", d.name, *d.v, d.def)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.ProbeTimeout >= c.ProbeInterval {
		return fmt.Errorf("gossip: Config.ProbeTimeout %v must be below ProbeInterval %v", c.ProbeTimeout, c.ProbeInterval)
	}
	if c.MaxStateBytes > maxStateBytesLimit {
		return fmt.Errorf("gossip: Config.MaxStateBytes %d is above memberlist's limit %d", c.MaxStateBytes, maxStateBytesLimit)
	}
	return nil
}

// memberlistConfig builds memberlist's configuration: LAN defaults with the
// intervals above.
func (c *Config) memberlistConfig() *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.NodeID
	mc.BindAddr = c.BindAddr.String()
	mc.BindPort = c.Port
	if c.Port == EphemeralPort {
		mc.BindPort = 0
	}
	mc.AdvertisePort = mc.BindPort
	if c.AdvertiseAddr.IsValid() {
		mc.AdvertiseAddr = c.AdvertiseAddr.String()
	}
	mc.SecretKey = c.Key
	mc.GossipInterval = c.GossipInterval
	mc.GossipNodes = c.GossipNodes
	mc.RetransmitMult = c.RetransmitMult
	mc.ProbeInterval = c.ProbeInterval
	mc.ProbeTimeout = c.ProbeTimeout
	mc.SuspicionMult = c.SuspicionMult
	// Lifeguard stretches a suspicion that gets no independent confirmation
	// up to SuspicionMaxTimeoutMult times its base (memberlist's LAN value 6:
	// 24 s with SuspicionMult 4). In small clusters, where few members can
	// confirm, that would keep a killed node's backends for 10-24 s: 2 caps
	// it at 8 s.
	mc.SuspicionMaxTimeoutMult = 2
	mc.PushPullInterval = c.PushPullInterval
	mc.TCPTimeout = 5 * time.Second
	if c.Transport != nil {
		mc.Transport = c.Transport
	}
	return mc
}
