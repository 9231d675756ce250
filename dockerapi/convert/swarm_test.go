package convert

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func fullClusterSpec() *api.ClusterSpec {
	return &api.ClusterSpec{
		Annotations:        &api.Annotations{Name: "default", Labels: map[string]string{"a": "b"}},
		Orchestration:      &api.OrchestrationSettings{TaskHistoryRetentionLimit: 7},
		Raft:               &api.RaftSettings{SnapshotInterval: 20000, LogEntriesForSlowFollowers: 500, HeartbeatTick: 1, ElectionTick: 10, KeepOldSnapshots: 2},
		Dispatcher:         &api.DispatcherSettings{HeartbeatPeriod: durationpb.New(7 * time.Second)},
		CaConfig:           &api.CASettings{NodeCertExpiry: durationpb.New(48 * time.Hour)},
		Encryption:         &api.EncryptionSettings{AutoLockManagers: true},
		DefaultAddressPool: []string{"10.20.0.0/16"},
		SubnetSize:         26,
		DataPathPort:       5789,
	}
}

// A spec read with GET /swarm and sent back by `docker swarm update` keeps
// every field, including those docker's Spec does not carry.
func TestSwarmSpecRoundTrip(t *testing.T) {
	base := fullClusterSpec()
	s := ClusterSpecToMoby(base)
	b, _ := json.Marshal(s) // through JSON, as the CLI sends it
	var back swarm.Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	got, err := ClusterSpecFromMoby(back, base)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, base) {
		t.Fatalf("round trip changed the spec:\n got %v\nwant %v", got, base)
	}
	limit := int64(3)
	back.Orchestration.TaskHistoryRetentionLimit = &limit
	back.EncryptionConfig.AutoLockManagers = false
	got, err = ClusterSpecFromMoby(back, base)
	if err != nil {
		t.Fatal(err)
	}
	if got.Orchestration.TaskHistoryRetentionLimit != 3 || got.Encryption.AutoLockManagers || base.Orchestration.TaskHistoryRetentionLimit != 7 {
		t.Fatalf("update not applied or base modified: %v / %v", got, base)
	}
}

func TestClusterToMoby(t *testing.T) {
	c := &api.Cluster{
		Id:     "c1",
		Meta:   &api.Meta{Version: 9, CreatedAt: timestamppb.New(time.Unix(100, 0)), UpdatedAt: timestamppb.New(time.Unix(200, 0))},
		Spec:   &api.ClusterSpec{Annotations: &api.Annotations{Name: "default"}},
		RootCa: &api.RootCA{CaCert: []byte("not pem"), JoinTokens: &api.JoinTokens{Worker: "W", Manager: "M"}},
	}
	s := ClusterToMoby(c)
	if s.ID != "c1" || s.Version.Index != 9 || s.JoinTokens.Worker != "W" || s.JoinTokens.Manager != "M" || s.CreatedAt.Unix() != 100 {
		t.Fatalf("%+v", s)
	}
	if s.DataPathPort != 4789 || s.SubnetSize != 24 || len(s.DefaultAddrPool) != 1 || s.DefaultAddrPool[0].String() != "10.0.0.0/8" {
		t.Fatalf("defaults not shown: %+v", s.ClusterInfo)
	}
	if s.Spec.Labels == nil || s.TLSInfo.TrustRoot != "not pem" {
		t.Fatalf("%+v", s.Spec)
	}
}

// The body the docker 28.2 CLI sends for `docker swarm init`.
func TestInitRequestFromMobyCLIBody(t *testing.T) {
	body := `{"ListenAddr":"0.0.0.0:2377","AdvertiseAddr":"10.0.0.1","DataPathAddr":"","DataPathPort":0,"ForceNewCluster":false,"Spec":{"Labels":null,"Orchestration":{},"Raft":{"ElectionTick":0,"HeartbeatTick":0},"Dispatcher":{},"CAConfig":{},"TaskDefaults":{},"EncryptionConfig":{"AutoLockManagers":false}},"AutoLockManagers":true,"Availability":"drain","DefaultAddrPool":[],"SubnetSize":24}`
	var r swarm.InitRequest
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	req, err := InitRequestFromMoby(r)
	if err != nil {
		t.Fatal(err)
	}
	want := &api.InitRequest{ListenAddr: "0.0.0.0:2377", AdvertiseAddr: "10.0.0.1", Availability: api.Availability_DRAIN,
		Spec: &api.ClusterSpec{Encryption: &api.EncryptionSettings{AutoLockManagers: true}}}
	if !proto.Equal(req, want) {
		t.Fatalf("got %v\nwant %v", req, want)
	}
}

func TestClusterSpecFromMobyRefuses(t *testing.T) {
	for _, tc := range []struct {
		mut   func(*swarm.Spec)
		field string
	}{
		{func(s *swarm.Spec) { s.Raft.ElectionTick = 20 }, "Raft.ElectionTick"},
		{func(s *swarm.Spec) { s.Raft.HeartbeatTick = 3 }, "Raft.HeartbeatTick"},
		{func(s *swarm.Spec) { s.CAConfig.ExternalCAs = []*swarm.ExternalCA{{URL: "https://x"}} }, "CAConfig.ExternalCAs"},
		{func(s *swarm.Spec) { s.CAConfig.SigningCACert = "pem" }, "CAConfig.SigningCACert and SigningCAKey"},
		{func(s *swarm.Spec) { s.CAConfig.ForceRotate = 1 }, "CAConfig.ForceRotate"},
		{func(s *swarm.Spec) { s.TaskDefaults.LogDriver = &swarm.Driver{Name: "syslog"} }, "TaskDefaults.LogDriver"},
	} {
		var s swarm.Spec
		tc.mut(&s)
		_, err := ClusterSpecFromMoby(s, nil)
		if !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), tc.field+" is not supported by shoal") {
			t.Errorf("%s: got %v", tc.field, err)
		}
	}
	if _, err := InitRequestFromMoby(swarm.InitRequest{Availability: "sleepy"}); err == nil {
		t.Error("bad availability accepted")
	}
}

func TestJoinRequestsFromMoby(t *testing.T) {
	reqs, err := JoinRequestsFromMoby(swarm.JoinRequest{RemoteAddrs: []string{"a:1", "b:2"}, JoinToken: "T", ListenAddr: "0.0.0.0:2377"})
	if err != nil || len(reqs) != 2 || reqs[1].RemoteAddr != "b:2" || reqs[0].JoinToken != "T" {
		t.Fatalf("%v %v", reqs, err)
	}
	if _, err := JoinRequestsFromMoby(swarm.JoinRequest{JoinToken: "T"}); err == nil {
		t.Error("no remote accepted")
	}
}
