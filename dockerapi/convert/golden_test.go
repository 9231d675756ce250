package convert

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/shoal-project/shoal/proto"
)

// The files in testdata/ are what dockerd 20.10 answers (API 1.41) for the
// same objects: shapes from the swagger spec of API 1.41 and dockerd's
// output for a service made by `docker service create --name web
// --replicas 2 -p 8080:80 --secret s1 --network net1 nginx` (the request
// body is the one in engine-api/docker-cli-requests.log), one of its tasks,
// and a manager node. knownDiffs lists the paths where shoal differs on
// purpose, with the reason; everything else must match exactly.

func ts(s string) *timestamppb.Timestamp {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return timestamppb.New(t)
}

// cliBody is the docker 20.10 CLI's create body, with the network name
// resolved to its ID as the handler does.
const cliBody = `{"Name":"web","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"nginx:latest@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","Init":false,"DNSConfig":{},"Secrets":[{"File":{"Name":"s1","UID":"0","GID":"0","Mode":292},"SecretID":"sec1","SecretName":"s1"}]},"Resources":{"Limits":{},"Reservations":{}},"Placement":{"Platforms":[{"Architecture":"amd64","OS":"linux"}]},"Networks":[{"Target":"net1id"}],"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":2}},"EndpointSpec":{"Mode":"vip","Ports":[{"Protocol":"tcp","TargetPort":80,"PublishedPort":8080,"PublishMode":"ingress"}]}}`

func cliSpec(t *testing.T) *api.ServiceSpec {
	t.Helper()
	var m swarm.ServiceSpec
	if err := strictDecode([]byte(cliBody), &m); err != nil {
		t.Fatal(err)
	}
	s, err := ServiceSpecFromMoby(&m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var initDiff = "shoal keeps Init as a bool: false, Docker's default, is not echoed back (true is)"

func TestGoldenService(t *testing.T) {
	spec := cliSpec(t)
	ports := []*api.PortConfig{{Protocol: api.PortConfig_TCP, TargetPort: 80, PublishedPort: 8080, PublishMode: api.PortConfig_INGRESS}}
	svc := &api.Service{
		Id:   "svc1",
		Meta: &api.Meta{Version: 10, CreatedAt: ts("2026-11-30T10:00:00.123456789Z"), UpdatedAt: ts("2026-11-30T10:00:01.5Z")},
		Spec: spec,
		Endpoint: &api.Endpoint{Spec: spec.GetEndpoint(), Ports: ports, VirtualIps: []*api.Endpoint_VirtualIP{
			{NetworkId: "ingressid", Addr: "10.0.0.7/24"}, {NetworkId: "net1id", Addr: "10.0.1.2/24"},
		}},
		UpdateStatus: &api.UpdateStatus{State: api.UpdateStatus_COMPLETED, StartedAt: ts("2026-11-30T10:05:00Z"),
			CompletedAt: ts("2026-11-30T10:05:30Z"), Message: "update completed"},
	}
	golden(t, "service.json", ServiceToMoby(svc), map[string]string{
		"Spec.TaskTemplate.ContainerSpec.Init": initDiff,
	})
}

func TestGoldenTask(t *testing.T) {
	spec := cliSpec(t).GetTask()
	spec.Container.Secrets = nil
	net1 := &api.Network{
		Id:   "net1id",
		Meta: &api.Meta{Version: 6, CreatedAt: ts("2026-11-30T09:59:00Z"), UpdatedAt: ts("2026-11-30T09:59:00.5Z")},
		Spec: &api.NetworkSpec{Annotations: &api.Annotations{Name: "net1"}, Driver: &api.Driver{Name: "overlay"}, Attachable: true},
		Vni:  4097,
		Ipam: []*api.IPAMConfig{{Subnet: "10.0.1.0/24", Gateway: "10.0.1.1"}},
	}
	task := &api.Task{
		Id:        "task1",
		Meta:      &api.Meta{Version: 14, CreatedAt: ts("2026-11-30T10:00:00.2Z"), UpdatedAt: ts("2026-11-30T10:00:03.25Z")},
		Spec:      spec,
		ServiceId: "svc1",
		Slot:      1,
		NodeId:    "node1",
		Status: &api.TaskStatus{Timestamp: ts("2026-11-30T10:00:03.25Z"), State: api.TaskState_RUNNING, Message: "started",
			Container: &api.ContainerStatus{ContainerId: "c0ffee0000000000000000000000000000000000000000000000000000000001", Pid: 4321,
				Addresses: []string{"172.18.0.5/16"}}},
		DesiredState:       api.TaskState_RUNNING,
		ServiceAnnotations: &api.Annotations{Name: "web"},
		Networks: []*api.NetworkAttachment{{NetworkId: "net1id", Addresses: []string{"10.0.1.5/24"}, NetworkName: "net1", Vni: 4097,
			Subnet: "10.0.1.0/24", Gateway: "10.0.1.1", Mac: "02:00:0a:00:01:05"}},
	}
	lookup := func(id string) *api.Network {
		if id == net1.GetId() {
			return net1
		}
		return nil
	}
	golden(t, "task.json", TaskToMoby(task, lookup), map[string]string{
		"Spec.ContainerSpec.Init": initDiff,
		"Volumes":                 "moby v1.57's Task always has Volumes (cluster volumes, API 1.42+): null, as newer dockerd prints it",
	})

	// Without the lookup, the attachment's own copy gives the same network
	// minus its Meta (which only the stored object has).
	got := TaskToMoby(task, nil).NetworksAttachments[0].Network
	want := TaskToMoby(task, lookup).NetworksAttachments[0].Network
	want.Meta, want.Spec.Attachable = swarm.Meta{}, false
	if !reflect.DeepEqual(got, want) {
		t.Errorf("network from the attachment:\n got %+v\nwant %+v", got, want)
	}
}

func TestGoldenNode(t *testing.T) {
	n := &api.Node{
		Id:   "node1",
		Meta: &api.Meta{Version: 9, CreatedAt: ts("2026-11-30T09:00:00Z"), UpdatedAt: ts("2026-11-30T09:30:00.75Z")},
		Spec: &api.NodeSpec{Annotations: &api.Annotations{Labels: map[string]string{"zone": "a"}}, DesiredRole: api.NodeRole_MANAGER,
			Membership: api.NodeSpec_ACCEPTED, Availability: api.Availability_ACTIVE},
		Description: &api.NodeDescription{
			Hostname:  "h1",
			Platform:  &api.Platform{Architecture: "amd64", Os: "linux"},
			Resources: &api.Resources{NanoCpus: 2000000000, MemoryBytes: 4124000256},
			Engine:    &api.EngineDescription{EngineVersion: "20.10.24+dfsg1"},
		},
		Status:        &api.NodeStatus{State: api.NodeStatus_READY, Addr: "10.0.0.1"},
		ManagerStatus: &api.ManagerStatus{RaftId: 7, Addr: "10.0.0.1:2377", Leader: true, Reachability: api.Reachability_REACHABLE},
		Role:          api.NodeRole_MANAGER,
	}
	tls := swarm.TLSInfo{
		TrustRoot:           "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		CertIssuerSubject:   []byte("0\x111\x0f0\r\x06\x03U\x04\x03\x13\x06shoal"),
		CertIssuerPublicKey: []byte{1, 2, 3},
	}
	golden(t, "node.json", NodeToMoby(n, tls), map[string]string{
		"Description.Engine.Plugins": "Docker lists its engine's plugins; shoal lists the drivers a shoal node has",
	})
}

// golden compares v's JSON with testdata/name, ignoring the paths in
// known (dot-separated keys) on both sides; each must be on one side at least.
func golden(t *testing.T, name string, v any, known map[string]string) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	wantRaw, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(wantRaw, &want); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for path := range known {
		inWant, inGot := dropPath(want, path), dropPath(got, path)
		if !inWant && !inGot {
			t.Errorf("%s: known difference %s is on neither side: remove it from the list", name, path)
		}
	}
	if !reflect.DeepEqual(got, want) {
		gi, _ := json.MarshalIndent(got, "", "  ")
		wi, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("%s differs from dockerd's answer\n got %s\nwant %s", name, gi, wi)
	}
}

func dropPath(v any, path string) bool {
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		v = m[k]
	}
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	_, had := m[keys[len(keys)-1]]
	delete(m, keys[len(keys)-1])
	return had
}
