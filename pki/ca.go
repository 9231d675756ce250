package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// Certificate lifetimes and names.
const (
	// RootCACommonName is the subject CN of every shoal root CA.
	RootCACommonName = "shoal-root-ca"
	// RootCAValidity is the lifetime of a root CA made by NewRootCA.
	RootCAValidity = 20 * 365 * 24 * time.Hour
	// DefaultNodeCertExpiry is the lifetime of a node certificate when the
	// cluster does not set one (90 days).
	DefaultNodeCertExpiry = 2160 * time.Hour
	// MinNodeCertExpiry is the shortest node certificate lifetime Sign
	// accepts; shorter ones would have nodes renew all the time.
	MinNodeCertExpiry = time.Hour
	// clockSkew is how far NotBefore is backdated so that a node whose clock
	// is a little behind the CA's accepts a fresh certificate at once.
	clockSkew = time.Hour
)

// RootCA is a cluster's root certificate authority: the self-signed root
// certificate and, on managers, its private key. A RootCA without a key can
// verify but not sign. A RootCA is immutable and safe for concurrent use.
type RootCA struct {
	cert    *x509.Certificate
	certPEM []byte
	pool    *x509.CertPool
	digest  string
	signer  crypto.Signer // nil: verify only
	clock   clockwork.Clock
}

// NewRootCA creates a new root CA: an ECDSA P-256 key and a self-signed
// certificate with CN "shoal-root-ca", valid for 20 years from the clock's
// now (backdated by an hour for clock skew). A nil clock is the real clock.
func NewRootCA(clock clockwork.Clock) (*RootCA, error) {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, errdefs.Internal("generate root CA key: %v", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := clock.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: RootCACommonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(RootCAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The root signs node certificates only, never intermediates.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, errdefs.Internal("create root CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, errdefs.Internal("parse new root CA certificate: %v", err)
	}
	return newRootCA(cert, key, clock), nil
}

// ParseRootCA loads a root CA from its PEM certificate and, when keyPEM is not
// empty, its PEM private key. It checks that the certificate is a
// self-signed CA certificate and that the key belongs to it. Without a key
// the result only verifies. A nil clock is the real clock.
func ParseRootCA(certPEM, keyPEM []byte, clock clockwork.Clock) (*RootCA, error) {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, errdefs.InvalidArgument("root CA %v", err)
	}
	if err := checkRootCert(cert); err != nil {
		return nil, err
	}
	var signer crypto.Signer
	if len(keyPEM) != 0 {
		signer, err = ParsePrivateKeyPEM(keyPEM)
		if err != nil {
			return nil, errdefs.InvalidArgument("root CA %v", err)
		}
		if !samePublicKey(cert.PublicKey, signer.Public()) {
			return nil, errdefs.InvalidArgument("root CA private key does not match the root CA certificate")
		}
	}
	return newRootCA(cert, signer, clock), nil
}

// checkRootCert checks that cert can serve as a shoal root: a CA certificate
// that signed itself.
func checkRootCert(cert *x509.Certificate) error {
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return errdefs.InvalidArgument("root CA certificate is not a CA certificate")
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errdefs.InvalidArgument("root CA certificate may not sign certificates (key usage)")
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return errdefs.InvalidArgument("root CA certificate is not self-signed: %v", err)
	}
	return checkPublicKey(cert.PublicKey)
}

func newRootCA(cert *x509.Certificate, signer crypto.Signer, clock clockwork.Clock) *RootCA {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &RootCA{
		cert:    cert,
		certPEM: EncodeCertificatePEM(cert.Raw),
		pool:    pool,
		digest:  CADigest(cert.Raw),
		signer:  signer,
		clock:   clock,
	}
}

// Certificate returns the parsed root certificate. Callers must not modify it.
func (ca *RootCA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the PEM encoding of the root certificate (a copy).
func (ca *RootCA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// Pool returns a pool holding only the root certificate, for tls.Config.
// Callers must not add to it.
func (ca *RootCA) Pool() *x509.CertPool { return ca.pool }

// Digest returns the root certificate's digest as it appears in join tokens
// and in api.RootCA.CaCertHash (see CADigest).
func (ca *RootCA) Digest() string { return ca.digest }

// CanSign reports whether the RootCA holds its private key.
func (ca *RootCA) CanSign() bool { return ca.signer != nil }

// KeyPEM returns the PKCS #8 PEM encoding of the root private key, for
// storing it in the replicated api.RootCA. It fails on a verify-only RootCA.
func (ca *RootCA) KeyPEM() ([]byte, error) {
	if ca.signer == nil {
		return nil, errdefs.FailedPrecondition("this root CA has no private key")
	}
	return EncodePrivateKeyPEM(ca.signer)
}

// CADigest returns the SHA-256 of a DER certificate in base36, zero-padded to
// exactly 50 characters: the digest part of a join token.
func CADigest(certDER []byte) string {
	sum := sha256.Sum256(certDER)
	return encodeBase36(sum[:], digestLen)
}

// Sign issues a node certificate for the public key of csrPEM. Everything the
// certificate says comes from the arguments, never from the CSR, whose
// subject and extensions are ignored:
//
//   - Subject CN = nodeID, OU = RoleOU(role), O = clusterID;
//   - DNS SANs nodeID and RoleServerName(role), so a TLS client can demand a
//     specific node or any node of a role;
//   - ExtKeyUsage client and server auth, KeyUsage digital signature;
//   - NotBefore = now - 1h (clock skew); NotAfter = now + expiry, but never
//     past the root's own NotAfter.
//
// expiry 0 means DefaultNodeCertExpiry; below MinNodeCertExpiry is refused.
// Sign returns the PEM certificate.
func (ca *RootCA) Sign(csrPEM []byte, nodeID string, role api.NodeRole, clusterID string, expiry time.Duration) ([]byte, error) {
	if ca.signer == nil {
		return nil, errdefs.FailedPrecondition("this root CA has no private key and cannot sign")
	}
	if expiry == 0 {
		expiry = DefaultNodeCertExpiry
	}
	if expiry < MinNodeCertExpiry {
		return nil, errdefs.InvalidArgument("node certificate expiry %v is shorter than the minimum %v", expiry, MinNodeCertExpiry)
	}
	if err := ValidateNodeID(nodeID); err != nil {
		return nil, err
	}
	ou, err := RoleOU(role)
	if err != nil {
		return nil, err
	}
	if err := validateClusterID(clusterID); err != nil {
		return nil, err
	}
	csr, err := ParseCSRPEM(csrPEM)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := ca.clock.Now()
	notAfter := now.Add(expiry)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	if !notAfter.After(now) {
		return nil, errdefs.FailedPrecondition("the root CA certificate expired on %s", ca.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	serverName, _ := RoleServerName(role)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         nodeID,
			OrganizationalUnit: []string{ou},
			Organization:       []string{clusterID},
		},
		DNSNames:              []string{nodeID, serverName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, csr.PublicKey, ca.signer)
	if err != nil {
		return nil, errdefs.Internal("sign node certificate for %s: %v", nodeID, err)
	}
	return EncodeCertificatePEM(der), nil
}

// VerifyNodeCert checks that cert was issued by this root for client and
// server use, is valid at the clock's now, and carries a well-formed shoal
// identity, which it returns.
func (ca *RootCA) VerifyNodeCert(cert *x509.Certificate) (Identity, error) {
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:       ca.pool,
		CurrentTime: ca.clock.Now(),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return Identity{}, errdefs.PermissionDenied("node certificate is not valid for this swarm: %v", err)
	}
	return IdentityFromCert(cert)
}

// VerifyNodeCertPEM is VerifyNodeCert for a PEM certificate.
func (ca *RootCA) VerifyNodeCertPEM(certPEM []byte) (Identity, error) {
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return Identity{}, err
	}
	return ca.VerifyNodeCert(cert)
}

// randomSerial returns a random positive serial number of at most 127 bits.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 127)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, errdefs.Internal("generate serial number: %v", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
