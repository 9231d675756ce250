package controlapi

import (
	"context"
	"net/netip"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/specs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

func networkName(n *api.Network) string { return n.GetSpec().GetAnnotations().GetName() }

// CreateNetwork records an overlay network. Its data plane (VXLAN, service
// discovery) arrives with the overlay work; the record, its subnet and its
// VNI are allocated now so stacks can declare networks.
func (s *Server) CreateNetwork(ctx context.Context, req *api.CreateNetworkRequest) (*api.CreateNetworkResponse, error) {
	spec := proto.Clone(req.GetSpec()).(*api.NetworkSpec)
	if err := specs.CheckUTF8("network spec", spec); err != nil {
		return nil, err
	}
	if err := specs.CheckAnnotations("network", spec.GetAnnotations()); err != nil {
		return nil, err
	}
	if d := spec.GetDriver().GetName(); d != "" && d != "overlay" {
		return nil, errdefs.InvalidArgument("network driver %q is not supported: shoal networks use the overlay driver", d)
	}
	if spec.Driver == nil {
		spec.Driver = &api.Driver{Name: "overlay"}
	}
	for _, c := range spec.GetIpam() {
		if c.Subnet == "" {
			continue
		}
		p, err := netip.ParsePrefix(c.Subnet)
		if err != nil {
			return nil, errdefs.InvalidArgument("invalid subnet %q: %v", c.Subnet, err)
		}
		if c.Gateway != "" {
			gw, err := netip.ParseAddr(c.Gateway)
			if err != nil || !p.Contains(gw) {
				return nil, errdefs.InvalidArgument("gateway %q is not an address in subnet %s", c.Gateway, c.Subnet)
			}
		}
	}
	nw := &api.Network{Id: s.newID(), Spec: spec}
	err := s.store.Update(ctx, func(tx *raftstore.Tx) error {
		if tx.NetworkByName(networkName(nw)) != nil {
			return errdefs.AlreadyExists("network with name %s already exists", networkName(nw))
		}
		used := map[uint32]bool{}
		for _, other := range tx.Networks() {
			used[other.Vni] = true
			if spec.Ingress && other.Spec.GetIngress() {
				return errdefs.FailedPrecondition("an ingress network already exists (%s)", networkName(other))
			}
		}
		nw.Vni = 4096
		for used[nw.Vni] {
			nw.Vni++
		}
		return tx.Create(nw)
	})
	if err != nil {
		return nil, err
	}
	var out *api.Network
	s.store.View(func(tx raftstore.ReadTx) { out = tx.Network(nw.Id) })
	return &api.CreateNetworkResponse{Network: out}, nil
}

// GetNetwork returns a network by ID, name or ID prefix.
func (s *Server) GetNetwork(_ context.Context, req *api.GetNetworkRequest) (*api.GetNetworkResponse, error) {
	var out *api.Network
	var err error
	s.store.View(func(tx raftstore.ReadTx) {
		out, err = raftstore.Lookup(tx, raftstore.KindNetwork, req.GetNetworkId(), networkName)
	})
	if errdefs.IsNotFound(err) {
		return nil, errdefs.NotFound("network %s not found", req.GetNetworkId())
	}
	if err != nil {
		return nil, err
	}
	return &api.GetNetworkResponse{Network: out}, nil
}

// ListNetworks lists networks.
func (s *Server) ListNetworks(_ context.Context, req *api.ListNetworksRequest) (*api.ListNetworksResponse, error) {
	var matched []*api.Network
	s.store.View(func(tx raftstore.ReadTx) {
		for _, n := range tx.Networks() {
			if matchCommon(req.GetFilters(), n.Id, networkName(n), n.GetSpec().GetAnnotations().GetLabels()) {
				matched = append(matched, n)
			}
		}
	})
	sort.Slice(matched, func(i, j int) bool { return networkName(matched[i]) < networkName(matched[j]) })
	out := &api.ListNetworksResponse{}
	out.Networks, out.NextPageToken = page(matched, networkName, func(n *api.Network) int { return entrySize(n) }, req.GetPageToken(), s.pageBudget())
	return out, nil
}

// RemoveNetwork deletes a network no service uses.
func (s *Server) RemoveNetwork(ctx context.Context, req *api.RemoveNetworkRequest) (*api.RemoveNetworkResponse, error) {
	err := s.update(ctx, func(tx *raftstore.Tx) error {
		n, err := raftstore.Lookup(tx.ReadTx, raftstore.KindNetwork, req.GetNetworkId(), networkName)
		if err != nil {
			return err
		}
		var users []string
		for _, svc := range tx.Services() {
			for _, a := range svc.GetSpec().GetTask().GetNetworks() {
				if a.Target == n.Id {
					users = append(users, serviceName(svc))
				}
			}
		}
		if len(users) > 0 {
			sort.Strings(users)
			return errdefs.FailedPrecondition("network %s is in use by service %s", networkName(n), joinNames(users))
		}
		return tx.Delete(unversioned(n))
	})
	if err != nil {
		return nil, err
	}
	return &api.RemoveNetworkResponse{}, nil
}
