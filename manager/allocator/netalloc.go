package allocator

import (
	"net/netip"
	"strings"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/specs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// FirstVNI is the lowest VXLAN ID given to a network. The ingress network,
// made first at `swarm init`, gets it; others take the lowest free one.
const FirstVNI = 4096

// Ingress network defaults (Docker's).
const (
	IngressName = "ingress"
	// IngressSubnet is taken when it is inside the cluster's address pool
	// and overlaps nothing; else the pool's first free block.
	IngressSubnet = "10.0.0.0/24"
)

// takenSubnet is a subnet already in use, and by whom ("network x",
// "node y's local subnet").
type takenSubnet struct {
	prefix netip.Prefix
	owner  string
}

// takenSubnets lists the subnets of every network and every node's local
// task bridge.
func takenSubnets(tx raftstore.ReadTx) []takenSubnet {
	var out []takenSubnet
	for _, n := range tx.Networks() {
		cfgs := n.GetIpam()
		if len(cfgs) == 0 { // older networks: what their spec asked
			cfgs = n.GetSpec().GetIpam()
		}
		for _, c := range cfgs {
			if p, err := netip.ParsePrefix(c.GetSubnet()); err == nil {
				out = append(out, takenSubnet{p.Masked(), "network " + netName(n)})
			}
		}
	}
	for _, node := range tx.Nodes() {
		if p, err := netip.ParsePrefix(node.GetLocalSubnet()); err == nil {
			name := node.GetDescription().GetHostname()
			if name == "" {
				name = node.Id
			}
			out = append(out, takenSubnet{p.Masked(), "the local task subnet of node " + name})
		}
	}
	return out
}

func overlapping(p netip.Prefix, taken []takenSubnet) *takenSubnet {
	for i := range taken {
		if p.Overlaps(taken[i].prefix) {
			return &taken[i]
		}
	}
	return nil
}

// clusterPools returns the cluster's address pools and subnet size,
// validated.
func clusterPools(tx raftstore.ReadTx) ([]netip.Prefix, int, error) {
	var pools []string
	var size uint32
	if cs := tx.Clusters(); len(cs) > 0 {
		pools, size = cs[0].GetSpec().GetDefaultAddressPool(), cs[0].GetSpec().GetSubnetSize()
	}
	prefixes, bits, err := specs.ValidateAddressPools(pools, size)
	if err != nil {
		return nil, 0, errdefs.FailedPrecondition("the cluster's default address pool is invalid: %v", err)
	}
	return prefixes, bits, nil
}

// AllocateNetwork fills a new network's allocated IPAM (its subnet, or the
// next free block of the cluster's address pools), gateway, range, MTU
// and VNI, refusing subnets that overlap another network or a node's local
// subnet. The Control API calls it in the transaction that creates the
// network.
func AllocateNetwork(tx raftstore.ReadTx, nw *api.Network, params specs.NetworkParams) error {
	taken := takenSubnets(tx)
	sub := params.Subnet
	if sub.IsValid() {
		if o := overlapping(sub, taken); o != nil {
			return errdefs.InvalidArgument("subnet %s overlaps %s of %s: choose another --subnet", sub, o.prefix, o.owner)
		}
	} else {
		prefixes, bits, err := clusterPools(tx)
		if err != nil {
			return err
		}
		sub = netip.Prefix{}
		if nw.GetSpec().GetIngress() {
			// Docker's ingress subnet when the pool holds it and it is free.
			def := netip.MustParsePrefix(IngressSubnet)
			for _, p := range prefixes {
				if p.Contains(def.Addr()) && p.Bits() <= def.Bits() && overlapping(def, taken) == nil {
					sub = def
					break
				}
			}
		}
		if !sub.IsValid() {
			if sub, err = cutSubnet(prefixes, bits, taken); err != nil {
				return err
			}
		}
	}
	gw := params.Gateway
	if !gw.IsValid() {
		gw = specs.FirstHost(sub)
	}
	rng := params.Range
	if !rng.IsValid() {
		rng = sub
	}
	if specs.UsableAddrs(sub, rng, gw) < 1 {
		return errdefs.InvalidArgument("ip-range %s leaves no address for tasks in subnet %s", rng, sub)
	}
	nw.Ipam = []*api.IPAMConfig{{Subnet: sub.String(), Range: rng.String(), Gateway: gw.String()}}
	nw.Mtu = params.MTU
	used := map[uint32]bool{}
	for _, other := range tx.Networks() {
		used[other.GetVni()] = true
	}
	nw.Vni = FirstVNI
	for used[nw.Vni] {
		nw.Vni++
	}
	return nil
}

// cutSubnet returns the first block of the given size in the pools that
// overlaps nothing taken.
func cutSubnet(pools []netip.Prefix, bits int, taken []takenSubnet) (netip.Prefix, error) {
	for _, pool := range pools {
		step := uint64(1) << (32 - bits)
		start := uint64(specs.AddrToUint32(pool.Addr()))
		end := uint64(specs.AddrToUint32(specs.LastAddr(pool)))
		for a := start; a+step-1 <= end; {
			p := netip.PrefixFrom(specs.AddrFromUint32(uint32(a)), bits)
			o := overlapping(p, taken)
			if o == nil {
				return p, nil
			}
			// Skip past the block in the way.
			next := uint64(specs.AddrToUint32(specs.LastAddr(o.prefix))) + 1
			if next <= a {
				next = a + step
			}
			a = (next + step - 1) / step * step
		}
	}
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = p.String()
	}
	return netip.Prefix{}, errdefs.FailedPrecondition("the default address pool %s has no free /%d subnet left: remove unused networks or give --subnet", strings.Join(names, ", "), bits)
}

// NewIngressNetwork returns the cluster's default ingress network (named
// "ingress", overlay, spec.ingress, Docker's 10.0.0.0/24 when free and in
// the pool, else the pool's first free block; the lowest free VNI, 4096 in
// a new cluster), allocated against what tx holds, for the caller to
// create. It fails when the name is taken by another network.
func NewIngressNetwork(tx raftstore.ReadTx, id string) (*api.Network, error) {
	if other := tx.NetworkByName(IngressName); other != nil {
		return nil, errdefs.FailedPrecondition("a network named %s exists that is not the ingress network: rename its services' use or remove it, then create one with `shoal network create --ingress -d overlay ingress`", IngressName)
	}
	nw := &api.Network{Id: id, Spec: &api.NetworkSpec{
		Annotations: &api.Annotations{Name: IngressName},
		Driver:      &api.Driver{Name: "overlay"},
		Ingress:     true,
	}}
	if err := AllocateNetwork(tx, nw, specs.NetworkParams{}); err != nil {
		return nil, err
	}
	return nw, nil
}

// IngressNetwork returns the cluster's ingress network, nil if none.
func IngressNetwork(tx raftstore.ReadTx) *api.Network {
	for _, n := range tx.Networks() {
		if n.GetSpec().GetIngress() {
			return n
		}
	}
	return nil
}
