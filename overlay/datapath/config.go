package datapath

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/shoal-project/shoal/errdefs"
)

// DefaultPort is the VXLAN UDP port used when Config.Port is 0 (IANA's,
// Docker's default; the cluster's data_path_port overrides it).
const DefaultPort = 4789

// DefaultLinkPrefix is Config.LinkPrefix when it is empty.
const DefaultLinkPrefix = "ovl"

// maxLinkPrefix keeps every generated name within IFNAMSIZ-1 (15) bytes:
// prefix + one kind letter + 10 hex digits.
const maxLinkPrefix = 4

// vxlanOverhead is what VXLAN over IPv4 adds to an inner frame: outer IPv4
// (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
const vxlanOverhead = 50

// Names of the devices inside a network's namespace.
const (
	bridgeName = "br0"
	vxlanName  = "vx0"
)

// Config configures a Datapath.
type Config struct {
	// StateDir holds the bound namespace files, one per network
	// (StateDir/netns/NETWORK-ID). Required; created if missing.
	StateDir string
	// LinkPrefix starts every link name this package generates (temporary
	// VXLAN names in the daemon's namespace, veth ends), so two Datapaths
	// with different prefixes never collide. Default "ovl"; at most 4
	// characters of [a-z0-9-].
	LinkPrefix string
	// VTEP is this node's data-path address (IPv4): the VXLAN devices'
	// local address; the interface holding it in the daemon's namespace is
	// the underlay whose MTU sets the default overlay MTU. Required.
	VTEP netip.Addr
	// Port is the VXLAN UDP destination port. Default 4789.
	Port uint16
	// Log receives what the datapath changes. Default slog.Default().
	Log *slog.Logger
}

// validate fills defaults and rejects what cannot work.
func (c *Config) validate() error {
	if c.StateDir == "" {
		return errdefs.InvalidArgument("datapath: Config.StateDir is empty; give the directory for network namespace files (e.g. DATA-DIR/overlay)")
	}
	if c.LinkPrefix == "" {
		c.LinkPrefix = DefaultLinkPrefix
	}
	if len(c.LinkPrefix) > maxLinkPrefix || strings.Trim(c.LinkPrefix, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return errdefs.InvalidArgument("datapath: Config.LinkPrefix %q must be 1-%d characters of [a-z0-9-] (link names are at most 15 bytes)", c.LinkPrefix, maxLinkPrefix)
	}
	if !c.VTEP.IsValid() || !c.VTEP.Unmap().Is4() || c.VTEP.IsUnspecified() {
		return errdefs.InvalidArgument("datapath: Config.VTEP %q is not a usable IPv4 address; give the node's data-path address", c.VTEP)
	}
	c.VTEP = c.VTEP.Unmap()
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return nil
}

// Network is one overlay network as the node programs it.
type Network struct {
	// ID names the network; it is the namespace file's name, so it must be
	// a plain file name.
	ID string
	// VNI is the VXLAN id, 1 .. 2^24-1.
	VNI uint32
	// Subnet and Gateway: br0 gets Gateway with Subnet's prefix length.
	Subnet  netip.Prefix
	Gateway netip.Addr
	// MTU of the overlay; 0 means the underlay interface's MTU minus 50.
	MTU int
	// Internal is carried for the caller; the datapath itself does nothing
	// different (tasks' outside access is the node-local bridge's, not the
	// overlay's).
	Internal bool
}

func (n *Network) validate() error {
	if err := validID(n.ID); err != nil {
		return err
	}
	if n.VNI == 0 || n.VNI >= 1<<24 {
		return errdefs.InvalidArgument("network %s: VNI %d out of range 1..16777215", n.ID, n.VNI)
	}
	if !n.Subnet.IsValid() || !n.Subnet.Addr().Is4() {
		return errdefs.InvalidArgument("network %s: subnet %q is not an IPv4 prefix", n.ID, n.Subnet)
	}
	n.Subnet = n.Subnet.Masked()
	if !n.Gateway.IsValid() || !n.Subnet.Contains(n.Gateway.Unmap()) {
		return errdefs.InvalidArgument("network %s: gateway %q is not inside subnet %s", n.ID, n.Gateway, n.Subnet)
	}
	n.Gateway = n.Gateway.Unmap()
	if n.MTU != 0 && (n.MTU < 576 || n.MTU > 65535-vxlanOverhead) {
		return errdefs.InvalidArgument("network %s: MTU %d out of range 576..%d (0 means the underlay's MTU minus 50)", n.ID, n.MTU, 65535-vxlanOverhead)
	}
	return nil
}

func validID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") || len(id) > 200 {
		return errdefs.InvalidArgument("network id %q is not usable as a file name (non-empty, no '/', at most 200 bytes)", id)
	}
	return nil
}

// Peer is a remote endpoint of a network: an address on the overlay, its MAC
// and the VTEP (data-path address) of the node it lives on.
type Peer struct {
	IP   netip.Addr
	MAC  net.HardwareAddr
	VTEP netip.Addr
}

// linkName is prefix + kind + 10 hex digits of a hash of parts: stable, so
// a link is found again after a restart without any state, and at most 15
// bytes.
func (c *Config) linkName(kind byte, parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return c.LinkPrefix + string(kind) + hex.EncodeToString(h[:])[:10]
}

// tmpVxlanName is vx0's name in the daemon's namespace between its creation
// and its move into the network's namespace.
func (c *Config) tmpVxlanName(netID string) string { return c.linkName('x', netID) }

// hostVethName is the network-namespace end of a task's veth.
func (c *Config) hostVethName(netID, taskNetns, ifName string) string {
	return c.linkName('v', netID, taskNetns, ifName)
}

// tmpPeerName is the task end's name until it is renamed to ifName inside
// the task's namespace.
func (c *Config) tmpPeerName(netID, taskNetns, ifName string) string {
	return c.linkName('t', netID, taskNetns, ifName)
}
