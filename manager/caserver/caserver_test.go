package caserver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/fwdmeta"
	"github.com/shoal-project/shoal/manager/internal/storetest"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// ca is a cluster's CA in a store, with its join tokens.
type ca struct {
	clock       *clockwork.FakeClock
	store       *raftstore.Store
	prop        *storetest.Proposer
	root        *pki.RootCA
	worker, mgr string
	members     map[string]bool
	srv         *Server
}

func newCA(t *testing.T, expiry time.Duration) *ca {
	t.Helper()
	clock := clockwork.NewFakeClock()
	root, err := pki.NewRootCA(clock)
	if err != nil {
		t.Fatal(err)
	}
	key, err := root.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	worker, err := pki.GenerateJoinToken(root.Digest())
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := pki.GenerateJoinToken(root.Digest())
	if err != nil {
		t.Fatal(err)
	}
	store, prop := storetest.New(clock)
	spec := &api.ClusterSpec{Annotations: &api.Annotations{Name: "default"}}
	if expiry > 0 {
		spec.CaConfig = &api.CASettings{NodeCertExpiry: durationpb.New(expiry)}
	}
	storetest.Seed(t, store, &api.Cluster{Id: "cluster-1", Spec: spec, RootCa: &api.RootCA{
		CaCert: root.CertPEM(), CaKey: key, CaCertHash: root.Digest(),
		JoinTokens: &api.JoinTokens{Worker: worker, Manager: mgr},
	}})
	c := &ca{clock: clock, store: store, prop: prop, root: root, worker: worker, mgr: mgr, members: map[string]bool{}}
	c.srv = New(store, clock, func(id string) bool { return c.members[id] })
	return c
}

func csr(t *testing.T) []byte {
	t.Helper()
	csr, _, err := pki.GenerateCSR()
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// verify checks a certificate against the CA and returns who it names.
func (c *ca) verify(t *testing.T, certPEM []byte) pki.Identity {
	t.Helper()
	id, err := c.root.VerifyNodeCertPEM(certPEM)
	if err != nil {
		t.Fatalf("the certificate does not verify: %v", err)
	}
	return id
}

func (c *ca) node(id string) *api.Node {
	var n *api.Node
	c.store.View(func(tx raftstore.ReadTx) { n = tx.Node(id) })
	return n
}

func TestRootCACertificate(t *testing.T) {
	empty := New(raftstore.NewStandaloneStore(nil), nil, nil)
	if _, err := empty.GetRootCACertificate(context.Background(), nil); !errdefs.IsUnavailable(err) {
		t.Fatalf("no cluster yet: %v, want unavailable (retry)", err)
	}
	c := newCA(t, 0)
	resp, err := c.srv.GetRootCACertificate(context.Background(), nil)
	if err != nil || string(resp.Certificate) != string(c.root.CertPEM()) {
		t.Fatalf("%v", err)
	}
}

// The token decides the role; the node gets a fresh ID, a certificate for
// it, and a Node record accepted with the availability it asked for.
func TestIssueByToken(t *testing.T) {
	c := newCA(t, 0)
	for _, tc := range []struct {
		token string
		role  api.NodeRole
	}{{c.worker, api.NodeRole_WORKER}, {c.mgr, api.NodeRole_MANAGER}} {
		resp, err := c.srv.IssueNodeCertificate(context.Background(), &api.IssueNodeCertificateRequest{
			Token: tc.token, Csr: csr(t), Availability: api.Availability_DRAIN,
			Description: &api.NodeDescription{Hostname: "h1"},
		})
		if err != nil {
			t.Fatal(err)
		}
		id := c.verify(t, resp.Certificate)
		if id.NodeID != resp.NodeId || id.Role != tc.role || id.ClusterID != "cluster-1" || resp.Role != tc.role || resp.ClusterId != "cluster-1" {
			t.Fatalf("certificate %v, response %v", id, resp)
		}
		if string(resp.RootCa) != string(c.root.CertPEM()) {
			t.Fatal("the response lacks the root CA")
		}
		n := c.node(resp.NodeId)
		if n == nil || n.Spec.DesiredRole != tc.role || n.Role != tc.role || n.Spec.Membership != api.NodeSpec_ACCEPTED ||
			n.Spec.Availability != api.Availability_DRAIN || n.Description.GetHostname() != "h1" || n.Status.State != api.NodeStatus_UNKNOWN {
			t.Fatalf("node record %v", n)
		}
	}
}

// A wrong or malformed token, or a CSR that does not parse, is refused and
// nothing is written.
func TestIssueRefusals(t *testing.T) {
	c := newCA(t, 0)
	other, err := pki.NewRootCA(c.clock)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := pki.GenerateJoinToken(other.Digest())
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := pki.GenerateJoinToken(c.root.Digest())
	if err != nil {
		t.Fatal(err)
	}
	before := len(c.prop.Transactions())
	for _, tc := range []struct {
		name  string
		req   *api.IssueNodeCertificateRequest
		check func(error) bool
	}{
		{"malformed token", &api.IssueNodeCertificateRequest{Token: "SWMTKN-nope", Csr: csr(t)}, errdefs.IsInvalidArgument},
		{"another swarm's token", &api.IssueNodeCertificateRequest{Token: foreign, Csr: csr(t)}, errdefs.IsPermissionDenied},
		{"a rotated token", &api.IssueNodeCertificateRequest{Token: rotated, Csr: csr(t)}, errdefs.IsPermissionDenied},
		{"a bad CSR", &api.IssueNodeCertificateRequest{Token: c.worker, Csr: []byte("not a csr")}, func(err error) bool { return err != nil }},
	} {
		if _, err := c.srv.IssueNodeCertificate(context.Background(), tc.req); !tc.check(err) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if n := len(c.prop.Transactions()) - before; n != 0 {
		t.Fatalf("%d writes for refused requests", n)
	}
}

// The certificate's lifetime is the cluster's setting.
func TestCertificateExpiryFollowsTheCluster(t *testing.T) {
	c := newCA(t, 3*time.Hour)
	resp, err := c.srv.IssueNodeCertificate(context.Background(), &api.IssueNodeCertificateRequest{Token: c.worker, Csr: csr(t)})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertificatePEM(resp.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	if life := cert.NotAfter.Sub(c.clock.Now()); life < 3*time.Hour-time.Minute || life > 3*time.Hour+time.Minute {
		t.Fatalf("certificate lives %v, want 3h", life)
	}
}

func as(nodeID string, role api.NodeRole) context.Context {
	return pki.ContextWithIdentity(context.Background(), pki.Identity{NodeID: nodeID, Role: role, ClusterID: "cluster-1"})
}

// Renewal needs a verified caller that the cluster knows.
func TestRenewRefusals(t *testing.T) {
	c := newCA(t, 0)
	req := &api.RenewNodeCertificateRequest{Csr: csr(t)}
	if _, err := c.srv.RenewNodeCertificate(context.Background(), req); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Fatalf("no certificate: %v", err)
	}
	if _, err := c.srv.RenewNodeCertificate(as("ghost", api.NodeRole_WORKER), req); !errdefs.IsPermissionDenied(err) {
		t.Fatalf("unknown node: %v", err)
	}
}

// Renewal gives the role the cluster wants now (a promotion reaches the
// certificate and the node's record), except that a demoted manager stays
// a manager while it is still a raft member.
func TestRenewFollowsTheDesiredRole(t *testing.T) {
	c := newCA(t, 0)
	storetest.Seed(t, c.store, &api.Node{Id: "n1", Spec: &api.NodeSpec{DesiredRole: api.NodeRole_MANAGER}, Role: api.NodeRole_WORKER})
	resp, err := c.srv.RenewNodeCertificate(as("n1", api.NodeRole_WORKER), &api.RenewNodeCertificateRequest{Csr: csr(t)})
	if err != nil {
		t.Fatal(err)
	}
	if id := c.verify(t, resp.Certificate); id.NodeID != "n1" || id.Role != api.NodeRole_MANAGER || resp.Role != api.NodeRole_MANAGER {
		t.Fatalf("promotion: %v", id)
	}
	if c.node("n1").Role != api.NodeRole_MANAGER {
		t.Fatal("the node's recorded role did not follow its certificate")
	}
	// Demoted, but still a raft member: a manager certificate, no write.
	err = c.store.Update(context.Background(), func(tx *raftstore.Tx) error {
		n := tx.Node("n1")
		n.Spec = &api.NodeSpec{DesiredRole: api.NodeRole_WORKER}
		return tx.Update(n)
	})
	if err != nil {
		t.Fatal(err)
	}
	c.members["n1"] = true
	before := len(c.prop.Transactions())
	resp, err = c.srv.RenewNodeCertificate(as("n1", api.NodeRole_MANAGER), &api.RenewNodeCertificateRequest{Csr: csr(t)})
	if err != nil || resp.Role != api.NodeRole_MANAGER {
		t.Fatalf("demoted member: %v %v", resp.GetRole(), err)
	}
	if n := len(c.prop.Transactions()) - before; n != 0 {
		t.Fatalf("%d writes while the role did not change", n)
	}
	// Out of raft: a worker certificate, recorded.
	c.members["n1"] = false
	resp, err = c.srv.RenewNodeCertificate(as("n1", api.NodeRole_MANAGER), &api.RenewNodeCertificateRequest{Csr: csr(t)})
	if err != nil || resp.Role != api.NodeRole_WORKER || c.verify(t, resp.Certificate).Role != api.NodeRole_WORKER {
		t.Fatalf("demoted, out of raft: %v %v", resp.GetRole(), err)
	}
	if c.node("n1").Role != api.NodeRole_WORKER {
		t.Fatal("the node's recorded role did not follow its certificate")
	}
}

// A manager forwarding a renewal renews the node it names; a worker cannot
// name another node.
func TestRenewForwarded(t *testing.T) {
	c := newCA(t, 0)
	storetest.Seed(t, c.store,
		&api.Node{Id: "w1", Spec: &api.NodeSpec{DesiredRole: api.NodeRole_WORKER}, Role: api.NodeRole_WORKER},
		&api.Node{Id: "w2", Spec: &api.NodeSpec{DesiredRole: api.NodeRole_WORKER}, Role: api.NodeRole_WORKER},
		&api.Node{Id: "m1", Spec: &api.NodeSpec{DesiredRole: api.NodeRole_MANAGER}, Role: api.NodeRole_MANAGER})
	forwarded := func(ctx context.Context, node string) context.Context {
		return metadata.NewIncomingContext(ctx, metadata.Pairs(fwdmeta.Key, node))
	}
	resp, err := c.srv.RenewNodeCertificate(forwarded(as("m1", api.NodeRole_MANAGER), "w1"), &api.RenewNodeCertificateRequest{Csr: csr(t)})
	if err != nil || c.verify(t, resp.Certificate).NodeID != "w1" {
		t.Fatalf("forwarded by a manager: %v", err)
	}
	resp, err = c.srv.RenewNodeCertificate(forwarded(as("w2", api.NodeRole_WORKER), "w1"), &api.RenewNodeCertificateRequest{Csr: csr(t)})
	if err != nil || c.verify(t, resp.Certificate).NodeID != "w2" {
		t.Fatalf("\"forwarded\" by a worker: %v", err)
	}
}
