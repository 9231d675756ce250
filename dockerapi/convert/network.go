package convert

import (
	"maps"
	"net/netip"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// Driver options Docker shows on overlay networks.
const (
	OptVXLANIDs  = "com.docker.network.driver.overlay.vxlanid_list"
	OptMTU       = "com.docker.network.driver.mtu"
	OptEncrypted = "encrypted"

	driverOverlay = "overlay"
	ipamDefault   = "default"
	scopeSwarm    = "swarm"
)

// ipamConfigs returns the allocated subnets once the allocator has run,
// else those the spec asks for.
func ipamConfigs(n *api.Network) []*api.IPAMConfig {
	if len(n.GetIpam()) > 0 {
		return n.GetIpam()
	}
	return n.GetSpec().GetIpam()
}

func swarmIPAM(cs []*api.IPAMConfig) []swarm.IPAMConfig {
	var out []swarm.IPAMConfig
	for _, c := range cs {
		var x swarm.IPAMConfig
		x.Subnet, _ = netip.ParsePrefix(c.GetSubnet())
		x.Range, _ = netip.ParsePrefix(c.GetRange())
		x.Gateway, _ = netip.ParseAddr(c.GetGateway())
		out = append(out, x)
	}
	return out
}

// specOptions is the spec's driver options as Docker keeps them: shoal's
// Encrypted flag is Docker's "encrypted" option.
func specOptions(s *api.NetworkSpec) map[string]string {
	out := copyMap(s.GetDriver().GetOptions())
	if s.GetEncrypted() {
		if out == nil {
			out = map[string]string{}
		}
		out[OptEncrypted] = ""
	}
	return out
}

// driverOptions is what Docker shows as a network's Options: the spec's
// plus the VXLAN ID and MTU the allocator chose.
func driverOptions(n *api.Network) map[string]string {
	out := map[string]string{}
	maps.Copy(out, specOptions(n.GetSpec()))
	if n.GetVni() != 0 {
		out[OptVXLANIDs] = strconv.FormatUint(uint64(n.GetVni()), 10)
	}
	if n.GetMtu() != 0 {
		out[OptMTU] = strconv.FormatUint(uint64(n.GetMtu()), 10)
	}
	return out
}

func driverName(s *api.NetworkSpec) string {
	if d := s.GetDriver().GetName(); d != "" {
		return d
	}
	return driverOverlay
}

// NetworkToMoby returns the swarm view of n (as in a task's
// NetworksAttachments and Docker's swarm network objects).
func NetworkToMoby(n *api.Network) swarm.Network {
	s := n.GetSpec()
	out := swarm.Network{
		ID:   n.GetId(),
		Meta: Meta(n.GetMeta()),
		Spec: swarm.NetworkSpec{
			Annotations:         annotationsToMoby(s.GetAnnotations()),
			DriverConfiguration: &swarm.Driver{Name: driverName(s), Options: specOptions(s)},
			IPv6Enabled:         s.GetIpv6(),
			Internal:            s.GetInternal(),
			Attachable:          s.GetAttachable(),
			Ingress:             s.GetIngress(),
			Scope:               scopeSwarm,
		},
		DriverState: swarm.Driver{Name: driverName(s), Options: driverOptions(n)},
	}
	// Docker's CLI always sends IPAM {"Driver": "default"}, which the
	// daemon keeps in the spec.
	out.Spec.IPAMOptions = &swarm.IPAMOptions{Driver: swarm.Driver{Name: ipamDefault}, Configs: swarmIPAM(s.GetIpam())}
	if cs := ipamConfigs(n); len(cs) > 0 {
		out.IPAMOptions = &swarm.IPAMOptions{Driver: swarm.Driver{Name: ipamDefault}, Configs: swarmIPAM(cs)}
	}
	return out
}

// NetworkInspectToMoby returns what GET /networks/{id} answers for a
// swarm-scope network. Containers is empty and not nil, as Docker prints
// it for a network seen from a manager.
func NetworkInspectToMoby(n *api.Network) network.Inspect {
	return network.Inspect{Network: networkToMoby(n), Containers: map[string]network.EndpointResource{}}
}

// NetworkSummaryToMoby returns one entry of GET /networks.
func NetworkSummaryToMoby(n *api.Network) network.Summary {
	return network.Summary{Network: networkToMoby(n)}
}

func networkToMoby(n *api.Network) network.Network {
	s := n.GetSpec()
	out := network.Network{
		Name:       s.GetAnnotations().GetName(),
		ID:         n.GetId(),
		Created:    Time(n.GetMeta().GetCreatedAt()),
		Scope:      scopeSwarm,
		Driver:     driverName(s),
		EnableIPv4: true,
		EnableIPv6: s.GetIpv6(),
		IPAM:       network.IPAM{Driver: ipamDefault, Config: []network.IPAMConfig{}},
		Internal:   s.GetInternal(),
		Attachable: s.GetAttachable(),
		Ingress:    s.GetIngress(),
		Options:    driverOptions(n),
		Labels:     labelsOut(s.GetAnnotations().GetLabels()),
	}
	for _, c := range swarmIPAM(ipamConfigs(n)) {
		out.IPAM.Config = append(out.IPAM.Config, network.IPAMConfig{Subnet: c.Subnet, IPRange: c.Range, Gateway: c.Gateway})
	}
	return out
}

// NetworkCreateRequest is the body of POST /networks/create: Docker's
// CreateRequest plus CheckDuplicate, which clients of API < 1.44 send (the
// docker 20.10 CLI, docker-py 5) and Docker ignores since; with it, strict
// decoding (DisallowUnknownFields) accepts their bodies. Names are unique
// in shoal whatever CheckDuplicate says.
type NetworkCreateRequest struct {
	network.CreateRequest
	CheckDuplicate *bool `json:",omitempty"`
}

// NetworkSpecFromCreate returns shoal's spec for a network create request,
// or an error naming the first field shoal cannot honour.
func NetworkSpecFromCreate(r NetworkCreateRequest) (*api.NetworkSpec, error) {
	if strings.TrimSpace(r.Name) == "" {
		return nil, invalid("Name", "a network needs a name")
	}
	if r.Driver != driverOverlay {
		return nil, errdefs.Newf(errdefs.ErrInvalidArgument,
			"network driver %q is not supported by shoal: swarm networks use the overlay driver (set Driver to \"overlay\", e.g. docker network create -d overlay)", r.Driver)
	}
	if r.Scope != "" && r.Scope != scopeSwarm {
		return nil, unsupported("Scope "+strconv.Quote(r.Scope), "shoal networks are swarm-scoped; leave Scope empty or \"swarm\"")
	}
	if r.EnableIPv4 != nil && !*r.EnableIPv4 {
		return nil, unsupported("EnableIPv4 false", "overlay networks always have IPv4")
	}
	if r.ConfigOnly {
		return nil, unsupported("ConfigOnly", "config-only networks are a local-scope Docker feature")
	}
	if r.ConfigFrom != nil && r.ConfigFrom.Network != "" {
		return nil, unsupported("ConfigFrom", "config-only networks are a local-scope Docker feature")
	}
	if r.Ingress && r.Attachable {
		return nil, invalid("Attachable", "an ingress network cannot be attachable")
	}
	if r.Ingress && r.Internal {
		return nil, invalid("Internal", "an ingress network cannot be internal")
	}
	spec := &api.NetworkSpec{
		Annotations: &api.Annotations{Name: r.Name, Labels: StackLabelsFromMoby(r.Labels)},
		Driver:      &api.Driver{Name: driverOverlay},
		Ipv6:        r.EnableIPv6 != nil && *r.EnableIPv6,
		Internal:    r.Internal,
		Attachable:  r.Attachable,
		Ingress:     r.Ingress,
	}
	for k, v := range r.Options {
		switch k {
		case OptEncrypted:
			spec.Encrypted = true
			continue
		case OptVXLANIDs:
			return nil, unsupported("Options."+OptVXLANIDs, "the leader's allocator chooses VXLAN IDs")
		case OptMTU:
			if mtu, err := strconv.Atoi(strings.TrimSpace(v)); err != nil || mtu < 68 || mtu > 65535 {
				return nil, invalid("Options."+OptMTU, "%q: the MTU must be a number of bytes from 68 to 65535, e.g. 1400", v)
			}
		}
		if spec.Driver.Options == nil {
			spec.Driver.Options = map[string]string{}
		}
		spec.Driver.Options[k] = v
	}
	if ip := r.IPAM; ip != nil {
		if ip.Driver != "" && ip.Driver != ipamDefault {
			return nil, unsupported("IPAM.Driver "+strconv.Quote(ip.Driver), "shoal's allocator is the only IPAM driver (\"default\")")
		}
		if len(ip.Options) > 0 {
			return nil, unsupported("IPAM.Options", "the default IPAM driver takes no options")
		}
		var subnets []netip.Prefix
		for i, c := range ip.Config {
			p := idx("IPAM.Config", i)
			if len(c.AuxAddress) > 0 {
				return nil, unsupported(p+".AuxiliaryAddresses", "shoal's allocator does not reserve auxiliary addresses")
			}
			if !c.Subnet.IsValid() {
				return nil, invalid(p+".Subnet", "each IPAM config needs a Subnet in CIDR form, e.g. 10.10.0.0/24")
			}
			sub := c.Subnet.Masked()
			for j, o := range subnets {
				if o.Overlaps(sub) {
					return nil, invalid(p+".Subnet", "%s overlaps IPAM.Config[%d].Subnet %s", sub, j, o)
				}
			}
			subnets = append(subnets, sub)
			cfg := &api.IPAMConfig{Subnet: sub.String()}
			if c.IPRange.IsValid() {
				if c.IPRange.Bits() < sub.Bits() || !sub.Contains(c.IPRange.Addr()) {
					return nil, invalid(p+".IPRange", "%s is not inside the subnet %s", c.IPRange, sub)
				}
				cfg.Range = c.IPRange.Masked().String()
			}
			if c.Gateway.IsValid() {
				if !sub.Contains(c.Gateway) {
					return nil, invalid(p+".Gateway", "%s is not inside the subnet %s", c.Gateway, sub)
				}
				cfg.Gateway = c.Gateway.String()
			}
			spec.Ipam = append(spec.Ipam, cfg)
		}
	}
	return spec, nil
}
