package testcluster

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// identity is what a swarm's bootstrap makes and every join uses: the
// cluster ID, the root CA, and node IDs from a seeded source. Cluster and
// ProcCluster embed it.
type identity struct {
	tb        testing.TB
	ca        *pki.RootCA
	clusterID string

	idMu sync.Mutex
	rng  *rand.Rand
}

// init sets the identity up with the root CA and a cluster ID drawn
// from seed.
func (id *identity) init(tb testing.TB, seed uint64, ca *pki.RootCA) {
	id.tb, id.ca, id.rng = tb, ca, rand.New(rand.NewPCG(seed, seed^0x5eed))
	id.clusterID = id.newID()
}

// newID is a node or cluster ID from the seed: 25 base-36 characters, the
// shape of internal/ids.
func (id *identity) newID() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	id.idMu.Lock()
	defer id.idMu.Unlock()
	b := make([]byte, 25)
	for i := range b {
		b[i] = digits[id.rng.IntN(len(digits))]
	}
	return string(b)
}

// issue signs a certificate for nodeID with role, as the CA does at join.
func (id *identity) issue(nodeID string, role api.NodeRole) *pki.KeyPair {
	id.tb.Helper()
	cert, key := id.issuePEM(nodeID, role)
	kp, err := pki.NewKeyPair(cert, key)
	if err != nil {
		id.tb.Fatal(err)
	}
	return kp
}

// issuePEM signs a certificate for nodeID with role and returns it with
// its key, both PEM.
func (id *identity) issuePEM(nodeID string, role api.NodeRole) (cert, key []byte) {
	id.tb.Helper()
	csr, key, err := pki.GenerateCSR()
	if err != nil {
		id.tb.Fatal(err)
	}
	cert, err = id.ca.Sign(csr, nodeID, role, id.clusterID, api.DefaultNodeCertExpiry)
	if err != nil {
		id.tb.Fatal(err)
	}
	return cert, key
}

// clusterObject is the Cluster object a bootstrap writes: the spec's
// defaults (edited by edit, if set), the root CA with its key, and join
// tokens, as `swarm init` does.
func (id *identity) clusterObject(edit func(*api.ClusterSpec)) *api.Cluster {
	id.tb.Helper()
	spec := &api.ClusterSpec{
		Annotations:   &api.Annotations{Name: "default"},
		Dispatcher:    &api.DispatcherSettings{HeartbeatPeriod: durationpb.New(api.DefaultHeartbeatPeriod)},
		Orchestration: &api.OrchestrationSettings{TaskHistoryRetentionLimit: api.DefaultTaskHistory},
		CaConfig:      &api.CASettings{NodeCertExpiry: durationpb.New(api.DefaultNodeCertExpiry)},
	}
	if edit != nil {
		edit(spec)
	}
	caKey, err := id.ca.KeyPEM()
	if err != nil {
		id.tb.Fatal(err)
	}
	workerTok, err1 := pki.GenerateJoinToken(id.ca.Digest())
	managerTok, err2 := pki.GenerateJoinToken(id.ca.Digest())
	if err1 != nil || err2 != nil {
		id.tb.Fatal(err1, err2)
	}
	return &api.Cluster{
		Id: id.clusterID, Spec: spec,
		RootCa: &api.RootCA{CaKey: caKey, CaCert: id.ca.CertPEM(), CaCertHash: id.ca.Digest(),
			JoinTokens: &api.JoinTokens{Worker: workerTok, Manager: managerTok}},
	}
}

// nodeObject is the Node a join records: accepted, status unknown until
// its agent's session marks it READY.
func nodeObject(id, hostname string, role api.NodeRole) *api.Node {
	return &api.Node{
		Id:          id,
		Spec:        &api.NodeSpec{DesiredRole: role, Membership: api.NodeSpec_ACCEPTED},
		Description: &api.NodeDescription{Hostname: hostname},
		Status:      &api.NodeStatus{State: api.NodeStatus_UNKNOWN, Message: "joining"},
		Role:        role,
	}
}

// crashRecord keeps the first error of a node that stopped on its own;
// every wait of the harness then fails with it. Cluster and ProcCluster
// embed it.
type crashRecord struct{ crashed atomic.Pointer[error] }

// crash records a node that stopped on its own.
func (r *crashRecord) crash(err error) { r.crashed.CompareAndSwap(nil, &err) }

// Crashed returns the error of the first node (or manager process) that
// stopped without being told to, or nil.
func (r *crashRecord) Crashed() error {
	if p := r.crashed.Load(); p != nil {
		return *p
	}
	return nil
}

// ClusterID is the cluster's ID.
func (id *identity) ClusterID() string { return id.clusterID }

// RootCA is the cluster's root CA.
func (id *identity) RootCA() *pki.RootCA { return id.ca }
