package controlapi

import (
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
