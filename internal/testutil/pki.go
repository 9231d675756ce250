package testutil

import (
	"testing"

	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// KeyPair issues a node certificate from ca (id, role, cluster; default
// expiry) with a fresh key, as a KeyPair for TLS configs.
func KeyPair(tb testing.TB, ca *pki.RootCA, id string, role api.NodeRole, cluster string) *pki.KeyPair {
	tb.Helper()
	csr, key, err := pki.GenerateCSR()
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := ca.Sign(csr, id, role, cluster, 0)
	if err != nil {
		tb.Fatal(err)
	}
	kp, err := pki.NewKeyPair(cert, key)
	if err != nil {
		tb.Fatal(err)
	}
	return kp
}
