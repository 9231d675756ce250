package allocator

import (
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/specs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

type portKey struct {
	proto api.PortConfig_Protocol
	port  uint32
}

// portUse is another service's claim on a published port.
type portUse struct {
	service string
	ingress bool
}

// publishedPorts lists the published ports of every service but except,
// its allocated ports and its spec's fixed ones (a spec just rolled back
// by the orchestrator claims its ports before the allocator writes them).
// An ingress claim wins over a host-mode one for the same key.
func publishedPorts(tx raftstore.ReadTx, except string) map[portKey]portUse {
	used := map[portKey]portUse{}
	add := func(svc *api.Service, p *api.PortConfig) {
		if p.GetPublishedPort() == 0 {
			return
		}
		k := portKey{p.GetProtocol(), p.GetPublishedPort()}
		ingress := p.GetPublishMode() == api.PortConfig_INGRESS
		if cur, ok := used[k]; ok && (cur.ingress || !ingress) {
			return
		}
		used[k] = portUse{svc.GetSpec().GetAnnotations().GetName(), ingress}
	}
	for _, svc := range tx.Services() {
		if svc.Id == except {
			continue
		}
		for _, p := range svc.GetEndpoint().GetPorts() {
			add(svc, p)
		}
		for _, p := range svc.GetSpec().GetEndpoint().GetPorts() {
			add(svc, p)
		}
	}
	return used
}

// AllocatePorts returns the published ports of service svcID for endpoint
// spec (what Service.endpoint.ports holds): the spec's ports in order, each
// ingress port published as 0 given one, kept from cur (the service's
// current endpoint) when cur has a port of the same name, protocol, target
// and mode, else the lowest free one of 30000-32767. Host-mode ports
// published as 0 stay 0 (the node picks one, as Docker's does). It refuses,
// naming the other service, a published port that another service
// publishes in ingress mode, or that another service publishes in host
// mode while this one publishes it in ingress mode. Callers check the spec
// first (specs.ValidatePorts) and write the result in the same transaction
// as the spec, so that two writes cannot both take a port.
func AllocatePorts(tx raftstore.ReadTx, svcID string, spec *api.EndpointSpec, cur *api.Endpoint) ([]*api.PortConfig, error) {
	if len(spec.GetPorts()) == 0 {
		return nil, nil
	}
	used := publishedPorts(tx, svcID)
	own := map[portKey]bool{}
	for _, p := range spec.GetPorts() {
		if p.GetPublishedPort() == 0 {
			continue
		}
		k := portKey{p.GetProtocol(), p.GetPublishedPort()}
		own[k] = true
		other, ok := used[k]
		if !ok {
			continue
		}
		ingress := p.GetPublishMode() == api.PortConfig_INGRESS
		switch {
		case other.ingress:
			return nil, errdefs.InvalidArgument("port %s is already published by service %s: publish another port, or remove it from %s first",
				specs.PortName(k.port, k.proto), other.service, other.service)
		case ingress:
			return nil, errdefs.InvalidArgument("port %s is already published by service %s (host mode); an ingress port is served on every node: publish another port, or remove it from %s first",
				specs.PortName(k.port, k.proto), other.service, other.service)
		}
	}
	out := make([]*api.PortConfig, len(spec.GetPorts()))
	var dynamic []int
	reused := map[int]bool{}
	for i, p := range spec.GetPorts() {
		out[i] = proto.Clone(p).(*api.PortConfig)
		if p.GetPublishedPort() != 0 || p.GetPublishMode() != api.PortConfig_INGRESS {
			continue
		}
		// Keep the port an earlier allocation gave the same port spec.
		kept := false
		for j, c := range cur.GetPorts() {
			k := portKey{c.GetProtocol(), c.GetPublishedPort()}
			if reused[j] || c.GetPublishedPort() == 0 || own[k] || c.GetName() != p.GetName() || c.GetProtocol() != p.GetProtocol() ||
				c.GetTargetPort() != p.GetTargetPort() || c.GetPublishMode() != api.PortConfig_INGRESS {
				continue
			}
			if _, taken := used[k]; taken {
				continue
			}
			reused[j], own[k], kept = true, true, true
			out[i].PublishedPort = c.GetPublishedPort()
			break
		}
		if !kept {
			dynamic = append(dynamic, i)
		}
	}
	next := uint32(specs.DynamicPortStart)
	for _, i := range dynamic {
		p := out[i]
		for ; next <= specs.DynamicPortEnd; next++ {
			k := portKey{p.GetProtocol(), next}
			if _, taken := used[k]; !taken && !own[k] {
				break
			}
		}
		if next > specs.DynamicPortEnd {
			return nil, errdefs.FailedPrecondition("no free port left in %d-%d for target port %d/%s: publish it on a port of your choice (published=PORT)",
				specs.DynamicPortStart, specs.DynamicPortEnd, p.GetTargetPort(), specs.ProtoName(p.GetProtocol()))
		}
		p.PublishedPort = next
		own[portKey{p.GetProtocol(), next}] = true
		// The scan restarts per protocol: tcp and udp numbers are apart.
		next = specs.DynamicPortStart
	}
	return out, nil
}

// PortsOf returns svc's endpoint after its spec's ports are allocated
// (VIPs kept), or an error naming a conflict. The Control API writes it
// with the spec, in one transaction.
func PortsOf(tx raftstore.ReadTx, svc *api.Service) (*api.Endpoint, error) {
	ports, err := AllocatePorts(tx, svc.Id, svc.GetSpec().GetEndpoint(), svc.GetEndpoint())
	if err != nil {
		return nil, err
	}
	ep := &api.Endpoint{Ports: ports}
	if svc.GetEndpoint() != nil {
		ep.VirtualIps = svc.Endpoint.VirtualIps
	}
	if s := svc.GetSpec().GetEndpoint(); s != nil {
		ep.Spec = proto.Clone(s).(*api.EndpointSpec)
	}
	return ep, nil
}
