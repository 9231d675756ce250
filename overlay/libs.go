package overlay

import (
	"log/slog"
	"net"
	"net/netip"
)

// The libraries as the Agent uses them: one consumer-defined interface per
// library, with the methods of the GUIDE's contracts, and plain mirror
// types so the Agent compiles and is tested without the real packages
// (real.go adapts those).

// Network is what the datapath needs to know of an overlay network.
type Network struct {
	ID       string
	VNI      uint32
	Subnet   netip.Prefix
	Gateway  netip.Addr
	MTU      int // 0: underlay MTU - 50
	Internal bool
}

// Peer is a remote task the datapath programs (neighbour + FDB entry).
type Peer struct {
	IP   netip.Addr
	MAC  net.HardwareAddr
	VTEP netip.Addr
}

// DatapathConfig configures a Datapath.
type DatapathConfig struct {
	StateDir   string
	LinkPrefix string
	VTEP       netip.Addr
	Port       uint16
	Log        *slog.Logger
}

// Datapath is overlay/datapath's *Datapath.
type Datapath interface {
	EnsureNetwork(n Network) error
	AttachTask(netID, taskNetns, ifName string, addr netip.Prefix, mac net.HardwareAddr) error
	DetachTask(netID, taskNetns, ifName string) error
	SetPeers(netID string, peers []Peer) error
	RemoveNetwork(netID string) error
	Networks() ([]string, error)
	Close() error // releases handles; networks stay
}

// Entry is one gossip record: a task's attachment to one network. It is in
// the table from Attach to Gone or Detach; Draining is set while the task
// is not serving (starting, or about to stop): it is then a data-path peer
// only, in no DNS answer and no VIP.
type Entry struct {
	Network, Key, Owner string
	Generation, Version uint64
	Deleted             bool
	IP, MAC, VTEP       string
	ServiceID           string
	ServiceName         string
	TaskName            string
	Aliases             []string
	VIP                 string
	Draining            bool
	Ports               []PortEntry // ingress-mode published ports of the task (entries on the ingress network)
}

// PortEntry is one published port in an Entry: what every node needs to
// serve it through the routing mesh.
type PortEntry struct {
	Proto      string // "tcp" | "udp"
	Published  uint16
	Target     uint16
	Masquerade bool
	Host       bool
}

// GossipConfig configures a Gossip.
type GossipConfig struct {
	NodeID        string
	BindAddr      netip.Addr
	Port          int
	AdvertiseAddr netip.Addr
	Key           []byte
	OnChange      func(network string)
	Log           *slog.Logger
}

// Gossip is overlay/gossip's *Gossip.
type Gossip interface {
	Join(seeds []string) (int, error)
	Publish(e Entry)
	Withdraw(network, key string)
	Entries(network string) []Entry // live (not deleted), own included
	DropNode(nodeID string)
	RestoreNode(nodeID string) // lifts DropNode: the managers say it is up
	Members() []string         // alive members, this node included
	Close() error
}

// Resolver answers the DNS server's questions (the Agent is one).
type Resolver interface {
	Resolve(taskID, name string) (addrs []netip.Addr, known bool)
}

// DNSConfig configures a DNS server.
type DNSConfig struct {
	Resolver  Resolver
	Upstreams []string
	TTL       uint32
	Log       *slog.Logger
}

// DNS is overlay/dns's *Server.
type DNS interface {
	AddTask(taskID, netnsPath string) error
	RemoveTask(taskID string) error
	Close() error
}

// Service is one VIP and its backends, as ingress/vip programs it.
type Service struct {
	ID       string
	VIP      netip.Addr
	Backends []netip.Addr
}

// VIP is ingress/vip's functions.
type VIP interface {
	Apply(netnsPath string, services []Service) error
	Remove(netnsPath string) error
	FlushConntrack(netnsPath string, backend netip.Addr) error
}

// MeshPort is one published port as ingress/mesh serves it on a node
// (mesh.Port).
type MeshPort struct {
	Proto      string
	Published  uint16
	Target     uint16
	Backends   []netip.Addr
	Masquerade bool
	HostMode   bool
}

// MeshNode is a node's own interface on the ingress network (mesh.IngressNode).
type MeshNode struct {
	MAC  net.HardwareAddr
	Addr netip.Addr
}

// MeshReturn is a task's return path (mesh.Return).
type MeshReturn struct {
	Interface string
	Subnet    netip.Prefix
	Nodes     []MeshNode
	UDPPorts  []uint16
}

// Mesh is ingress/mesh's functions (the routing mesh and host-mode ports).
type Mesh interface {
	Apply(netnsPath string, ports []MeshPort) error
	Remove(netnsPath string) error
	EnableLocalhost(netnsPath string, ifNames ...string) error
	FlushConntrack(netnsPath string, backend netip.Addr) error
	ApplyReturn(netnsPath string, r MeshReturn) error
	RemoveReturn(netnsPath string) error
}
