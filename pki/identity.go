package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// Role names in certificates. A node certificate's OU is one of the OU*
// constants; its DNS SANs include the matching *ServerName so that a client
// that wants "any manager" can set tls.Config.ServerName = ManagerServerName.
const (
	OUManager         = "manager"
	OUWorker          = "worker"
	ManagerServerName = "shoal-manager"
	WorkerServerName  = "shoal-worker"
)

// Identity is who a node certificate says its holder is.
type Identity struct {
	NodeID    string
	Role      api.NodeRole
	ClusterID string
}

func (id Identity) String() string {
	ou, _ := RoleOU(id.Role)
	return fmt.Sprintf("node %s (%s) of cluster %s", id.NodeID, ou, id.ClusterID)
}

// RoleOU returns the certificate OU of a role.
func RoleOU(role api.NodeRole) (string, error) {
	switch role {
	case api.NodeRole_MANAGER:
		return OUManager, nil
	case api.NodeRole_WORKER:
		return OUWorker, nil
	}
	return "", errdefs.InvalidArgument("unknown node role %d", int32(role))
}

// RoleFromOU is the inverse of RoleOU.
func RoleFromOU(ou string) (api.NodeRole, error) {
	switch ou {
	case OUManager:
		return api.NodeRole_MANAGER, nil
	case OUWorker:
		return api.NodeRole_WORKER, nil
	}
	return 0, errdefs.InvalidArgument("unknown role %q in certificate OU", ou)
}

// RoleServerName returns the DNS SAN every certificate of a role carries.
func RoleServerName(role api.NodeRole) (string, error) {
	switch role {
	case api.NodeRole_MANAGER:
		return ManagerServerName, nil
	case api.NodeRole_WORKER:
		return WorkerServerName, nil
	}
	return "", errdefs.InvalidArgument("unknown node role %d", int32(role))
}

// ValidateNodeID checks that id can be a certificate CN and DNS SAN: 1 to 63
// characters of [a-z0-9-], not starting or ending with '-', and not one of
// the role server names. Lowercase only, because DNS names compare
// case-insensitively and two node IDs must never match the same name.
func ValidateNodeID(id string) error {
	if len(id) == 0 || len(id) > 63 {
		return errdefs.InvalidArgument("node ID must have 1 to 63 characters, got %d", len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i != 0 && i != len(id)-1
		if !ok {
			return errdefs.InvalidArgument("node ID %q: character %d is not allowed (want [a-z0-9-], no leading or trailing '-')", id, i+1)
		}
	}
	if id == ManagerServerName || id == WorkerServerName {
		return errdefs.InvalidArgument("node ID %q is reserved", id)
	}
	return nil
}

// validateClusterID checks that id can be a certificate O: 1 to 64
// characters of [A-Za-z0-9._-].
func validateClusterID(id string) error {
	if len(id) == 0 || len(id) > 64 {
		return errdefs.InvalidArgument("cluster ID must have 1 to 64 characters, got %d", len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return errdefs.InvalidArgument("cluster ID %q: character %d is not allowed (want [A-Za-z0-9._-])", id, i+1)
		}
	}
	return nil
}

// IdentityFromCert reads the identity of a node certificate: exactly one CN
// (a valid node ID), one OU (a known role) and one O (a valid cluster ID).
// It does not check who signed the certificate: use it on certificates TLS
// or RootCA.VerifyNodeCert has verified.
func IdentityFromCert(cert *x509.Certificate) (Identity, error) {
	s := cert.Subject
	if len(s.OrganizationalUnit) != 1 || len(s.Organization) != 1 {
		return Identity{}, errdefs.PermissionDenied("certificate subject must have exactly one OU and one O, has %d and %d",
			len(s.OrganizationalUnit), len(s.Organization))
	}
	if err := ValidateNodeID(s.CommonName); err != nil {
		return Identity{}, errdefs.PermissionDenied("certificate CN: %v", err)
	}
	role, err := RoleFromOU(s.OrganizationalUnit[0])
	if err != nil {
		return Identity{}, errdefs.PermissionDenied("%v", err)
	}
	if err := validateClusterID(s.Organization[0]); err != nil {
		return Identity{}, errdefs.PermissionDenied("certificate O: %v", err)
	}
	return Identity{NodeID: s.CommonName, Role: role, ClusterID: s.Organization[0]}, nil
}

// GenerateCSR makes a fresh ECDSA P-256 node key and a CSR for it, both PEM.
// The CSR has an empty subject: the CA decides the whole subject. The key
// must be kept (0600) until the certificate comes back; see Store.
func GenerateCSR() (csrPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, errdefs.Internal("generate node key: %v", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, errdefs.Internal("create certificate signing request: %v", err)
	}
	keyPEM, err = EncodePrivateKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: der}), keyPEM, nil
}
