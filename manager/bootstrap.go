package manager

import (
	"context"
	"crypto/rand"
	"errors"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/ids"
	"github.com/shoal-project/shoal/internal/specs"
	"github.com/shoal-project/shoal/manager/allocator"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Bootstrap is a new swarm as `swarm init` makes it, before its first
// manager runs: the identities, the root CA, the first manager's
// certificate and key, the join tokens and, with autolock, the unlock key.
// NewBootstrap makes one; the node saves the certificate, starts a manager
// with raftstore.Bootstrap, and that manager's Bootstrap method writes the
// swarm's first objects.
type Bootstrap struct {
	ClusterID, NodeID string
	// Spec is the cluster spec with every default filled in.
	Spec *api.ClusterSpec
	CA   *pki.RootCA
	// CertPEM and KeyPEM are the first manager's certificate and key.
	CertPEM, KeyPEM           []byte
	WorkerToken, ManagerToken string
	// UnlockKey is set when the spec turns autolock on.
	UnlockKey []byte
}

// NewClusterSpec returns a copy of the spec `swarm init` was given with
// its defaults filled in (name, heartbeat period, task history, node
// certificate lifetime, raft settings), or an InvalidArgument error.
func NewClusterSpec(given *api.ClusterSpec) (*api.ClusterSpec, error) {
	spec := &api.ClusterSpec{}
	if given != nil {
		spec = proto.Clone(given).(*api.ClusterSpec)
	}
	if spec.Annotations == nil {
		spec.Annotations = &api.Annotations{Name: "default"}
	}
	expiry := api.Dur(spec.GetCaConfig().GetNodeCertExpiry(), api.DefaultNodeCertExpiry)
	if expiry < pki.MinNodeCertExpiry {
		return nil, errdefs.InvalidArgument("--cert-expiry %v is below the minimum of %v", expiry, pki.MinNodeCertExpiry)
	}
	if spec.GetDispatcher().GetHeartbeatPeriod() == nil {
		spec.Dispatcher = &api.DispatcherSettings{HeartbeatPeriod: durationpb.New(api.DefaultHeartbeatPeriod)}
	}
	if spec.GetOrchestration() == nil {
		spec.Orchestration = &api.OrchestrationSettings{TaskHistoryRetentionLimit: api.DefaultTaskHistory}
	}
	if spec.GetCaConfig().GetNodeCertExpiry() == nil {
		spec.CaConfig = &api.CASettings{NodeCertExpiry: durationpb.New(expiry)}
	}
	if _, _, err := specs.ValidateAddressPools(spec.GetDefaultAddressPool(), spec.GetSubnetSize()); err != nil {
		return nil, err
	}
	if err := specs.ValidateDataPathPort(spec.GetDataPathPort()); err != nil {
		return nil, err
	}
	fillRaftSettings(spec)
	return spec, nil
}

// fillRaftSettings records in a new cluster's spec the raft settings in
// force, so that `shoal info` shows them: the ticks every manager runs with
// and the snapshot policy (which `swarm update` may change later).
func fillRaftSettings(spec *api.ClusterSpec) {
	def := raftstore.DefaultConfig()
	if spec.Raft == nil {
		spec.Raft = &api.RaftSettings{}
	}
	spec.Raft.HeartbeatTick = uint32(def.HeartbeatTick)
	spec.Raft.ElectionTick = uint32(def.ElectionTick)
	if spec.Raft.SnapshotInterval == 0 {
		spec.Raft.SnapshotInterval = def.SnapshotInterval
	}
	if spec.Raft.LogEntriesForSlowFollowers == 0 {
		spec.Raft.LogEntriesForSlowFollowers = def.LogEntriesForSlowFollowers
	}
}

// NewBootstrap makes a new swarm from the spec `swarm init` was given: new
// cluster and node IDs, a root CA (certificates dated by clock), the first
// manager's certificate, two join tokens and, when the spec asks for
// autolock, an unlock key. It does no I/O.
func NewBootstrap(given *api.ClusterSpec, clock clockwork.Clock) (*Bootstrap, error) {
	spec, err := NewClusterSpec(given)
	if err != nil {
		return nil, err
	}
	b := &Bootstrap{ClusterID: ids.New(), NodeID: ids.New(), Spec: spec}
	if b.CA, err = pki.NewRootCA(clock); err != nil {
		return nil, err
	}
	csr, key, err := pki.GenerateCSR()
	if err != nil {
		return nil, err
	}
	expiry := spec.GetCaConfig().GetNodeCertExpiry().AsDuration()
	if b.CertPEM, err = b.CA.Sign(csr, b.NodeID, api.NodeRole_MANAGER, b.ClusterID, expiry); err != nil {
		return nil, err
	}
	b.KeyPEM = key
	if b.WorkerToken, err = pki.GenerateJoinToken(b.CA.Digest()); err != nil {
		return nil, err
	}
	if b.ManagerToken, err = pki.GenerateJoinToken(b.CA.Digest()); err != nil {
		return nil, err
	}
	if spec.GetEncryption().GetAutoLockManagers() {
		if b.UnlockKey, err = pki.GenerateUnlockKey(); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// FirstManager describes the node that runs `swarm init`, for its Node
// object.
type FirstManager struct {
	// Addr is its advertised cluster API address (host:port).
	Addr         string
	Description  *api.NodeDescription
	Availability api.Availability
}

// Objects returns the swarm's first objects: the Cluster (spec, root CA
// with its key, join tokens, unlock key, a new gossip key) and the first manager's Node, a
// ready, reachable leader with raft ID raftID.
func (b *Bootstrap) Objects(raftID uint64, self FirstManager) (*api.Cluster, *api.Node, error) {
	caKey, err := b.CA.KeyPEM()
	if err != nil {
		return nil, nil, err
	}
	cluster := &api.Cluster{
		Id:   b.ClusterID,
		Spec: b.Spec,
		RootCa: &api.RootCA{CaKey: caKey, CaCert: b.CA.CertPEM(), CaCertHash: b.CA.Digest(),
			JoinTokens: &api.JoinTokens{Worker: b.WorkerToken, Manager: b.ManagerToken}},
		UnlockKey:  b.UnlockKey,
		NetworkKey: make([]byte, allocator.NetworkKeySize),
	}
	if _, err := rand.Read(cluster.NetworkKey); err != nil {
		return nil, nil, err
	}
	node := &api.Node{
		Id:          b.NodeID,
		Spec:        &api.NodeSpec{DesiredRole: api.NodeRole_MANAGER, Membership: api.NodeSpec_ACCEPTED, Availability: self.Availability},
		Description: self.Description,
		Status:      &api.NodeStatus{State: api.NodeStatus_READY, Addr: hostOf(self.Addr)},
		Role:        api.NodeRole_MANAGER,
		ManagerStatus: &api.ManagerStatus{RaftId: raftID, Addr: self.Addr, Leader: true,
			Reachability: api.Reachability_REACHABLE},
	}
	return cluster, node, nil
}

// Bootstrap writes a new swarm's first objects (b.Objects and the ingress
// network) once this
// manager, started with raftstore.Bootstrap, leads. It fails if ctx ends
// first (give it a deadline) or the store already holds a cluster.
func (m *Manager) Bootstrap(ctx context.Context, b *Bootstrap, self FirstManager) error {
	if b.NodeID != m.cfg.NodeID || b.ClusterID != m.cfg.ClusterID {
		return errors.New("manager: Bootstrap of another node or cluster")
	}
	if err := m.WaitLeading(ctx); err != nil {
		return err
	}
	cluster, node, err := b.Objects(m.node.RaftID(), self)
	if err != nil {
		return err
	}
	return m.store.Update(ctx, func(tx *raftstore.Tx) error {
		if len(tx.Clusters()) > 0 {
			return errdefs.FailedPrecondition("the store already holds a cluster")
		}
		if err := tx.Create(cluster); err != nil {
			return err
		}
		if err := tx.Create(node); err != nil {
			return err
		}
		// The routing mesh's network, as Docker's `swarm init` makes it
		// (10.0.0.0/24 when the pool holds it, VNI 4096).
		ingress, err := allocator.NewIngressNetwork(tx.ReadTx, ids.New())
		if err != nil {
			return err
		}
		return tx.Create(ingress)
	})
}
