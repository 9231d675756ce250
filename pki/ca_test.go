package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func TestNewRootCA(t *testing.T) {
	clock := clockwork.NewFakeClockAt(epoch)
	ca := newTestCA(t, clock)
	c := ca.Certificate()
	if c.Subject.CommonName != RootCACommonName || !c.IsCA || !c.BasicConstraintsValid {
		t.Fatalf("root subject/CA flags wrong: %+v", c.Subject)
	}
	if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || c.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
		t.Fatalf("root key is %T, want ECDSA P-256", c.PublicKey)
	}
	if got, want := c.NotAfter, epoch.Add(RootCAValidity); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	if got := c.NotAfter.Sub(epoch); got < 20*365*24*time.Hour {
		t.Errorf("root lifetime %v is under 20 years", got)
	}
	if len(ca.Digest()) != 50 || ca.Digest() != CADigest(c.Raw) {
		t.Errorf("digest %q is not the 50-char CADigest", ca.Digest())
	}

	// PEM round trip, with and without the key.
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseRootCA(ca.CertPEM(), keyPEM, clock)
	if err != nil {
		t.Fatalf("ParseRootCA: %v", err)
	}
	if !again.CanSign() || again.Digest() != ca.Digest() {
		t.Fatalf("reloaded CA differs")
	}
	n := issue(t, again, "node1", api.NodeRole_WORKER, testCluster, 0)
	if _, err := ca.VerifyNodeCert(n.cert); err != nil {
		t.Fatalf("cert signed by reloaded CA not verified by original: %v", err)
	}
	verifyOnly, err := ParseRootCA(ca.CertPEM(), nil, clock)
	if err != nil {
		t.Fatal(err)
	}
	if verifyOnly.CanSign() {
		t.Fatal("verify-only CA claims it can sign")
	}
	csr, _, _ := GenerateCSR()
	if _, err := verifyOnly.Sign(csr, "node2", api.NodeRole_WORKER, testCluster, 0); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("verify-only Sign: err = %v, want FailedPrecondition", err)
	}
	if _, err := verifyOnly.KeyPEM(); err == nil {
		t.Fatal("verify-only KeyPEM succeeded")
	}
}

func TestParseRootCARefuses(t *testing.T) {
	clock := clockwork.NewFakeClockAt(epoch)
	ca, other := newTestCA(t, clock), newTestCA(t, clock)
	otherKey, _ := other.KeyPEM()
	node := issue(t, ca, "node1", api.NodeRole_MANAGER, testCluster, 0)
	cases := map[string]struct{ cert, key []byte }{
		"key of another CA":  {ca.CertPEM(), otherKey},
		"node cert as root":  {node.certPEM, nil},
		"garbage":            {[]byte("hello"), nil},
		"key in cert slot":   {otherKey, nil},
		"trailing data":      {append(ca.CertPEM(), "junk"...), nil},
		"leading data":       {append([]byte("junk\n"), ca.CertPEM()...), nil},
		"two certificates":   {append(ca.CertPEM(), other.CertPEM()...), nil},
		"node key as CA key": {ca.CertPEM(), node.keyPEM},
	}
	for name, c := range cases {
		if _, err := ParseRootCA(c.cert, c.key, clock); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: err = %v, want InvalidArgument", name, err)
		}
	}
}

func TestSignRoundTrip(t *testing.T) {
	clock := clockwork.NewFakeClockAt(epoch)
	ca := newTestCA(t, clock)
	n := issue(t, ca, "abc123", api.NodeRole_MANAGER, testCluster, 0)
	c := n.cert
	if c.Subject.CommonName != "abc123" || !slices.Equal(c.Subject.OrganizationalUnit, []string{OUManager}) ||
		!slices.Equal(c.Subject.Organization, []string{testCluster}) {
		t.Fatalf("subject = %+v", c.Subject)
	}
	if !slices.Equal(c.DNSNames, []string{"abc123", ManagerServerName}) {
		t.Errorf("DNSNames = %v", c.DNSNames)
	}
	if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("ExtKeyUsage = %v", c.ExtKeyUsage)
	}
	if c.IsCA {
		t.Error("node certificate is a CA")
	}
	if !c.NotBefore.Equal(epoch.Add(-time.Hour)) {
		t.Errorf("NotBefore = %v, want an hour before %v", c.NotBefore, epoch)
	}
	if !c.NotAfter.Equal(epoch.Add(DefaultNodeCertExpiry)) || DefaultNodeCertExpiry != 90*24*time.Hour {
		t.Errorf("NotAfter = %v, want 90 days after %v", c.NotAfter, epoch)
	}
	id, err := ca.VerifyNodeCertPEM(n.certPEM)
	if err != nil {
		t.Fatalf("VerifyNodeCert: %v", err)
	}
	if want := (Identity{NodeID: "abc123", Role: api.NodeRole_MANAGER, ClusterID: testCluster}); id != want {
		t.Fatalf("identity = %v, want %v", id, want)
	}
	kp := n.keyPair(t)
	if kp.Identity() != id || kp.Leaf().SerialNumber.Cmp(c.SerialNumber) != 0 {
		t.Fatal("KeyPair does not reflect the certificate")
	}
	// The TLS server name of a specific node verifies.
	if err := c.VerifyHostname("abc123"); err != nil {
		t.Errorf("VerifyHostname(node ID): %v", err)
	}
	if err := c.VerifyHostname("other"); err == nil {
		t.Error("VerifyHostname(other) succeeded")
	}
}

// A CSR that asks for a manager identity, a CA flag and extra SANs gets
// exactly what the signer decides.
func TestSignIgnoresCSRSubject(t *testing.T) {
	ca := newTestCA(t, clockwork.NewFakeClockAt(epoch))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bc, _ := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{true})
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{
			CommonName:         "evil-manager",
			OrganizationalUnit: []string{OUManager},
			Organization:       []string{"other-cluster"},
		},
		DNSNames:        []string{"evil.example", ManagerServerName},
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: bc}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	certPEM, err := ca.Sign(csrPEM, "w1", api.NodeRole_WORKER, testCluster, 0)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	c, _ := ParseCertificatePEM(certPEM)
	id, err := ca.VerifyNodeCert(c)
	if err != nil {
		t.Fatal(err)
	}
	if id.Role != api.NodeRole_WORKER || id.NodeID != "w1" || id.ClusterID != testCluster {
		t.Fatalf("identity = %v, want worker w1 of %s", id, testCluster)
	}
	if c.IsCA || !slices.Equal(c.DNSNames, []string{"w1", WorkerServerName}) {
		t.Fatalf("CSR extensions leaked: IsCA=%v DNSNames=%v", c.IsCA, c.DNSNames)
	}
	if !samePublicKey(c.PublicKey, key.Public()) {
		t.Fatal("certificate is not for the CSR's key")
	}
}

func TestSignRefuses(t *testing.T) {
	ca := newTestCA(t, clockwork.NewFakeClockAt(epoch))
	good, _, _ := GenerateCSR()
	// A CSR whose signature does not match its content.
	block, _ := pem.Decode(good)
	bad := append([]byte(nil), block.Bytes...)
	bad[len(bad)-5] ^= 0xff
	tampered := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: bad})
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, rsaKey)
	small := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: smallDER})

	cases := []struct {
		name    string
		csr     []byte
		node    string
		role    api.NodeRole
		cluster string
		expiry  time.Duration
	}{
		{"tampered CSR", tampered, "n1", 0, testCluster, 0},
		{"RSA-1024 CSR", small, "n1", 0, testCluster, 0},
		{"certificate as CSR", ca.CertPEM(), "n1", 0, testCluster, 0},
		{"empty CSR", nil, "n1", 0, testCluster, 0},
		{"expiry under 1h", good, "n1", 0, testCluster, 59 * time.Minute},
		{"negative expiry", good, "n1", 0, testCluster, -time.Hour},
		{"empty node ID", good, "", 0, testCluster, 0},
		{"upper-case node ID", good, "Node1", 0, testCluster, 0},
		{"node ID with dot", good, "a.b", 0, testCluster, 0},
		{"node ID named like a role", good, ManagerServerName, 0, testCluster, 0},
		{"node ID too long", good, strings.Repeat("a", 64), 0, testCluster, 0},
		{"unknown role", good, "n1", api.NodeRole(7), testCluster, 0},
		{"empty cluster", good, "n1", 0, "", 0},
		{"cluster with space", good, "n1", 0, "a b", 0},
	}
	for _, c := range cases {
		if _, err := ca.Sign(c.csr, c.node, c.role, c.cluster, c.expiry); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: err = %v, want InvalidArgument", c.name, err)
		}
	}
}

func TestSignExpiry(t *testing.T) {
	clock := clockwork.NewFakeClockAt(epoch)
	ca := newTestCA(t, clock)
	n := issue(t, ca, "n1", api.NodeRole_WORKER, testCluster, MinNodeCertExpiry)
	if !n.cert.NotAfter.Equal(epoch.Add(time.Hour)) {
		t.Errorf("1h cert NotAfter = %v", n.cert.NotAfter)
	}
	// Never past the root's own expiry.
	n = issue(t, ca, "n1", api.NodeRole_WORKER, testCluster, 30*365*24*time.Hour)
	if !n.cert.NotAfter.Equal(ca.Certificate().NotAfter) {
		t.Errorf("NotAfter = %v, want clamped to root's %v", n.cert.NotAfter, ca.Certificate().NotAfter)
	}
	// Once the root has expired nothing is signed.
	clock.Advance(RootCAValidity + time.Hour)
	csr, _, _ := GenerateCSR()
	if _, err := ca.Sign(csr, "n1", api.NodeRole_WORKER, testCluster, 0); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Sign after root expiry: err = %v, want FailedPrecondition", err)
	}
}

func TestVerifyNodeCertRefuses(t *testing.T) {
	clock := clockwork.NewFakeClockAt(epoch)
	ca, foreign := newTestCA(t, clock), newTestCA(t, clock)
	mine := issue(t, ca, "n1", api.NodeRole_MANAGER, testCluster, 2*time.Hour)
	theirs := issue(t, foreign, "n1", api.NodeRole_MANAGER, testCluster, 0)
	if _, err := ca.VerifyNodeCert(theirs.cert); !errdefs.IsPermissionDenied(err) {
		t.Errorf("certificate of another CA: err = %v, want PermissionDenied", err)
	}
	if _, err := ca.VerifyNodeCert(mine.cert); err != nil {
		t.Fatalf("own certificate: %v", err)
	}
	clock.Advance(2*time.Hour + time.Second)
	if _, err := ca.VerifyNodeCert(mine.cert); !errdefs.IsPermissionDenied(err) {
		t.Errorf("expired certificate: err = %v, want PermissionDenied", err)
	}
	// The root itself is not a node certificate.
	if _, err := ca.VerifyNodeCert(ca.Certificate()); err == nil {
		t.Error("root accepted as a node certificate")
	}
}

func TestIdentityFromCertRefusesMalformed(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mk := func(s pkix.Name) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: s, NotBefore: epoch, NotAfter: epoch.Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	cases := map[string]pkix.Name{
		"two OUs":       {CommonName: "n1", OrganizationalUnit: []string{OUWorker, OUManager}, Organization: []string{"c"}},
		"no O":          {CommonName: "n1", OrganizationalUnit: []string{OUWorker}},
		"unknown role":  {CommonName: "n1", OrganizationalUnit: []string{"admin"}, Organization: []string{"c"}},
		"bad CN":        {CommonName: "N 1", OrganizationalUnit: []string{OUWorker}, Organization: []string{"c"}},
		"two clusters":  {CommonName: "n1", OrganizationalUnit: []string{OUWorker}, Organization: []string{"c", "d"}},
		"empty cluster": {CommonName: "n1", OrganizationalUnit: []string{OUWorker}, Organization: []string{""}},
	}
	for name, s := range cases {
		if _, err := IdentityFromCert(mk(s)); !errdefs.IsPermissionDenied(err) {
			t.Errorf("%s: err = %v, want PermissionDenied", name, err)
		}
	}
}

func TestKeyPairSwap(t *testing.T) {
	ca := newTestCA(t, clockwork.NewFakeClockAt(epoch))
	a := issue(t, ca, "n1", api.NodeRole_WORKER, testCluster, 0)
	kp := a.keyPair(t)
	promoted := issue(t, ca, "n1", api.NodeRole_MANAGER, testCluster, 0)
	if err := kp.Swap(promoted.certPEM, promoted.keyPEM); err != nil {
		t.Fatalf("Swap: %v", err)
	}
	if kp.Identity().Role != api.NodeRole_MANAGER || kp.Certificate().Leaf != kp.Leaf() {
		t.Fatal("Swap did not install the new certificate")
	}
	other := issue(t, ca, "n2", api.NodeRole_MANAGER, testCluster, 0)
	if err := kp.Swap(other.certPEM, other.keyPEM); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Swap to another node: err = %v", err)
	}
	if err := kp.Swap(promoted.certPEM, a.keyPEM); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Swap with mismatched key: err = %v", err)
	}
	if kp.Identity().NodeID != "n1" || kp.Identity().Role != api.NodeRole_MANAGER {
		t.Fatal("failed Swap changed the pair")
	}
	if _, err := NewKeyPair(a.certPEM, promoted.keyPEM); err == nil {
		t.Error("NewKeyPair with another key succeeded")
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	if k, err := ParsePrivateKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})); err != nil || !samePublicKey(k.Public(), ec.Public()) {
		t.Fatalf("SEC 1 key: %v", err)
	}
	p8, _ := EncodePrivateKeyPEM(ec)
	if _, err := ParsePrivateKeyPEM(p8); err != nil {
		t.Fatalf("PKCS #8 key: %v", err)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallDER, _ := x509.MarshalPKCS8PrivateKey(small)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p224DER, _ := x509.MarshalPKCS8PrivateKey(p224)
	bad := map[string][]byte{
		"RSA-1024":         pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: smallDER}),
		"P-224":            pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p224DER}),
		"wrong block type": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: sec1}),
		"SEC 1 as PKCS 8":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: sec1}),
		"two keys":         append(append([]byte(nil), p8...), p8...),
		"headers":          pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: smallDER}),
		"empty":            nil,
		"huge":             make([]byte, maxPEMSize+1),
	}
	for name, b := range bad {
		if _, err := ParsePrivateKeyPEM(b); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: err = %v, want InvalidArgument", name, err)
		}
	}
}
