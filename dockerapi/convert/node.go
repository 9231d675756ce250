package convert

import (
	"crypto/x509"
	"encoding/pem"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// enginePlugins is what a shoal node offers in the slots Docker lists as
// engine plugins: the log drivers and the network and volume drivers.
var enginePlugins = []swarm.PluginDescription{
	{Type: "Log", Name: "json-file"},
	{Type: "Log", Name: "local"},
	{Type: "Network", Name: "overlay"},
	{Type: "Volume", Name: "local"},
}

// NodeToMoby returns Docker's Node for n. tls is the cluster's trust root
// (TLSInfoFromCA of the root CA certificate), the same for every node.
func NodeToMoby(n *api.Node, tls swarm.TLSInfo) swarm.Node {
	d := n.GetDescription()
	out := swarm.Node{
		ID:   n.GetId(),
		Meta: Meta(n.GetMeta()),
		Spec: NodeSpecToMoby(n.GetSpec()),
		Description: swarm.NodeDescription{
			Hostname: d.GetHostname(),
			Platform: swarm.Platform{Architecture: archToMoby(d.GetPlatform().GetArchitecture()), OS: d.GetPlatform().GetOs()},
			Resources: swarm.Resources{
				NanoCPUs:         d.GetResources().GetNanoCpus(),
				MemoryBytes:      d.GetResources().GetMemoryBytes(),
				GenericResources: genericToMoby(d.GetResources().GetGeneric()),
			},
			Engine: swarm.EngineDescription{
				EngineVersion: d.GetEngine().GetEngineVersion(),
				Labels:        copyMap(d.GetEngine().GetLabels()),
				Plugins:       append([]swarm.PluginDescription(nil), enginePlugins...),
			},
			TLSInfo: tls,
		},
		Status: swarm.NodeStatus{
			State:   nodeStates.toMoby(n.GetStatus().GetState()),
			Message: n.GetStatus().GetMessage(),
			Addr:    n.GetStatus().GetAddr(),
		},
	}
	if m := n.GetManagerStatus(); m != nil {
		out.ManagerStatus = &swarm.ManagerStatus{
			Leader:       m.GetLeader(),
			Reachability: reachabilities.toMoby(m.GetReachability()),
			Addr:         m.GetAddr(),
		}
	}
	return out
}

// NodeSpecToMoby returns Docker's NodeSpec (Role is the desired role).
func NodeSpecToMoby(s *api.NodeSpec) swarm.NodeSpec {
	return swarm.NodeSpec{
		Annotations:  annotationsToMoby(s.GetAnnotations()),
		Role:         nodeRoles.toMoby(s.GetDesiredRole()),
		Availability: availabilities.toMoby(s.GetAvailability()),
	}
}

// NodeSpecFromMoby returns shoal's spec for POST /nodes/{id}/update. Docker
// has no Membership in the spec any more: it is kept from cur, the node's
// current spec, as are a Role or Availability the client left empty.
func NodeSpecFromMoby(s swarm.NodeSpec, cur *api.NodeSpec) (*api.NodeSpec, error) {
	out := &api.NodeSpec{
		Annotations:  annotationsFromMoby(s.Annotations),
		DesiredRole:  cur.GetDesiredRole(),
		Membership:   cur.GetMembership(),
		Availability: cur.GetAvailability(),
	}
	if cur == nil {
		out.Membership = api.NodeSpec_ACCEPTED
	}
	var err error
	if s.Role != "" {
		if out.DesiredRole, err = nodeRoles.fromMoby("Role", s.Role); err != nil {
			return nil, err
		}
	}
	if s.Availability != "" {
		if out.Availability, err = availabilities.fromMoby("Availability", s.Availability); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// TLSInfoFromCA returns Docker's TLSInfo for the cluster's root CA
// certificate (PEM): the trust root and the issuer's raw subject and public
// key, which `docker node inspect` and `docker swarm ca` show.
func TLSInfoFromCA(caPEM []byte) (swarm.TLSInfo, error) {
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return swarm.TLSInfo{}, errdefs.New(errdefs.ErrInternal, "the cluster's root CA is not a PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return swarm.TLSInfo{}, errdefs.Newf(errdefs.ErrInternal, "the cluster's root CA certificate cannot be parsed: %v", err)
	}
	return swarm.TLSInfo{
		TrustRoot:           string(caPEM),
		CertIssuerSubject:   cert.RawSubject,
		CertIssuerPublicKey: cert.RawSubjectPublicKeyInfo,
	}, nil
}
