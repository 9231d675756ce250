package controlapi

import (
	"context"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/specs"
	"github.com/shoal-project/shoal/manager/allocator"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

func networkName(n *api.Network) string { return n.GetSpec().GetAnnotations().GetName() }

// CreateNetwork validates an overlay network's spec and records it with
// its allocation (subnet, gateway, range, VNI, MTU), all in one write.
func (s *Server) CreateNetwork(ctx context.Context, req *api.CreateNetworkRequest) (*api.CreateNetworkResponse, error) {
	spec := proto.Clone(req.GetSpec()).(*api.NetworkSpec)
	if err := specs.CheckUTF8("network spec", spec); err != nil {
		return nil, err
	}
	if err := specs.CheckAnnotations("network", spec.GetAnnotations()); err != nil {
		return nil, err
	}
	params, err := specs.ValidateNetwork(spec)
	if err != nil {
		return nil, err
	}
	if spec.Driver == nil {
		spec.Driver = &api.Driver{Name: "overlay"}
	}
	if spec.Driver.Name == "" {
		spec.Driver.Name = "overlay"
	}
	nw := &api.Network{Id: s.newID(), Spec: spec}
	err = s.store.Update(ctx, func(tx *raftstore.Tx) error {
		if old := tx.NetworkByName(networkName(nw)); old != nil {
			if old.GetPendingDelete() {
				return errdefs.AlreadyExists("network with name %s already exists: it is being removed and goes once the tasks of its removed services have stopped; try again in a few seconds", networkName(nw))
			}
			return errdefs.AlreadyExists("network with name %s already exists", networkName(nw))
		}
		for _, other := range tx.Networks() {
			if spec.Ingress && other.Spec.GetIngress() {
				return errdefs.FailedPrecondition("an ingress network already exists (%s)", networkName(other))
			}
		}
		if err := allocator.AllocateNetwork(tx.ReadTx, nw, params); err != nil {
			return err
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
		return nil, errdefs.NotFound("network %s not found", refText(req.GetNetworkId()))
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
			if n.GetPendingDelete() {
				continue // removed; deleted once its last tasks stop
			}
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

// RemoveNetwork removes a network no service uses. While tasks of removed
// services still hold addresses on it (they are stopping), the network is
// marked pending delete instead: hidden from lists, refused to services and
// to a new network of its name, and deleted by the allocator once the last
// of those tasks has stopped (as Docker's swarm does, so `docker stack rm`
// succeeds without waiting). The ingress network is removed only once no
// task holds an address on it.
func (s *Server) RemoveNetwork(ctx context.Context, req *api.RemoveNetworkRequest) (*api.RemoveNetworkResponse, error) {
	err := s.update(ctx, func(tx *raftstore.Tx) error {
		n, err := raftstore.Lookup(tx.ReadTx, raftstore.KindNetwork, req.GetNetworkId(), networkName)
		if err != nil {
			return err
		}
		if n.GetPendingDelete() {
			return nil // already being removed
		}
		if n.GetSpec().GetIngress() {
			if users := ingressPublishers(tx.ReadTx); len(users) > 0 {
				return ingressInUse(n, users)
			}
			if users := networkUsers(tx.ReadTx, n); len(users) > 0 {
				return errdefs.FailedPrecondition("network %s still has addresses held by tasks of service %s that have not stopped yet: try again once they have",
					networkName(n), joinNames(users))
			}
			return tx.Delete(unversioned(n))
		}
		if users := networkServices(tx.ReadTx, n); len(users) > 0 {
			return inUse(n, users)
		}
		if users := networkUsers(tx.ReadTx, n); len(users) > 0 {
			next := proto.Clone(n).(*api.Network)
			next.PendingDelete = true
			return tx.Update(next)
		}
		return tx.Delete(unversioned(n))
	})
	if err != nil {
		return nil, err
	}
	return &api.RemoveNetworkResponse{}, nil
}
