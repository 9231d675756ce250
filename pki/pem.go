package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/shoal-project/shoal/errdefs"
)

// PEM block types used by shoal.
const (
	pemCertificate = "CERTIFICATE"
	pemCSR         = "CERTIFICATE REQUEST"
	pemPKCS8Key    = "PRIVATE KEY"
	pemECKey       = "EC PRIVATE KEY"
)

// maxPEMSize bounds every PEM input shoal decodes. A node certificate, a CSR
// or a key is well under 4 KiB; the bound only stops abuse.
const maxPEMSize = 64 << 10

// decodeOnePEM returns the single PEM block of type typ in data. Anything
// other than exactly one block of that type, optionally surrounded by
// whitespace, is refused: trailing garbage in a security file is a sign of
// damage or tampering, not something to skip.
func decodeOnePEM(data []byte, typ, what string) (*pem.Block, error) {
	if len(data) == 0 {
		return nil, errdefs.InvalidArgument("%s: empty input, want one PEM %q block", what, typ)
	}
	if len(data) > maxPEMSize {
		return nil, errdefs.InvalidArgument("%s: %d bytes is larger than the %d bytes allowed", what, len(data), maxPEMSize)
	}
	// pem.Decode skips any text before the block; shoal does not.
	if !bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("-----BEGIN ")) {
		return nil, errdefs.InvalidArgument("%s: no PEM data found at the start", what)
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errdefs.InvalidArgument("%s: no PEM data found", what)
	}
	if block.Type != typ {
		return nil, errdefs.InvalidArgument("%s: PEM block is %q, want %q", what, block.Type, typ)
	}
	if len(block.Headers) != 0 {
		return nil, errdefs.InvalidArgument("%s: PEM block has headers, which shoal never writes", what)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errdefs.InvalidArgument("%s: unexpected data after the PEM block", what)
	}
	return block, nil
}

// ParseCertificatePEM decodes one PEM "CERTIFICATE" block and parses it.
// It only parses: trust is decided by RootCA.VerifyNodeCert or by TLS.
func ParseCertificatePEM(data []byte) (*x509.Certificate, error) {
	block, err := decodeOnePEM(data, pemCertificate, "certificate")
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, errdefs.InvalidArgument("certificate: %v", err)
	}
	return cert, nil
}

// EncodeCertificatePEM returns the PEM encoding of a DER certificate.
func EncodeCertificatePEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
}

// ParseCSRPEM decodes one PEM "CERTIFICATE REQUEST" block, parses it and
// checks its self-signature, which proves the requester holds the private key
// of the public key it asks to be certified. The public key must be of a kind
// shoal accepts (see checkPublicKey). The CSR's subject and extensions are
// returned as parsed but the signer never uses them.
func ParseCSRPEM(data []byte) (*x509.CertificateRequest, error) {
	block, err := decodeOnePEM(data, pemCSR, "certificate signing request")
	if err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, errdefs.InvalidArgument("certificate signing request: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, errdefs.InvalidArgument("certificate signing request: bad signature: %v", err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, errdefs.InvalidArgument("certificate signing request: %v", err)
	}
	return csr, nil
}

// checkPublicKey accepts the key kinds shoal is willing to certify: ECDSA on
// P-256 or P-384 (what shoal itself generates is P-256), Ed25519, and RSA of
// at least 2048 bits.
func checkPublicKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA curve %s is not accepted, use P-256", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits is too small, want at least 2048", k.N.BitLen())
		}
	default:
		return fmt.Errorf("public key type %T is not accepted", pub)
	}
	return nil
}

// ParsePrivateKeyPEM decodes a private key written by EncodePrivateKeyPEM
// ("PRIVATE KEY", PKCS #8) or a SEC 1 "EC PRIVATE KEY". The key must be a
// signer of a kind checkPublicKey accepts.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	const what = "private key"
	if len(data) == 0 || len(data) > maxPEMSize {
		return nil, errdefs.InvalidArgument("%s: size %d is out of range", what, len(data))
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errdefs.InvalidArgument("%s: no PEM data found", what)
	}
	// Decode again with the type now known, to get the strict checks.
	typ := block.Type
	if typ != pemPKCS8Key && typ != pemECKey {
		return nil, errdefs.InvalidArgument("%s: PEM block is %q, want %q", what, typ, pemPKCS8Key)
	}
	block, err := decodeOnePEM(data, typ, what)
	if err != nil {
		return nil, err
	}
	var key any
	if typ == pemECKey {
		key, err = x509.ParseECPrivateKey(block.Bytes)
	} else {
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, errdefs.InvalidArgument("%s: %v", what, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errdefs.InvalidArgument("%s: key type %T cannot sign", what, key)
	}
	if err := checkPublicKey(signer.Public()); err != nil {
		return nil, errdefs.InvalidArgument("%s: %v", what, err)
	}
	return signer, nil
}

// EncodePrivateKeyPEM returns the PKCS #8 PEM encoding of key.
func EncodePrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, errdefs.Internal("encode private key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPKCS8Key, Bytes: der}), nil
}

// samePublicKey reports whether a and b are the same public key.
func samePublicKey(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}
