package controlapi

import (
	"context"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/specs"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// redactCluster hides the CA key, the unlock key, the secrets key and the
// gossip key from every reader: they are only ever replicated between
// managers (and the gossip key sent to nodes in their session).
func redactCluster(c *api.Cluster) *api.Cluster {
	if c == nil {
		return nil
	}
	out := proto.Clone(c).(*api.Cluster)
	if out.RootCa != nil {
		out.RootCa.CaKey = nil
	}
	out.UnlockKey = nil
	out.SecretsKey = nil
	out.NetworkKey = nil
	return out
}

// GetCluster returns the cluster.
func (s *Server) GetCluster(_ context.Context, req *api.GetClusterRequest) (*api.GetClusterResponse, error) {
	var c *api.Cluster
	s.store.View(func(tx raftstore.ReadTx) {
		c = tx.Cluster(req.GetClusterId())
		if c == nil && req.GetClusterId() == "" {
			c = firstCluster(tx)
		}
	})
	if c == nil {
		return nil, errdefs.NotFound("cluster %s not found", req.GetClusterId())
	}
	return &api.GetClusterResponse{Cluster: redactCluster(c)}, nil
}

// ListClusters lists the cluster (there is one).
func (s *Server) ListClusters(_ context.Context, _ *api.ListClustersRequest) (*api.ListClustersResponse, error) {
	out := &api.ListClustersResponse{}
	s.store.View(func(tx raftstore.ReadTx) {
		for _, c := range tx.Clusters() {
			out.Clusters = append(out.Clusters, redactCluster(c))
		}
	})
	return out, nil
}

// UpdateCluster changes cluster settings and rotates join tokens. A rotated
// token is refused from the moment the change commits.
func (s *Server) UpdateCluster(ctx context.Context, req *api.UpdateClusterRequest) (*api.UpdateClusterResponse, error) {
	var out *api.Cluster
	err := s.update(ctx, func(tx *raftstore.Tx) error {
		cur := tx.Cluster(req.GetClusterId())
		if cur == nil && req.GetClusterId() == "" {
			cur = firstCluster(tx.ReadTx)
		}
		if cur == nil {
			return errdefs.NotFound("cluster %s not found", req.GetClusterId())
		}
		if err := checkVersion("cluster", cur.Id, req.GetClusterVersion(), cur.GetMeta().GetVersion(), cur.GetSpecBaseVersion()); err != nil {
			return err
		}
		next := proto.Clone(cur).(*api.Cluster)
		if spec := req.GetSpec(); spec != nil {
			if err := validateClusterSpec(spec); err != nil {
				return err
			}
			if err := checkOverlaySettings(cur.GetSpec(), spec); err != nil {
				return err
			}
			next.Spec = spec
			next.SpecBaseVersion = cur.GetMeta().GetVersion()
		}
		rot := req.GetRotation()
		if err := updateUnlockKey(next, rot.GetManagerUnlockKey()); err != nil {
			return err
		}
		if rot.GetWorkerJoinToken() || rot.GetManagerJoinToken() {
			digest := next.GetRootCa().GetCaCertHash()
			if rot.GetWorkerJoinToken() {
				tok, err := pki.GenerateJoinToken(digest)
				if err != nil {
					return err
				}
				next.RootCa.JoinTokens.Worker = tok
			}
			if rot.GetManagerJoinToken() {
				tok, err := pki.GenerateJoinToken(digest)
				if err != nil {
					return err
				}
				next.RootCa.JoinTokens.Manager = tok
			}
		}
		out = next
		return tx.Update(next)
	})
	if err != nil {
		return nil, err
	}
	s.store.View(func(tx raftstore.ReadTx) { out = tx.Cluster(out.Id) })
	return &api.UpdateClusterResponse{Cluster: redactCluster(out)}, nil
}

func validateClusterSpec(spec *api.ClusterSpec) error {
	if err := specs.CheckUTF8("cluster spec", spec); err != nil {
		return err
	}
	if err := specs.CheckLabels("cluster label", spec.GetAnnotations().GetLabels()); err != nil {
		return err
	}
	if err := specs.CheckDuration("node certificate expiry", spec.GetCaConfig().GetNodeCertExpiry(), api.MaxNodeCertExpiry); err != nil {
		return err
	}
	if d := spec.GetCaConfig().GetNodeCertExpiry(); d != nil && d.AsDuration() < pki.MinNodeCertExpiry {
		return errdefs.InvalidArgument("node certificate expiry %v is below the minimum of %v", d.AsDuration(), pki.MinNodeCertExpiry)
	}
	if err := specs.CheckDuration("dispatcher heartbeat period", spec.GetDispatcher().GetHeartbeatPeriod(), api.MaxHeartbeatPeriod); err != nil {
		return err
	}
	if d := spec.GetDispatcher().GetHeartbeatPeriod(); d != nil && d.AsDuration() < 100*time.Millisecond {
		return errdefs.InvalidArgument("dispatcher heartbeat period %v is below the minimum of 100ms", d.AsDuration())
	}
	if spec.GetOrchestration().GetTaskHistoryRetentionLimit() < 0 {
		return errdefs.InvalidArgument("task history limit must not be negative")
	}
	if _, _, err := specs.ValidateAddressPools(spec.GetDefaultAddressPool(), spec.GetSubnetSize()); err != nil {
		return err
	}
	if err := specs.ValidateDataPathPort(spec.GetDataPathPort()); err != nil {
		return err
	}
	if r := spec.GetRaft(); r != nil && r.ElectionTick != 0 && r.ElectionTick <= r.HeartbeatTick {
		return errdefs.InvalidArgument("raft election tick (%d) must be larger than the heartbeat tick (%d)", r.ElectionTick, r.HeartbeatTick)
	}
	return nil
}

// checkOverlaySettings refuses changes to the address pools, the subnet
// size and the data path port: they are fixed at swarm init (as in
// Docker), since networks and nodes already use them.
func checkOverlaySettings(cur, next *api.ClusterSpec) error {
	if !slices.Equal(cur.GetDefaultAddressPool(), next.GetDefaultAddressPool()) || cur.GetSubnetSize() != next.GetSubnetSize() {
		return errdefs.InvalidArgument("the default address pool and subnet size are set at swarm init and cannot be changed (have %v /%d)",
			cur.GetDefaultAddressPool(), cur.GetSubnetSize())
	}
	if cur.GetDataPathPort() != next.GetDataPathPort() {
		return errdefs.InvalidArgument("the data path port is set at swarm init and cannot be changed (have %d)", cur.GetDataPathPort())
	}
	return nil
}

// updateUnlockKey keeps the cluster's unlock key in line with autolock: a
// new key when autolock is turned on or the key is rotated, none when it is
// off. Every manager re-wraps its data key when it sees the change.
func updateUnlockKey(c *api.Cluster, rotate bool) error {
	on := c.GetSpec().GetEncryption().GetAutoLockManagers()
	switch {
	case !on && rotate:
		return errdefs.FailedPrecondition("cannot rotate because autolock is not turned on")
	case !on:
		c.UnlockKey = nil
	case rotate || len(c.UnlockKey) != pki.UnlockKeySize:
		k, err := pki.GenerateUnlockKey()
		if err != nil {
			return err
		}
		c.UnlockKey = k
	}
	return nil
}

// GetUnlockKey returns the manager unlock key ("" when autolock is off).
// It is the only read of it; like every Control method, managers only.
func (s *Server) GetUnlockKey(_ context.Context, _ *api.GetUnlockKeyRequest) (*api.GetUnlockKeyResponse, error) {
	var c *api.Cluster
	s.store.View(func(tx raftstore.ReadTx) { c = firstCluster(tx) })
	if c == nil {
		return nil, errdefs.NotFound("the swarm has no cluster object yet")
	}
	return &api.GetUnlockKeyResponse{UnlockKey: pki.FormatUnlockKey(c.GetUnlockKey()), Version: c.GetMeta().GetVersion()}, nil
}
