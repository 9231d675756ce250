package specs

import (
	"fmt"
	"strings"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// Published-port rules of the routing mesh (Docker's).
const (
	// DynamicPortStart..DynamicPortEnd is where an ingress port published
	// as 0 gets its number (the lowest free one).
	DynamicPortStart = 30000
	DynamicPortEnd   = 32767
)

// PortName renders a port as "8080/tcp" (the published number).
func PortName(port uint32, proto api.PortConfig_Protocol) string {
	return fmt.Sprintf("%d/%s", port, strings.ToLower(proto.String()))
}

// ValidatePorts checks an endpoint spec's ports on their own (no other
// service is looked at): target 1..65535, published 0..65535, protocol tcp
// or udp (the routing mesh has no SCTP), mode ingress or host, masquerade
// only on ingress ports, no (published, protocol) twice, and no ingress
// port with endpoint mode dnsrr (Docker refuses it: the mesh balances over
// a VIP).
func ValidatePorts(e *api.EndpointSpec) error {
	seen := map[string]bool{}
	for _, p := range e.GetPorts() {
		if p.GetTargetPort() == 0 || p.GetTargetPort() > 65535 {
			return errdefs.InvalidArgument("invalid target port %d: must be 1-65535", p.GetTargetPort())
		}
		if p.GetPublishedPort() > 65535 {
			return errdefs.InvalidArgument("invalid published port %d: must be 1-65535 (or 0 for a port from %d-%d)", p.GetPublishedPort(), DynamicPortStart, DynamicPortEnd)
		}
		switch p.GetProtocol() {
		case api.PortConfig_TCP, api.PortConfig_UDP:
		case api.PortConfig_SCTP:
			return errdefs.InvalidArgument("port %d->%d/sctp: sctp is not supported by the routing mesh; publish tcp or udp", p.GetPublishedPort(), p.GetTargetPort())
		default:
			return errdefs.InvalidArgument("port %d->%d: unknown protocol %d: use tcp or udp", p.GetPublishedPort(), p.GetTargetPort(), int32(p.GetProtocol()))
		}
		switch p.GetPublishMode() {
		case api.PortConfig_INGRESS, api.PortConfig_HOST:
		default:
			return errdefs.InvalidArgument("port %d->%d: unknown publish mode %d: use ingress or host", p.GetPublishedPort(), p.GetTargetPort(), int32(p.GetPublishMode()))
		}
		if p.GetMasquerade() && p.GetPublishMode() != api.PortConfig_INGRESS {
			return errdefs.InvalidArgument("port %d->%d/%s: masquerade applies to ingress-mode ports only: remove masquerade or publish with mode=ingress",
				p.GetPublishedPort(), p.GetTargetPort(), strings.ToLower(p.GetProtocol().String()))
		}
		if p.GetPublishedPort() == 0 {
			continue
		}
		key := PortName(p.GetPublishedPort(), p.GetProtocol())
		if seen[key] {
			return errdefs.InvalidArgument("published port %s is used twice: publish each port once", key)
		}
		seen[key] = true
	}
	if e.GetMode() == api.EndpointSpec_DNSRR {
		for _, p := range e.GetPorts() {
			if p.GetPublishMode() == api.PortConfig_INGRESS {
				return errdefs.InvalidArgument("port published with ingress mode can't be used with dnsrr mode: publish it with mode=host, or use --endpoint-mode vip")
			}
		}
	}
	return nil
}

// PublishesIngress reports whether ports hold an ingress-mode port.
func PublishesIngress(ports []*api.PortConfig) bool {
	for _, p := range ports {
		if p.GetPublishMode() == api.PortConfig_INGRESS {
			return true
		}
	}
	return false
}

// ProtoName is a protocol in lower case ("tcp").
func ProtoName(p api.PortConfig_Protocol) string { return strings.ToLower(p.String()) }
