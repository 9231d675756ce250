package daemontest

import (
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Now is the fake clock's time in tests; fixture timestamps are relative to it.
var Now = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

// IDs of the fixture objects.
const (
	Node1   = "dxn1zf6l61qsb1josjja83ngz"
	Node2   = "9j68exjopxe7wfl6yuxml7a7j"
	Node3   = "38ciaotwjuritcdtn9npbnkuz"
	Node10  = "e216jshn25ckzbvmwlnh5jr3g"
	Web     = "7q92v0nr1hcgts2amcjyqg3pq"
	API     = "ubqbypf0x3xm4s8yxtzsfazd5"
	Migrate = "kw1ttr4zkzvq7o2t4n4z9ijbc"
	Cache   = "zp1l5cmfx8k3eyjjdu0nyfn3c"
	Cluster = "cl7ap2i0n4kqk1g9kd8xq3w1z"

	WorkerToken  = "SHTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"
	ManagerToken = "SHTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-7p73s1dx5in4tatdymyhg9hu2"
)

// Ago is a timestamp d before Now.
func Ago(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(Now.Add(-d)) }

func meta(version uint64, created time.Duration) *api.Meta {
	return &api.Meta{Version: version, CreatedAt: Ago(created), UpdatedAt: Ago(created / 2)}
}

func node(id, host string, role api.NodeRole, state api.NodeStatus_State, avail api.Availability, ms *api.ManagerStatus) *api.Node {
	return &api.Node{
		Id:   id,
		Meta: meta(10, 3*time.Hour),
		Spec: &api.NodeSpec{Annotations: &api.Annotations{}, DesiredRole: role, Membership: api.NodeSpec_ACCEPTED, Availability: avail},
		Description: &api.NodeDescription{
			Hostname:  host,
			Platform:  &api.Platform{Os: "linux", Architecture: "x86_64"},
			Resources: &api.Resources{NanoCpus: 4e9, MemoryBytes: 8 << 30},
			Engine:    &api.EngineDescription{EngineVersion: "0.1.0"},
		},
		Status:        &api.NodeStatus{State: state, Addr: "10.0.0." + host[len("node"):]},
		ManagerStatus: ms,
		Role:          role,
	}
}

func task(id, service, svcName string, slot uint64, nodeID string, desired, state api.TaskState, ts, created time.Duration, errMsg string) *api.Task {
	return &api.Task{
		Id:                 id,
		Meta:               meta(5, created),
		ServiceId:          service,
		ServiceAnnotations: &api.Annotations{Name: svcName},
		Slot:               slot,
		NodeId:             nodeID,
		DesiredState:       desired,
		SpecVersion:        1,
		Spec:               &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx:1.27@sha256:0a1b2c3d4e5f6a7b8c9d0e1f6a7b8c9d0e1f6a7b8c9d0e1f6a7b8c9d0e1f2a3b"}},
		Status:             &api.TaskStatus{State: state, Timestamp: Ago(ts), Err: errMsg},
	}
}

// LoadCluster fills the store with a small swarm, as a snapshot would
// (versions and times as given): four nodes (node1, the local leader;
// node2, a reachable manager; node3 and node10, workers), services web (3
// replicas), api (global), migrate (replicated job) and cache (one replica
// per node at most), the tasks of web and api, a secret, a config and a
// network; and FixtureImages in the registry.
func (d *Daemon) LoadCluster() {
	for _, ref := range FixtureImages {
		d.PushImage(d.t, ref, "")
	}
	d.Mu.Lock()
	d.Members = []raftstore.MemberStatus{
		{RaftID: 1, NodeID: Node1, Addr: "10.0.0.1:4242", Leader: true, Reachable: true},
		{RaftID: 2, NodeID: Node2, Addr: "10.0.0.2:4242", Reachable: true},
	}
	d.InfoResp = &api.InfoResponse{
		State:            api.InfoResponse_ACTIVE,
		NodeId:           Node1,
		ClusterId:        Cluster,
		ControlAvailable: true,
		NodeAddr:         "10.0.0.1",
		Managers:         []*api.Peer{{NodeId: Node2, Addr: "10.0.0.2:4242"}, {NodeId: Node1, Addr: "10.0.0.1:4242"}},
		Nodes:            4,
		ManagerCount:     2,
		Version:          "0.1.0-dev",
		Hostname:         "node1",
		DataDir:          "/var/lib/shoal",
		LeaderAddr:       "10.0.0.1:4242",
		RaftAppliedIndex: 42,
	}
	d.Mu.Unlock()
	f := &Fixture{}
	f.Nodes = []*api.Node{
		node(Node10, "node10", api.NodeRole_WORKER, api.NodeStatus_READY, api.Availability_PAUSE, nil),
		node(Node2, "node2", api.NodeRole_MANAGER, api.NodeStatus_READY, api.Availability_ACTIVE,
			&api.ManagerStatus{RaftId: 2, Addr: "10.0.0.2:4242", Reachability: api.Reachability_REACHABLE}),
		node(Node1, "node1", api.NodeRole_MANAGER, api.NodeStatus_READY, api.Availability_ACTIVE,
			&api.ManagerStatus{RaftId: 1, Addr: "10.0.0.1:4242", Leader: true, Reachability: api.Reachability_REACHABLE}),
		node(Node3, "node3", api.NodeRole_WORKER, api.NodeStatus_DOWN, api.Availability_DRAIN, nil),
	}
	f.Nodes[2].Spec.Annotations.Labels = map[string]string{"zone": "east", "ssd": ""}
	f.Nodes[2].Description.Engine.Labels = map[string]string{"storage": "ssd"}
	webSpec := &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web", Labels: map[string]string{"com.example.team": "frontend"}},
		Task: &api.TaskSpec{
			Container: &api.ContainerSpec{
				Image:  "nginx:1.27@sha256:0a1b2c3d4e5f6a7b8c9d0e1f6a7b8c9d0e1f6a7b8c9d0e1f6a7b8c9d0e1f2a3b",
				Env:    []string{"MODE=prod", "DEBUG=0"},
				Args:   []string{"nginx", "-g", "daemon off;"},
				Mounts: []*api.Mount{{Type: api.Mount_VOLUME, Source: "web-data", Target: "/data"}},
			},
			Resources: &api.ResourceRequirements{Limits: &api.Resources{NanoCpus: 5e8, MemoryBytes: 64 << 20}},
			Restart:   &api.RestartPolicy{Condition: api.RestartPolicy_ON_FAILURE, Delay: durationpb.New(5 * time.Second), MaxAttempts: 3},
			Placement: &api.Placement{Constraints: []string{"node.role==worker"}},
		},
		Mode:     &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 3}},
		Update:   &api.UpdateConfig{Parallelism: 1, Delay: durationpb.New(10 * time.Second), Monitor: durationpb.New(5 * time.Second)},
		Rollback: &api.UpdateConfig{Parallelism: 1},
		Endpoint: &api.EndpointSpec{Ports: []*api.PortConfig{{Protocol: api.PortConfig_TCP, TargetPort: 80, PublishedPort: 8000}}},
	}
	apiSpec := &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "api"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "shoal/api:2"}},
		Mode:        &api.ServiceSpec_Global{Global: &api.GlobalService{}},
		Endpoint: &api.EndpointSpec{Ports: []*api.PortConfig{
			{Protocol: api.PortConfig_TCP, TargetPort: 9000, PublishedPort: 9000, PublishMode: api.PortConfig_HOST},
			{Protocol: api.PortConfig_UDP, TargetPort: 53, PublishedPort: 5353},
			{Protocol: api.PortConfig_UDP, TargetPort: 54, PublishedPort: 5354},
		}},
	}
	migrateSpec := &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "migrate"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "shoal/migrate:1"}},
		Mode:        &api.ServiceSpec_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 5}},
	}
	cacheSpec := &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "cache"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "redis:7"}, Placement: &api.Placement{MaxReplicas: 1}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 1}},
	}
	f.Services = []*api.Service{
		{Id: Web, Meta: meta(7, time.Hour), Spec: webSpec, SpecVersion: 1, PreviousSpec: nil},
		{Id: API, Meta: meta(3, 2*time.Hour), Spec: apiSpec, SpecVersion: 1},
		{Id: Migrate, Meta: meta(4, time.Hour), Spec: migrateSpec, SpecVersion: 1, JobStatus: &api.JobStatus{JobIteration: 1}},
		{Id: Cache, Meta: meta(2, time.Hour), Spec: cacheSpec, SpecVersion: 1},
	}
	run, shut := api.TaskState_RUNNING, api.TaskState_SHUTDOWN
	f.Tasks = []*api.Task{
		task("k3c9w0y4r6t2jg9mq2u7bd5e1", Web, "web", 1, Node2, shut, api.TaskState_FAILED, 20*time.Second, time.Minute, "task: non-zero exit (1)"),
		task("p1x8kq2m0b7d9sx0o1i7y3l2a", Web, "web", 1, Node1, run, run, 8*time.Second, 10*time.Second, ""),
		task("a8w7b1c0d4e6f9g2h5j3k7m1n", Web, "web", 2, Node2, run, run, 2*time.Minute, 3*time.Minute, ""),
		task("q0r1s2t3u4v5w6x7y8z9a0b1c", Web, "web", 3, "", run, api.TaskState_PENDING, 500*time.Millisecond, time.Second,
			"no suitable node (scheduling constraints not satisfied on 4 nodes)"),
		task("g1h2j3k4l5m6n7p8q9r0s1t2u", API, "api", 0, Node1, run, run, time.Hour, time.Hour, ""),
		task("v1w2x3y4z5a6b7c8d9e0f1g2h", API, "api", 0, Node2, run, api.TaskState_PREPARING, 3*time.Second, 5*time.Second, ""),
	}
	f.Tasks[4].Spec.Container.Image = "shoal/api:2"
	f.Tasks[4].Status.PortStatus = &api.PortStatus{Ports: []*api.PortConfig{{TargetPort: 9000, PublishedPort: 9000, PublishMode: api.PortConfig_HOST}}}
	f.Tasks[5].Spec.Container.Image = "shoal/api:2"
	// migrate (a job) completed three runs on node3, which is down since,
	// and runs a fourth on node10; cache runs on node1.
	for i, id := range []string{"m1c2o3m4p5l6e7t8e9d0a1b2c", "m2c3o4m5p6l7e8t9e0d1a2b3c", "m3c4o5m6p7l8e9t0e1d2a3b4c"} {
		t := task(id, Migrate, "migrate", uint64(i+1), Node3, api.TaskState_COMPLETE, api.TaskState_COMPLETE, time.Duration(40-10*i)*time.Minute, time.Hour, "")
		t.Spec.Container.Image = "shoal/migrate:1"
		f.Tasks = append(f.Tasks, t)
	}
	m4 := task("m4r5u6n7n8i9n0g1a2b3c4d5e", Migrate, "migrate", 4, Node10, api.TaskState_COMPLETE, run, 5*time.Minute, 6*time.Minute, "")
	m4.Spec.Container.Image = "shoal/migrate:1"
	c1 := task("c1a2c3h4e5r6u7n8n9i0n1g2x", Cache, "cache", 1, Node1, run, run, 50*time.Minute, time.Hour, "")
	c1.Spec.Container.Image = "redis:7"
	f.Tasks = append(f.Tasks, m4, c1)
	for _, t := range f.Tasks {
		if t.ServiceId == Migrate {
			t.JobIteration = 1
		}
	}
	f.Clusters = []*api.Cluster{{
		Id:   Cluster,
		Meta: meta(3, 3*time.Hour),
		Spec: &api.ClusterSpec{
			Annotations:        &api.Annotations{Name: "default"},
			Orchestration:      &api.OrchestrationSettings{TaskHistoryRetentionLimit: 5},
			Raft:               &api.RaftSettings{SnapshotInterval: 10000, HeartbeatTick: 1, ElectionTick: 30},
			Dispatcher:         &api.DispatcherSettings{HeartbeatPeriod: durationpb.New(5 * time.Second)},
			CaConfig:           &api.CASettings{NodeCertExpiry: durationpb.New(2160 * time.Hour)},
			DefaultAddressPool: []string{"10.0.0.0/8"},
			SubnetSize:         24,
		},
		RootCa: &api.RootCA{CaCertHash: "3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl", JoinTokens: &api.JoinTokens{Worker: WorkerToken, Manager: ManagerToken}},
	}}
	f.Clusters[0].SecretsKey = []byte(strings.Repeat("k", pki.SealKeySize))
	f.Secrets = []*api.Secret{{Id: "sec1abcdefghijklmnopqrstu", Meta: meta(2, 2*time.Hour), Spec: &api.SecretSpec{Annotations: &api.Annotations{Name: "db-password"}}}}
	f.Configs = []*api.Config{{Id: "cfg1abcdefghijklmnopqrstu", Meta: meta(2, 2*time.Hour), Spec: &api.ConfigSpec{Annotations: &api.Annotations{Name: "nginx-conf"}}}}
	f.Networks = []*api.Network{{Id: "net1abcdefghijklmnopqrstu", Meta: meta(2, 2*time.Hour), Vni: 4096,
		Spec: &api.NetworkSpec{Annotations: &api.Annotations{Name: "backend"}, Driver: &api.Driver{Name: "overlay"}}}}
	d.Load(f)
}

// Task builds a task of spec version 1 whose state changed d ago.
func Task(id, serviceID, serviceName string, slot uint64, nodeID string, desired, state api.TaskState, d time.Duration) *api.Task {
	return task(id, serviceID, serviceName, slot, nodeID, desired, state, d, d, "")
}

// Unlock keys in the shape shoal prints them: one a locked node may need.
const UnlockKey = "SHKEY-1-QefwcEg1VZAvl1uKmhH8OReM6i+CqWMWv6bgF0F/tvU"
