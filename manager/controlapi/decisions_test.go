package controlapi

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/manager/internal/storetest"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// fakeMembership is a raft membership for the Control API.
type fakeMembership []raftstore.MemberStatus

func (f fakeMembership) Members() []raftstore.MemberStatus { return f }

func mgrNode(id string, role api.NodeRole, state api.NodeStatus_State) *api.Node {
	return &api.Node{Id: id, Role: role, Spec: &api.NodeSpec{Annotations: &api.Annotations{Name: id}, DesiredRole: role, Membership: api.NodeSpec_ACCEPTED},
		Description: &api.NodeDescription{Hostname: id}, Status: &api.NodeStatus{State: state}}
}

func demote(s *Server, id string) error {
	var n *api.Node
	s.store.View(func(tx raftstore.ReadTx) { n = tx.Node(id) })
	_, err := s.UpdateNode(context.Background(), &api.UpdateNodeRequest{NodeId: id, NodeVersion: n.Meta.Version,
		Spec: &api.NodeSpec{Annotations: n.Spec.Annotations, DesiredRole: api.NodeRole_WORKER, Membership: n.Spec.Membership}})
	return err
}

// The last manager cannot be demoted, nor one whose leaving would lose
// quorum among the remaining members; otherwise demotion is recorded.
func TestDemotionGuards(t *testing.T) {
	s, _ := newTestServer(t)
	storetest.Seed(t, s.store, mgrNode("m1", api.NodeRole_MANAGER, api.NodeStatus_READY))
	if err := demote(s, "m1"); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "last manager") {
		t.Fatalf("demoting the last manager: %v", err)
	}
	storetest.Seed(t, s.store, mgrNode("m2", api.NodeRole_MANAGER, api.NodeStatus_READY), mgrNode("m3", api.NodeRole_MANAGER, api.NodeStatus_DOWN))
	s.members = fakeMembership{{RaftID: 1, NodeID: "m1", Reachable: true}, {RaftID: 2, NodeID: "m2", Reachable: true}, {RaftID: 3, NodeID: "m3"}}
	if err := demote(s, "m1"); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "loss of quorum") {
		t.Fatalf("demoting m1 with m3 unreachable: %v", err)
	}
	s.members = fakeMembership{{RaftID: 1, NodeID: "m1", Reachable: true}, {RaftID: 2, NodeID: "m2", Reachable: true}, {RaftID: 3, NodeID: "m3", Reachable: true}}
	if err := demote(s, "m1"); err != nil {
		t.Fatal(err)
	}
	resp, err := s.GetNode(context.Background(), &api.GetNodeRequest{NodeId: "m1"})
	if err != nil || resp.Node.Spec.DesiredRole != api.NodeRole_WORKER {
		t.Fatalf("after demotion: %v %v", resp.GetNode().GetSpec(), err)
	}
}

// A manager must be demoted before removal; a node that is up needs
// force; a removed node is remembered in the cluster (its certificate is
// refused from then on).
func TestRemoveNode(t *testing.T) {
	s, _ := newTestServer(t)
	storetest.Seed(t, s.store, mgrNode("m1", api.NodeRole_MANAGER, api.NodeStatus_READY),
		mgrNode("up", api.NodeRole_WORKER, api.NodeStatus_READY), mgrNode("gone", api.NodeRole_WORKER, api.NodeStatus_DOWN))
	rm := func(id string, force bool) error {
		_, err := s.RemoveNode(context.Background(), &api.RemoveNodeRequest{NodeId: id, Force: force})
		return err
	}
	if err := rm("m1", true); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "must be demoted") {
		t.Fatalf("removing a manager: %v", err)
	}
	if err := rm("up", false); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("removing a node that is up: %v", err)
	}
	if err := rm("gone", false); err != nil {
		t.Fatal(err)
	}
	if err := rm("up", true); err != nil {
		t.Fatal(err)
	}
	if err := rm("nowhere", true); !errdefs.IsNotFound(err) {
		t.Fatalf("removing an unknown node: %v", err)
	}
	var removed []string
	s.store.View(func(tx raftstore.ReadTx) {
		for _, r := range tx.Clusters()[0].RemovedNodes {
			removed = append(removed, r.NodeId)
		}
	})
	if strings.Join(removed, ",") != "gone,up" {
		t.Fatalf("removed nodes %v", removed)
	}
}

// Node lists filter by role, membership, node label and name prefix.
func TestListNodesFilters(t *testing.T) {
	s, _ := newTestServer(t)
	w := mgrNode("w1", api.NodeRole_WORKER, api.NodeStatus_READY)
	w.Spec.Annotations.Labels = map[string]string{"zone": "a"}
	p := mgrNode("w2", api.NodeRole_WORKER, api.NodeStatus_READY)
	p.Spec.Membership = api.NodeSpec_PENDING
	storetest.Seed(t, s.store, mgrNode("m1", api.NodeRole_MANAGER, api.NodeStatus_READY), w, p)
	list := func(f *api.ListFilters) string {
		t.Helper()
		resp, err := s.ListNodes(context.Background(), &api.ListNodesRequest{Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, n := range resp.Nodes {
			ids = append(ids, n.Id)
		}
		return strings.Join(ids, ",")
	}
	for _, tc := range []struct {
		f    *api.ListFilters
		want string
	}{
		{nil, "m1,w1,w2"},
		{&api.ListFilters{Roles: []api.NodeRole{api.NodeRole_MANAGER}}, "m1"},
		{&api.ListFilters{Memberships: []api.NodeSpec_Membership{api.NodeSpec_PENDING}}, "w2"},
		{&api.ListFilters{NodeLabels: []string{"zone=a"}}, "w1"},
		{&api.ListFilters{NodeLabels: []string{"zone=b"}}, ""},
		{&api.ListFilters{NodeLabels: []string{"zone"}}, "w1"},
		{&api.ListFilters{NamePrefixes: []string{"w"}}, "w1,w2"},
		{&api.ListFilters{Names: []string{"w2"}}, "w2"},
	} {
		if got := list(tc.f); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.f, got, tc.want)
		}
	}
}

// Secrets, configs and networks in use by a service cannot be removed
// (the error names the services); unused ones can; lookups go by ID, name
// or ID prefix and name what was not found.
func TestRemoveInUse(t *testing.T) {
	s, _ := newTestServer(t)
	ann := func(name string) *api.Annotations { return &api.Annotations{Name: name} }
	storetest.Seed(t, s.store,
		&api.Secret{Id: "sec1", Spec: &api.SecretSpec{Annotations: ann("pw")}},
		&api.Secret{Id: "sec2", Spec: &api.SecretSpec{Annotations: ann("unused")}},
		&api.Config{Id: "cfg1", Spec: &api.ConfigSpec{Annotations: ann("conf")}},
		&api.Network{Id: "net1", Spec: &api.NetworkSpec{Annotations: ann("back")}},
		&api.Service{Id: "svc1", Spec: &api.ServiceSpec{Annotations: ann("web"), Task: &api.TaskSpec{
			Container: &api.ContainerSpec{Image: "x",
				Secrets: []*api.SecretReference{{SecretId: "sec1", SecretName: "pw"}},
				Configs: []*api.ConfigReference{{ConfigId: "cfg1", ConfigName: "conf"}}},
			Networks: []*api.NetworkAttachmentConfig{{Target: "net1"}}}}})
	ctx := context.Background()
	if _, err := s.RemoveSecret(ctx, &api.RemoveSecretRequest{SecretId: "pw"}); !errdefs.IsFailedPrecondition(err) ||
		err.Error() != "secret 'pw' is in use by the following service: web" {
		t.Fatalf("secret in use: %v", err)
	}
	if _, err := s.RemoveConfig(ctx, &api.RemoveConfigRequest{ConfigId: "cfg1"}); !errdefs.IsFailedPrecondition(err) ||
		err.Error() != "config 'conf' is in use by the following service: web" {
		t.Fatalf("config in use: %v", err)
	}
	if _, err := s.RemoveNetwork(ctx, &api.RemoveNetworkRequest{NetworkId: "back"}); !errdefs.IsFailedPrecondition(err) ||
		!strings.Contains(err.Error(), "in use by service web") {
		t.Fatalf("network in use: %v", err)
	}
	if _, err := s.GetSecret(ctx, &api.GetSecretRequest{SecretId: "sec"}); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "ambiguous") {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	if resp, err := s.GetSecret(ctx, &api.GetSecretRequest{SecretId: "unused"}); err != nil || resp.Secret.Id != "sec2" || len(resp.Secret.Sealed) != 0 {
		t.Fatalf("get by name: %v %v", resp, err)
	}
	if _, err := s.RemoveSecret(ctx, &api.RemoveSecretRequest{SecretId: "sec2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSecret(ctx, &api.GetSecretRequest{SecretId: "sec2"}); !errdefs.IsNotFound(err) || err.Error() != "secret sec2 not found" {
		t.Fatalf("after removal: %v", err)
	}
	// Once the service goes, everything it used can go.
	if _, err := s.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: "svc1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveSecret(ctx, &api.RemoveSecretRequest{SecretId: "pw"}); err != nil {
		t.Fatal(err)
	}
	if resp, err := s.GetConfig(ctx, &api.GetConfigRequest{ConfigId: "conf"}); err != nil || resp.Config.Id != "cfg1" {
		t.Fatalf("get config: %v %v", resp, err)
	}
	if _, err := s.RemoveConfig(ctx, &api.RemoveConfigRequest{ConfigId: "conf"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetConfig(ctx, &api.GetConfigRequest{ConfigId: "conf"}); !errdefs.IsNotFound(err) {
		t.Fatalf("config after removal: %v", err)
	}
	if resp, err := s.GetNetwork(ctx, &api.GetNetworkRequest{NetworkId: "net1"}); err != nil || networkName(resp.Network) != "back" {
		t.Fatalf("get network: %v %v", resp, err)
	}
	if _, err := s.RemoveNetwork(ctx, &api.RemoveNetworkRequest{NetworkId: "back"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetNetwork(ctx, &api.GetNetworkRequest{NetworkId: "back"}); !errdefs.IsNotFound(err) {
		t.Fatalf("network after removal: %v", err)
	}
}

// Tasks: get by ID or prefix, list by desired state and by the names
// `service ps` prints, remove.
func TestTasks(t *testing.T) {
	s, _ := newTestServer(t)
	storetest.Seed(t, s.store,
		&api.Service{Id: "svc1", Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: "web"}}},
		&api.Task{Id: "task-a", ServiceId: "svc1", Slot: 1, DesiredState: api.TaskState_RUNNING},
		&api.Task{Id: "task-b", ServiceId: "svc1", Slot: 2, DesiredState: api.TaskState_SHUTDOWN},
		&api.Task{Id: "task-g", ServiceId: "svc1", NodeId: "n1", DesiredState: api.TaskState_RUNNING})
	ctx := context.Background()
	if resp, err := s.GetTask(ctx, &api.GetTaskRequest{TaskId: "task-a"}); err != nil || resp.Task.Slot != 1 {
		t.Fatalf("get: %v %v", resp, err)
	}
	list := func(f *api.ListFilters) string {
		t.Helper()
		resp, err := s.ListTasks(ctx, &api.ListTasksRequest{Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, tk := range resp.Tasks {
			ids = append(ids, tk.Id)
		}
		sort.Strings(ids)
		return strings.Join(ids, ",")
	}
	for _, tc := range []struct {
		f    *api.ListFilters
		want string
	}{
		{&api.ListFilters{DesiredStates: []api.TaskState{api.TaskState_RUNNING}}, "task-a,task-g"},
		{&api.ListFilters{Names: []string{"web.2"}}, "task-b"},
		{&api.ListFilters{Names: []string{"web.n1"}}, "task-g"},
		{&api.ListFilters{ServiceIds: []string{"svc1", "svc1"}, NamePrefixes: []string{"web.1"}}, "task-a"},
		{&api.ListFilters{NodeIds: []string{"n1"}}, "task-g"},
	} {
		if got := list(tc.f); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.f, got, tc.want)
		}
	}
	if _, err := s.RemoveTask(ctx, &api.RemoveTaskRequest{TaskId: "task-b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveTask(ctx, &api.RemoveTaskRequest{TaskId: "task-b"}); !errdefs.IsNotFound(err) {
		t.Fatalf("removing twice: %v", err)
	}
	if _, err := s.GetTask(ctx, &api.GetTaskRequest{TaskId: "task-b"}); !errdefs.IsNotFound(err) {
		t.Fatalf("get after removal: %v", err)
	}
}
