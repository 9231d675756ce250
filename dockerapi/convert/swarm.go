package convert

// Cluster <-> swarm (GET /swarm, GET /info's cluster, POST
// /swarm/init|join|update).

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/moby/moby/api/types/swarm"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// Values shoal uses when a cluster spec leaves them unset, as docker shows
// them.
const (
	defaultAddrPool     = "10.0.0.0/8"
	defaultSubnetSize   = 24
	defaultDataPathPort = 4789
)

// ClusterToMoby converts a cluster to GET /swarm's answer, join tokens included.
func ClusterToMoby(c *api.Cluster) swarm.Swarm {
	return swarm.Swarm{
		ClusterInfo: ClusterInfoToMoby(c),
		JoinTokens: swarm.JoinTokens{
			Worker:  c.GetRootCa().GetJoinTokens().GetWorker(),
			Manager: c.GetRootCa().GetJoinTokens().GetManager(),
		},
	}
}

// ClusterInfoToMoby converts a cluster to the ClusterInfo of GET /info and
// GET /swarm (no join tokens).
func ClusterInfoToMoby(c *api.Cluster) swarm.ClusterInfo {
	spec := c.GetSpec()
	out := swarm.ClusterInfo{
		ID:           c.GetId(),
		Meta:         Meta(c.GetMeta()),
		Spec:         ClusterSpecToMoby(spec),
		TLSInfo:      clusterTLSInfo(c.GetRootCa().GetCaCert()),
		SubnetSize:   spec.GetSubnetSize(),
		DataPathPort: spec.GetDataPathPort(),
	}
	for _, p := range spec.GetDefaultAddressPool() {
		if pfx, err := netip.ParsePrefix(p); err == nil {
			out.DefaultAddrPool = append(out.DefaultAddrPool, pfx)
		}
	}
	if len(out.DefaultAddrPool) == 0 {
		out.DefaultAddrPool = []netip.Prefix{netip.MustParsePrefix(defaultAddrPool)}
	}
	if out.SubnetSize == 0 {
		out.SubnetSize = defaultSubnetSize
	}
	if out.DataPathPort == 0 {
		out.DataPathPort = defaultDataPathPort
	}
	return out
}

// clusterTLSInfo is TLSInfoFromCA for a read: a root CA that cannot be
// parsed still shows its PEM, without the issuer's subject and key.
func clusterTLSInfo(certPEM []byte) swarm.TLSInfo {
	out, err := TLSInfoFromCA(certPEM)
	if err != nil {
		return swarm.TLSInfo{TrustRoot: string(certPEM)}
	}
	return out
}

// ClusterSpecToMoby converts a cluster spec to docker's swarm.Spec.
func ClusterSpecToMoby(s *api.ClusterSpec) swarm.Spec {
	out := swarm.Spec{
		Annotations: swarm.Annotations{Name: s.GetAnnotations().GetName(), Labels: map[string]string{}},
		Raft: swarm.RaftConfig{
			SnapshotInterval:           s.GetRaft().GetSnapshotInterval(),
			LogEntriesForSlowFollowers: s.GetRaft().GetLogEntriesForSlowFollowers(),
			ElectionTick:               int(s.GetRaft().GetElectionTick()),
			HeartbeatTick:              int(s.GetRaft().GetHeartbeatTick()),
		},
		EncryptionConfig: swarm.EncryptionConfig{AutoLockManagers: s.GetEncryption().GetAutoLockManagers()},
	}
	for k, v := range s.GetAnnotations().GetLabels() {
		out.Labels[k] = v
	}
	if o := s.GetOrchestration(); o != nil {
		v := o.GetTaskHistoryRetentionLimit()
		out.Orchestration.TaskHistoryRetentionLimit = &v
	}
	if r := s.GetRaft(); r != nil {
		v := r.GetKeepOldSnapshots()
		out.Raft.KeepOldSnapshots = &v
	}
	if d := s.GetDispatcher().GetHeartbeatPeriod(); d != nil {
		out.Dispatcher.HeartbeatPeriod = d.AsDuration()
	}
	if d := s.GetCaConfig().GetNodeCertExpiry(); d != nil {
		out.CAConfig.NodeCertExpiry = d.AsDuration()
	}
	return out
}

// notSupported is the error for a docker field shoal cannot honour (an
// InvalidArgument: the handler answers 400).
func notSupported(field, why string) error {
	return errdefs.Newf(errdefs.ErrInvalidArgument, "%s is not supported by shoal: %s", field, why)
}

// ClusterSpecFromMoby applies docker's swarm.Spec to base (the cluster's current
// spec; nil for a new swarm) and returns the result; base is not modified.
// Unset (zero) fields keep base's value, as docker's zero values mean
// "default" at init and the CLI sends every field it read at update. Fields
// shoal cannot honour are refused with an InvalidArgument error naming them.
func ClusterSpecFromMoby(s swarm.Spec, base *api.ClusterSpec) (*api.ClusterSpec, error) {
	if err := checkSwarmSpec(s, base); err != nil {
		return nil, err
	}
	out := &api.ClusterSpec{}
	if base != nil {
		out = proto.Clone(base).(*api.ClusterSpec)
	}
	if s.Name != "" || s.Labels != nil {
		if out.Annotations == nil {
			out.Annotations = &api.Annotations{}
		}
		if s.Name != "" {
			out.Annotations.Name = s.Name
		}
		if s.Labels != nil {
			out.Annotations.Labels = map[string]string{}
			for k, v := range s.Labels {
				out.Annotations.Labels[k] = v
			}
		}
	}
	if p := s.Orchestration.TaskHistoryRetentionLimit; p != nil {
		swarmEnsure(&out.Orchestration).TaskHistoryRetentionLimit = *p
	}
	if v := s.Raft.SnapshotInterval; v != 0 {
		swarmEnsure(&out.Raft).SnapshotInterval = v
	}
	if p := s.Raft.KeepOldSnapshots; p != nil {
		swarmEnsure(&out.Raft).KeepOldSnapshots = *p
	}
	if v := s.Raft.LogEntriesForSlowFollowers; v != 0 {
		swarmEnsure(&out.Raft).LogEntriesForSlowFollowers = v
	}
	if d := s.Dispatcher.HeartbeatPeriod; d != 0 {
		swarmEnsure(&out.Dispatcher).HeartbeatPeriod = durationpb.New(d)
	}
	if d := s.CAConfig.NodeCertExpiry; d != 0 {
		swarmEnsure(&out.CaConfig).NodeCertExpiry = durationpb.New(d)
	}
	if s.EncryptionConfig.AutoLockManagers || out.Encryption != nil {
		swarmEnsure(&out.Encryption).AutoLockManagers = s.EncryptionConfig.AutoLockManagers
	}
	return out, nil
}

// checkSwarmSpec refuses what shoal cannot do.
func checkSwarmSpec(s swarm.Spec, base *api.ClusterSpec) error {
	ticks := []struct {
		field     string
		got, want int
	}{
		{"Raft.ElectionTick", s.Raft.ElectionTick, int(api.DefaultElectionTick)},
		{"Raft.HeartbeatTick", s.Raft.HeartbeatTick, int(api.DefaultHeartbeatTick)},
	}
	if r := base.GetRaft(); r != nil {
		if r.ElectionTick != 0 {
			ticks[0].want = int(r.ElectionTick)
		}
		if r.HeartbeatTick != 0 {
			ticks[1].want = int(r.HeartbeatTick)
		}
	}
	for _, tk := range ticks {
		if tk.got != 0 && tk.got != tk.want {
			return notSupported(tk.field, fmt.Sprintf("every manager runs with the ticks set when it starts (%d here; shoald's --raft-tick sets the tick length); send %d or 0", tk.want, tk.want))
		}
	}
	if s.Raft.ElectionTick < 0 || s.Raft.HeartbeatTick < 0 {
		return notSupported("Raft ticks", "they must not be negative")
	}
	if s.Dispatcher.HeartbeatPeriod < 0 {
		return notSupported("Dispatcher.HeartbeatPeriod", "it must not be negative")
	}
	if s.CAConfig.NodeCertExpiry < 0 {
		return notSupported("CAConfig.NodeCertExpiry", "it must not be negative")
	}
	if len(s.CAConfig.ExternalCAs) > 0 {
		return notSupported("CAConfig.ExternalCAs", "the managers sign node certificates with the swarm's own root CA; remove --external-ca")
	}
	if s.CAConfig.SigningCACert != "" || s.CAConfig.SigningCAKey != "" {
		return notSupported("CAConfig.SigningCACert and SigningCAKey", "the swarm's root CA cannot be replaced (no `swarm ca --rotate`)")
	}
	if s.CAConfig.ForceRotate != 0 {
		return notSupported("CAConfig.ForceRotate", "root CA rotation (`swarm ca --rotate`) is not implemented")
	}
	if s.TaskDefaults.LogDriver != nil && s.TaskDefaults.LogDriver.Name != "" {
		return notSupported("TaskDefaults.LogDriver", "tasks log through shoal's own log driver; set limits per service with --log-opt or per node with shoald --log-opt")
	}
	return nil
}

// InitRequestFromMoby converts POST /swarm/init's body to shoal's InitRequest.
func InitRequestFromMoby(r swarm.InitRequest) (*api.InitRequest, error) {
	spec, err := ClusterSpecFromMoby(r.Spec, nil)
	if err != nil {
		return nil, err
	}
	if r.AutoLockManagers {
		swarmEnsure(&spec.Encryption).AutoLockManagers = true
	}
	for _, p := range r.DefaultAddrPool {
		spec.DefaultAddressPool = append(spec.DefaultAddressPool, p.String())
	}
	if len(r.DefaultAddrPool) > 0 || r.SubnetSize != defaultSubnetSize {
		// The CLI always sends 24; keep shoal's own default otherwise.
		spec.SubnetSize = r.SubnetSize
	}
	spec.DataPathPort = r.DataPathPort
	avail, err := swarmAvailability(r.Availability)
	if err != nil {
		return nil, err
	}
	return &api.InitRequest{
		ListenAddr:      r.ListenAddr,
		AdvertiseAddr:   r.AdvertiseAddr,
		DataPathAddr:    r.DataPathAddr,
		ForceNewCluster: r.ForceNewCluster,
		Spec:            spec,
		Availability:    avail,
	}, nil
}

// JoinRequestsFromMoby converts POST /swarm/join's body to one JoinRequest per
// remote address, to be tried in order.
func JoinRequestsFromMoby(r swarm.JoinRequest) ([]*api.JoinRequest, error) {
	if len(r.RemoteAddrs) == 0 {
		return nil, errdefs.InvalidArgument("RemoteAddrs is empty: give at least one manager address (host:port)")
	}
	if r.JoinToken == "" {
		return nil, errdefs.InvalidArgument("JoinToken is empty: get one with `docker swarm join-token worker` on a manager")
	}
	avail, err := swarmAvailability(r.Availability)
	if err != nil {
		return nil, err
	}
	var out []*api.JoinRequest
	for _, a := range r.RemoteAddrs {
		out = append(out, &api.JoinRequest{
			RemoteAddr:    a,
			JoinToken:     r.JoinToken,
			ListenAddr:    r.ListenAddr,
			AdvertiseAddr: r.AdvertiseAddr,
			DataPathAddr:  r.DataPathAddr,
			Availability:  avail,
		})
	}
	return out, nil
}

// swarmAvailability parses a join or init request's Availability: empty is
// active, case does not matter.
func swarmAvailability(a swarm.NodeAvailability) (api.Availability, error) {
	if a == "" {
		return api.Availability_ACTIVE, nil
	}
	return availabilities.fromMoby("Availability", swarm.NodeAvailability(strings.ToLower(string(a))))
}

// swarmEnsure allocates *p when it is nil and returns it.
func swarmEnsure[T any](p **T) *T {
	if *p == nil {
		*p = new(T)
	}
	return *p
}
