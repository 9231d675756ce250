package pki

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jonboulle/clockwork"

	api "github.com/shoal-project/shoal/proto"
)

// Fuzz targets for every decoder of untrusted bytes: join tokens (typed by
// users, presented by joiners), CSRs (sent by joiners), certificates (root CA
// downloaded by joiners, files on disk) and private keys (files on disk).
// Seeds live in testdata/fuzz/<Target>/; SHOAL_WRITE_FUZZ_SEEDS=1 go test
// -run TestWriteFuzzSeeds ./pki/ regenerates them.

func FuzzParseJoinToken(f *testing.F) {
	for _, s := range tokenSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseJoinToken(s)
		if err != nil {
			// Errors never repeat a secret-sized chunk of the input.
			if parts := strings.Split(s, "-"); len(parts) == 4 && len(parts[3]) >= 16 && strings.Contains(err.Error(), parts[3]) {
				t.Fatalf("error %q repeats the secret", err)
			}
			return
		}
		if tok.String() != s || len(tok.Digest) != digestLen || len(tok.Secret) != secretLen {
			t.Fatalf("parsed %q into %+v, which does not round-trip", s, tok)
		}
		if !TokensEqual(s, tok.String()) {
			t.Fatal("token does not equal itself")
		}
	})
}

func FuzzParseCSR(f *testing.F) {
	for _, b := range csrSeeds(f) {
		f.Add(b)
	}
	ca := newTestCA(f, clockwork.NewFakeClockAt(epoch))
	f.Fuzz(func(t *testing.T, b []byte) {
		csr, err := ParseCSRPEM(b)
		if err != nil {
			return
		}
		// Whatever the CSR says, the signer decides the identity.
		certPEM, err := ca.Sign(b, "fuzz-node", api.NodeRole_WORKER, testCluster, 0)
		if err != nil {
			t.Fatalf("valid CSR not signed: %v", err)
		}
		id, err := ca.VerifyNodeCertPEM(certPEM)
		if err != nil || id != (Identity{NodeID: "fuzz-node", Role: api.NodeRole_WORKER, ClusterID: testCluster}) {
			t.Fatalf("issued certificate: %v, %v", id, err)
		}
		cert, _ := ParseCertificatePEM(certPEM)
		if !samePublicKey(cert.PublicKey, csr.PublicKey) || cert.IsCA {
			t.Fatal("issued certificate is not a plain certificate for the CSR's key")
		}
	})
}

func FuzzParseCertificatePEM(f *testing.F) {
	for _, b := range certSeeds(f) {
		f.Add(b)
	}
	ca := newTestCA(f, clockwork.NewFakeClockAt(epoch))
	tok := JoinToken{Digest: ca.Digest(), Secret: strings.Repeat("0", secretLen)}
	f.Fuzz(func(t *testing.T, b []byte) {
		cert, err := ParseCertificatePEM(b)
		if err == nil {
			_, _ = IdentityFromCert(cert)
			_, _ = ca.VerifyNodeCert(cert)
		}
		if _, err := ParseRootCA(b, nil, nil); err == nil && cert == nil {
			t.Fatal("ParseRootCA accepted what ParseCertificatePEM refused")
		}
		// A joiner pinning a downloaded root: only our root matches.
		if pinned, err := CheckRootCAForToken(b, tok); err == nil && pinned.Digest() != ca.Digest() {
			t.Fatal("a different root passed the digest check")
		}
	})
}

func FuzzParsePrivateKeyPEM(f *testing.F) {
	for _, b := range keySeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		key, err := ParsePrivateKeyPEM(b)
		if err != nil {
			return
		}
		again, err := EncodePrivateKeyPEM(key)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if k2, err := ParsePrivateKeyPEM(again); err != nil || !samePublicKey(k2.Public(), key.Public()) {
			t.Fatalf("re-encoded key does not parse back: %v", err)
		}
	})
}

func tokenSeeds() []string {
	d, s := strings.Repeat("1", digestLen), strings.Repeat("2", secretLen)
	return []string{
		"SHTKN-1-" + d + "-" + s,
		"SHTKN-1-" + strings.Repeat("0", digestLen) + "-" + strings.Repeat("0", secretLen),
		"SHTKN-1-" + strings.Repeat("z", digestLen) + "-" + s,
		"SHTKN-1-" + d + "-" + strings.Repeat("z", secretLen),
		"SWMTKN-1-" + d + "-" + s,
		"SHTKN-1-" + d,
		"SHTKN-1-" + strings.ToUpper(d) + "-" + s,
		"",
		"SHTKN-1--",
	}
}

func csrSeeds(tb testing.TB) [][]byte {
	csr, _, err := GenerateCSR()
	if err != nil {
		tb.Fatal(err)
	}
	return [][]byte{csr, csr[:len(csr)/2], bytes.ToLower(csr), []byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n")}
}

func certSeeds(tb testing.TB) [][]byte {
	ca := newTestCA(tb, clockwork.NewFakeClockAt(epoch))
	n := issue(tb, ca, "seed", api.NodeRole_MANAGER, testCluster, 0)
	return [][]byte{ca.CertPEM(), n.certPEM, append(n.certPEM, ca.CertPEM()...), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}
}

func keySeeds(tb testing.TB) [][]byte {
	_, key, err := GenerateCSR()
	if err != nil {
		tb.Fatal(err)
	}
	return [][]byte{key, key[:40], []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")}
}

// TestWriteFuzzSeeds writes the committed seed corpus. It only runs when
// SHOAL_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("SHOAL_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set SHOAL_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz")
	}
	write := func(target string, i int, literal string) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := "go test fuzz v1\n" + literal + "\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range tokenSeeds() {
		write("FuzzParseJoinToken", i, fmt.Sprintf("string(%q)", s))
	}
	for name, seeds := range map[string][][]byte{
		"FuzzParseCSR":            csrSeeds(t),
		"FuzzParseCertificatePEM": certSeeds(t),
		"FuzzParsePrivateKeyPEM":  keySeeds(t),
	} {
		for i, b := range seeds {
			write(name, i, fmt.Sprintf("[]byte(%q)", b))
		}
	}
}
