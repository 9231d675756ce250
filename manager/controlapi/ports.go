package controlapi

import (
	"net/netip"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/specs"
	"github.com/shoal-project/shoal/manager/allocator"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// allocatePorts sets svc.Endpoint to its spec's ports, allocated against
// the other services in tx (see allocator.AllocatePorts), when the spec's
// endpoint differs from the one the endpoint was made for. A service
// without an endpoint spec keeps what it has. It runs in the transaction
// that writes the spec: the ports change with the spec, or neither does.
func allocatePorts(tx raftstore.ReadTx, svc *api.Service) error {
	if svc.GetSpec().GetEndpoint() == nil && svc.GetEndpoint() == nil {
		return nil
	}
	if proto.Equal(svc.GetSpec().GetEndpoint(), svc.GetEndpoint().GetSpec()) && svc.GetEndpoint() != nil {
		return nil
	}
	ep, err := allocator.PortsOf(tx, svc)
	if err != nil {
		return err
	}
	svc.Endpoint = ep
	return nil
}

// ingressPublishers names the services that publish an ingress port.
func ingressPublishers(tx raftstore.ReadTx) []string {
	var out []string
	for _, svc := range tx.Services() {
		if specs.PublishesIngress(svc.GetEndpoint().GetPorts()) || specs.PublishesIngress(svc.GetSpec().GetEndpoint().GetPorts()) {
			out = append(out, serviceName(svc))
		}
	}
	sort.Strings(out)
	return out
}

// ingressInUse is the error of removing the ingress network while
// services publish ingress ports.
func ingressInUse(n *api.Network, users []string) error {
	return errdefs.FailedPrecondition("network %s is the ingress network and service %s publishes ports through it: remove those ports first (`shoal service update --publish-rm PORT SERVICE`) or the services",
		networkName(n), joinNames(users))
}

// lockPorts takes s.portMu when on and returns its release. The store's
// transactions are optimistic (built on a snapshot, checked at apply by
// the versions of what they write), so two service creates that read the
// same free port would both commit; the Control API runs on the leader
// only, and serializing its port-publishing writes (build and commit)
// closes that race. Writes without ports do not wait.
func (s *Server) lockPorts(on bool) func() {
	if !on {
		return func() {}
	}
	s.portMu.Lock()
	return s.portMu.Unlock
}

// checkIngressCapacity refuses a new service that publishes an ingress
// port when the ingress network cannot hold its replicas' addresses, its
// VIP and the ready nodes that have none there yet (Docker's /24 ingress
// holds 253): its tasks would wait in NEW.
func checkIngressCapacity(tx raftstore.ReadTx, spec *api.ServiceSpec) error {
	if !specs.PublishesIngress(spec.GetEndpoint().GetPorts()) {
		return nil
	}
	in := allocator.IngressNetwork(tx)
	if in == nil || len(in.GetIpam()) == 0 {
		return nil // made with the allocator's defaults later
	}
	var replicas uint64
	switch m := spec.GetMode().(type) {
	case *api.ServiceSpec_Replicated:
		replicas = m.Replicated.GetReplicas()
	case *api.ServiceSpec_ReplicatedJob:
		replicas = max(m.ReplicatedJob.GetMaxConcurrent(), 1)
	}
	nodes := uint64(0)
	for _, n := range tx.Nodes() {
		if n.GetStatus().GetState() != api.NodeStatus_READY {
			continue
		}
		attached := false
		for _, a := range n.GetAttachments() {
			attached = attached || a.GetNetworkId() == in.Id
		}
		if !attached {
			nodes++
		}
	}
	if spec.IsGlobal() {
		replicas = uint64(len(tx.Nodes()))
	}
	ipam := in.Ipam[0]
	sub, err1 := netip.ParsePrefix(ipam.GetSubnet())
	rng, err2 := netip.ParsePrefix(ipam.GetRange())
	gw, err3 := netip.ParseAddr(ipam.GetGateway())
	if err1 != nil || err2 != nil || err3 != nil {
		return nil
	}
	free := max(specs.UsableAddrs(sub, rng, gw)-heldAddresses(tx)[in.Id], 0)
	if need := replicas + 1 + nodes; uint64(free) < need {
		return errdefs.InvalidArgument("the ingress network %s (%s) has %d free addresses; service %s needs %d (%d tasks, a virtual IP, %d nodes): publish in host mode (mode=host), or remove the ingress network and create a larger one (`shoal network create -d overlay --ingress --subnet 10.0.0.0/20 ingress`)",
			networkName(in), sub, free, spec.GetAnnotations().GetName(), need, replicas, nodes)
	}
	return nil
}
