package specs

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// Network driver options and limits.
const (
	// OptionMTU is the driver option giving an overlay network's MTU.
	OptionMTU = "com.docker.network.driver.mtu"
	// OptionEncrypted asks for an encrypted overlay (not supported yet).
	OptionEncrypted = "encrypted"
	MinNetworkMTU   = 576
	MaxNetworkMTU   = 9000
	// DefaultAddressPool and DefaultSubnetSize are a cluster's defaults
	// for subnets cut for networks created without --subnet.
	DefaultAddressPool = "10.0.0.0/8"
	DefaultSubnetSize  = 24
	// MaxSubnetSize is the longest prefix a pool may be cut into (a /29
	// holds 5 task addresses).
	MaxSubnetSize = 29
	// DefaultDataPathPort is VXLAN's IANA port, used when the cluster
	// spec's data_path_port is 0.
	DefaultDataPathPort = 4789
)

// NetworkParams is what ValidateNetwork read from a network spec. Zero
// fields were not given: the subnet is then cut from the cluster's address
// pool, the range is the whole subnet, the gateway the first host address.
type NetworkParams struct {
	Subnet  netip.Prefix
	Range   netip.Prefix
	Gateway netip.Addr
	MTU     uint32
}

// ValidateNetwork checks a swarm network spec: the overlay driver only, no
// encryption (not built yet), at most one IPv4 subnet that is canonical, a
// gateway and an ip-range inside it, an MTU option in 576..9000.
func ValidateNetwork(spec *api.NetworkSpec) (NetworkParams, error) {
	var p NetworkParams
	if d := spec.GetDriver().GetName(); d != "" && d != "overlay" {
		return p, errdefs.InvalidArgument("network driver %q is not supported for swarm networks: use -d overlay", d)
	}
	enc := spec.GetEncrypted()
	if v, ok := spec.GetDriver().GetOptions()[OptionEncrypted]; ok && v != "false" {
		enc = true
	}
	if enc {
		return p, errdefs.InvalidArgument("encrypted overlay networks are not supported yet: shoal does not run unencrypted traffic on a network asked to be encrypted")
	}
	if spec.GetIpv6() {
		return p, errdefs.InvalidArgument("IPv6 overlay networks are not supported yet: create the network without --ipv6")
	}
	if v, ok := spec.GetDriver().GetOptions()[OptionMTU]; ok {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil || n < MinNetworkMTU || n > MaxNetworkMTU {
			return p, errdefs.InvalidArgument("invalid %s %q: give an integer from %d to %d", OptionMTU, v, MinNetworkMTU, MaxNetworkMTU)
		}
		p.MTU = uint32(n)
	}
	ipam := spec.GetIpam()
	if len(ipam) > 1 {
		return p, errdefs.InvalidArgument("%d subnets given: a swarm network takes one --subnet", len(ipam))
	}
	if len(ipam) == 0 {
		return p, nil
	}
	c := ipam[0]
	if c.GetSubnet() == "" {
		if c.GetGateway() != "" || c.GetRange() != "" {
			return p, errdefs.InvalidArgument("--gateway and --ip-range need --subnet")
		}
		return p, nil
	}
	sub, err := ParseSubnet("subnet", c.GetSubnet())
	if err != nil {
		return p, err
	}
	if sub.Bits() > 30 {
		return p, errdefs.InvalidArgument("subnet %s is too small: a network needs at least a /30", sub)
	}
	p.Subnet = sub
	if c.GetRange() != "" {
		r, err := ParseSubnet("ip-range", c.GetRange())
		if err != nil {
			return p, err
		}
		if r.Bits() < sub.Bits() || !sub.Contains(r.Addr()) {
			return p, errdefs.InvalidArgument("ip-range %s is not inside subnet %s", r, sub)
		}
		p.Range = r
	}
	if c.GetGateway() != "" {
		gw, err := netip.ParseAddr(c.GetGateway())
		if err != nil || !gw.Is4() {
			return p, errdefs.InvalidArgument("invalid gateway %q: give an IPv4 address", c.GetGateway())
		}
		if !sub.Contains(gw) {
			return p, errdefs.InvalidArgument("gateway %s is not inside subnet %s", gw, sub)
		}
		if gw == sub.Addr() || gw == LastAddr(sub) {
			return p, errdefs.InvalidArgument("gateway %s is the network or broadcast address of subnet %s: use a host address", gw, sub)
		}
		p.Gateway = gw
	}
	return p, nil
}

// ParseSubnet parses an IPv4 CIDR that must be canonical (host bits zero);
// what names the field in errors.
func ParseSubnet(what, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, errdefs.InvalidArgument("invalid %s %q: give an IPv4 CIDR like 10.0.9.0/24", what, s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, errdefs.InvalidArgument("invalid %s %s: only IPv4 is supported", what, p)
	}
	if p.Masked() != p {
		return netip.Prefix{}, errdefs.InvalidArgument("invalid %s %s: host bits are set; did you mean %s?", what, p, p.Masked())
	}
	return p, nil
}

// ValidateAddressPools checks a cluster's default address pools and subnet
// size (swarm init --default-addr-pool, --default-addr-pool-mask-length):
// canonical IPv4 CIDRs that do not overlap, and a size from the longest
// pool prefix to 29. Empty pools and a zero size mean the defaults.
func ValidateAddressPools(pools []string, size uint32) ([]netip.Prefix, int, error) {
	if len(pools) == 0 {
		pools = []string{DefaultAddressPool}
	}
	n := int(size)
	if n == 0 {
		n = DefaultSubnetSize
	}
	var out []netip.Prefix
	for _, s := range pools {
		p, err := ParseSubnet("default address pool", s)
		if err != nil {
			return nil, 0, err
		}
		for _, o := range out {
			if p.Overlaps(o) {
				return nil, 0, errdefs.InvalidArgument("default address pools %s and %s overlap", o, p)
			}
		}
		if n < p.Bits() || n > MaxSubnetSize {
			return nil, 0, errdefs.InvalidArgument("subnet size /%d does not fit pool %s: give a mask length from %d to %d", n, p, p.Bits(), MaxSubnetSize)
		}
		out = append(out, p)
	}
	return out, n, nil
}

// ValidateDataPathPort checks --data-path-port: 0 (4789) or 1024..49151.
func ValidateDataPathPort(port uint32) error {
	if port != 0 && (port < 1024 || port > 49151) {
		return errdefs.InvalidArgument("data path port %d is out of range: give a port from 1024 to 49151 (default %d)", port, DefaultDataPathPort)
	}
	return nil
}

// LastAddr is the last (broadcast) address of an IPv4 prefix.
func LastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (uint32(1)<<(32-p.Bits()) - 1)
	return AddrFromUint32(v)
}

// FirstHost is the first host address of an IPv4 prefix (the default
// gateway).
func FirstHost(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// AddrToUint32 and AddrFromUint32 convert IPv4 addresses.
func AddrToUint32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// AddrFromUint32 is the IPv4 address v.
func AddrFromUint32(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// UsableAddrs counts the addresses tasks can get in a network: those of
// rng (the subnet when rng is zero) minus the subnet's network and
// broadcast addresses and the gateway.
func UsableAddrs(subnet, rng netip.Prefix, gw netip.Addr) int {
	if !rng.IsValid() {
		rng = subnet
	}
	n := 1 << (32 - rng.Bits())
	for _, a := range []netip.Addr{subnet.Addr(), LastAddr(subnet), gw} {
		if a.IsValid() && rng.Contains(a) {
			n--
		}
	}
	return max(n, 0)
}
