package allocator

import (
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/internal/ids"
	"github.com/shoal-project/shoal/internal/specs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// ensureIngress returns the ingress network, creating it when there is
// none (a cluster made before the routing mesh, or whose ingress network
// was removed): a service publishes an ingress port. On failure it returns
// nil and the reason, which holds the service's new tasks.
func (a *Allocator) ensureIngress(tx *raftstore.Tx) (*api.Network, string) {
	if a.st.ingressID != "" {
		if n := tx.Network(a.st.ingressID); n != nil {
			return n, ""
		}
	}
	if n := IngressNetwork(tx.ReadTx); n != nil {
		a.st.addNetwork(n, func(string) {})
		return n, ""
	}
	n, err := NewIngressNetwork(tx.ReadTx, ids.New())
	if err == nil {
		err = tx.Create(n)
	}
	if err != nil {
		msg := "the ingress network is missing and could not be created: " + err.Error()
		a.log.Error("no ingress network for published ports", "err", err)
		return nil, msg
	}
	a.log.Info("created the ingress network for published ports", "id", n.Id, "subnet", n.Ipam[0].Subnet, "vni", n.Vni)
	a.st.addNetwork(n, func(string) {})
	return n, ""
}

// portsFor returns the ports svc publishes for its current spec: its
// allocated ports when they were made for that spec, else a new
// allocation (a rollback by the orchestrator swaps the spec and leaves the
// ports to the allocator). A port another service took in between is left
// out, with an error logged; the service is looked at again on every
// service change.
func (a *Allocator) portsFor(tx raftstore.ReadTx, svc *api.Service) ([]*api.PortConfig, bool) {
	spec := svc.GetSpec().GetEndpoint()
	if svc.GetEndpoint() != nil && proto.Equal(spec, svc.GetEndpoint().GetSpec()) && len(svc.GetEndpoint().GetPorts()) == len(spec.GetPorts()) {
		return svc.GetEndpoint().GetPorts(), true
	}
	ports, err := AllocatePorts(tx, svc.Id, spec, svc.GetEndpoint())
	if err == nil {
		return ports, true
	}
	// One port at a time: keep those that fit.
	var kept []*api.PortConfig
	for _, p := range spec.GetPorts() {
		try := append(append([]*api.PortConfig(nil), kept...), p)
		got, err := AllocatePorts(tx, svc.Id, &api.EndpointSpec{Mode: spec.GetMode(), Ports: try}, svc.GetEndpoint())
		if err != nil {
			a.log.Error("a port of the service's spec cannot be published", "service", svc.GetSpec().GetAnnotations().GetName(),
				"port", specs.PortName(p.GetPublishedPort(), p.GetProtocol()), "err", err)
			continue
		}
		kept = got
	}
	return kept, false
}
