package convert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

func TestNodeSpecFromClientBodies(t *testing.T) {
	cur := &api.NodeSpec{Annotations: &api.Annotations{Name: "n"}, DesiredRole: api.NodeRole_WORKER, Membership: api.NodeSpec_ACCEPTED,
		Availability: api.Availability_ACTIVE}
	cases := map[string]*api.NodeSpec{
		`{"Labels":{},"Role":"manager","Availability":"drain"}`: {Annotations: &api.Annotations{}, DesiredRole: api.NodeRole_MANAGER,
			Membership: api.NodeSpec_ACCEPTED, Availability: api.Availability_DRAIN},
		`{"Labels":{"foo":"bar"},"Role":"manager","Availability":"active"}`: {Annotations: &api.Annotations{Labels: map[string]string{"foo": "bar"}},
			DesiredRole: api.NodeRole_MANAGER, Membership: api.NodeSpec_ACCEPTED},
		`{"Name":"n","Labels":{}}`: cur,
	}
	for body, want := range cases {
		var m swarm.NodeSpec
		if err := strictDecode([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		got, err := NodeSpecFromMoby(m, cur)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", body, got, want)
		}
		// And back.
		if back := NodeSpecToMoby(got); back.Role == "" || back.Availability == "" || back.Labels == nil {
			t.Errorf("NodeSpecToMoby(%v) = %+v", got, back)
		}
	}
	for _, bad := range []swarm.NodeSpec{{Role: "boss"}, {Availability: "asleep"}} {
		if _, err := NodeSpecFromMoby(bad, cur); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if s, _ := NodeSpecFromMoby(swarm.NodeSpec{Role: swarm.NodeRoleWorker}, nil); s.GetMembership() != api.NodeSpec_ACCEPTED {
		t.Errorf("no current spec: membership %v", s.GetMembership())
	}
}

func TestNodeWithoutManagerStatus(t *testing.T) {
	n := NodeToMoby(&api.Node{Id: "w", Spec: &api.NodeSpec{}, Status: &api.NodeStatus{State: api.NodeStatus_DOWN, Message: "heartbeat failure"}}, swarm.TLSInfo{})
	if n.ManagerStatus != nil || n.Status.State != swarm.NodeStateDown || n.Spec.Role != swarm.NodeRoleWorker || n.Spec.Availability != swarm.NodeAvailabilityActive {
		t.Errorf("%+v", n)
	}
	b, _ := json.Marshal(n)
	if strings.Contains(string(b), "ManagerStatus") {
		t.Errorf("worker JSON has ManagerStatus: %s", b)
	}
}

func TestTLSInfoFromCA(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "swarm-ca"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	info, err := TLSInfoFromCA(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	if info.TrustRoot != string(caPEM) || !bytes.Equal(info.CertIssuerSubject, cert.RawSubject) ||
		!bytes.Equal(info.CertIssuerPublicKey, cert.RawSubjectPublicKeyInfo) {
		t.Errorf("TLSInfo %+v", info)
	}
	if _, err := TLSInfoFromCA([]byte("junk")); err == nil {
		t.Error("junk accepted")
	}
}

func TestSecretsAndConfigs(t *testing.T) {
	sec := &api.Secret{Id: "sec1", Meta: &api.Meta{Version: 7, CreatedAt: ts("2026-11-30T09:00:00Z")},
		Spec: &api.SecretSpec{Annotations: &api.Annotations{Name: "s1"}, Data: []byte("hunter2")}, Sealed: []byte("x"), Digest: "abc"}
	b, _ := json.Marshal(SecretToMoby(sec))
	if strings.Contains(string(b), "Data") || strings.Contains(string(b), "aHVudGVyMg") {
		t.Errorf("secret read shows data: %s", b)
	}
	if !strings.Contains(string(b), `"Version":{"Index":7}`) || !strings.Contains(string(b), `"Name":"s1"`) || !strings.Contains(string(b), `"Labels":{}`) {
		t.Errorf("secret JSON: %s", b)
	}
	// Client bodies (create and stack deploy's update).
	for _, body := range []string{`{"Name":"s1","Labels":{},"Data":"aGkK"}`, `{"Data": "eA==", "Name": "s1"}`,
		`{"Name":"st_s1","Labels":{"com.docker.stack.namespace":"st"},"Data":"aGkK"}`} {
		var m swarm.SecretSpec
		if err := strictDecode([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		s, err := SecretSpecFromMoby(m)
		if err != nil || s.GetAnnotations().GetName() == "" || len(s.GetData()) == 0 {
			t.Errorf("%s: %v %v", body, s, err)
		}
		if back, _ := SecretSpecFromMoby(SecretSpecToMoby(s)); !proto.Equal(back, s) {
			t.Errorf("secret spec round trip: %v != %v", back, s)
		}
		var c swarm.ConfigSpec
		if err := strictDecode([]byte(body), &c); err != nil {
			t.Fatal(err)
		}
		cs, err := ConfigSpecFromMoby(c)
		if err != nil {
			t.Fatal(err)
		}
		if back, _ := ConfigSpecFromMoby(ConfigSpecToMoby(cs)); !proto.Equal(back, cs) {
			t.Errorf("config spec round trip: %v != %v", back, cs)
		}
	}
	if _, err := SecretSpecFromMoby(swarm.SecretSpec{Driver: &swarm.Driver{Name: "vault"}}); err == nil || !strings.HasPrefix(err.Error(), "Driver is not supported by shoal") {
		t.Errorf("secret driver: %v", err)
	}
	if _, err := SecretSpecFromMoby(swarm.SecretSpec{Templating: &swarm.Driver{Name: "golang"}}); err == nil || !strings.HasPrefix(err.Error(), "Templating") {
		t.Errorf("secret templating: %v", err)
	}
	if _, err := ConfigSpecFromMoby(swarm.ConfigSpec{Templating: &swarm.Driver{Name: "golang"}}); err == nil {
		t.Error("config templating accepted")
	}
	// Empty drivers, as some clients send them, are fine.
	if _, err := SecretSpecFromMoby(swarm.SecretSpec{Driver: &swarm.Driver{}, Templating: &swarm.Driver{}}); err != nil {
		t.Error(err)
	}
	cfg := ConfigToMoby(&api.Config{Id: "c1", Spec: &api.ConfigSpec{Annotations: &api.Annotations{Name: "c"}, Data: []byte("x")}})
	if string(cfg.Spec.Data) != "x" {
		t.Errorf("config data: %q", cfg.Spec.Data)
	}
}

func TestServiceObject(t *testing.T) {
	prev := fullSpec()
	prev.Task.Container.Image = "nginx:1.24"
	spec := fullSpec()
	spec.Mode = &api.ServiceSpec_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 1, TotalCompletions: 3}}
	svc := &api.Service{Id: "s", Meta: &api.Meta{Version: 3}, Spec: spec, PreviousSpec: prev,
		UpdateStatus: &api.UpdateStatus{State: api.UpdateStatus_ROLLBACK_PAUSED, Message: "update paused due to failure"},
		JobStatus:    &api.JobStatus{JobIteration: 2, LastExecution: ts("2026-11-30T11:00:00Z")}}
	m := ServiceToMoby(svc)
	if m.PreviousSpec == nil || m.PreviousSpec.TaskTemplate.ContainerSpec.Image != "nginx:1.24" {
		t.Errorf("PreviousSpec: %+v", m.PreviousSpec)
	}
	if m.UpdateStatus.State != swarm.UpdateStateRollbackPaused || m.UpdateStatus.StartedAt != nil {
		t.Errorf("UpdateStatus: %+v", m.UpdateStatus)
	}
	if m.JobStatus == nil || m.JobStatus.JobIteration.Index != 2 || m.JobStatus.LastExecution.IsZero() {
		t.Errorf("JobStatus: %+v", m.JobStatus)
	}
	if m.Endpoint.Spec.Mode != swarm.ResolutionModeVIP || len(m.Endpoint.Spec.Ports) != 3 {
		t.Errorf("Endpoint before allocation shows the spec's: %+v", m.Endpoint)
	}
	if m.ServiceStatus != nil {
		t.Error("ServiceStatus set without counts")
	}
	m.ServiceStatus = ServiceStatus(TaskCounts{Running: 1, Desired: 1, Completed: 2})
	b, _ := json.Marshal(m)
	if !strings.Contains(string(b), `"ServiceStatus":{"RunningTasks":1,"DesiredTasks":1,"CompletedTasks":2}`) {
		t.Errorf("ServiceStatus JSON: %s", b)
	}
	// A service without an update in its history has no UpdateStatus.
	if m := ServiceToMoby(&api.Service{Spec: fullSpec()}); m.UpdateStatus != nil || m.JobStatus != nil || m.PreviousSpec != nil {
		t.Errorf("fresh service: %+v", m)
	}
}

func TestServiceSpecWithDefaults(t *testing.T) {
	s := cliSpecFor(t, `{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"Mode":{"Replicated":{"Replicas":1}}}`)
	m := ServiceSpecToMoby(ServiceSpecWithDefaults(s))
	b, _ := json.Marshal(m)
	for _, k := range []string{`"StopGracePeriod":10000000000`, `"DNSConfig":{}`, `"Resources":{"Limits":{},"Reservations":{}}`,
		`"RestartPolicy":{"Condition":"any","Delay":5000000000,"MaxAttempts":0}`, `"Placement":{}`,
		`"UpdateConfig":{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0,"Order":"stop-first"}`,
		`"RollbackConfig":{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0,"Order":"stop-first"}`,
		`"EndpointSpec":{"Mode":"vip"}`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("defaults lack %s: %s", k, b)
		}
	}
	if s.GetTask().GetRestart() != nil || s.GetUpdate() != nil {
		t.Error("ServiceSpecWithDefaults changed its argument")
	}
	// What the client set stays.
	full := ServiceSpecWithDefaults(fullSpec())
	if !proto.Equal(full.GetTask().GetRestart(), fullSpec().GetTask().GetRestart()) || !proto.Equal(full.GetUpdate(), fullSpec().GetUpdate()) {
		t.Error("defaults overwrote set fields")
	}
	job := fullSpec()
	job.Mode, job.Update, job.Rollback = &api.ServiceSpec_GlobalJob{GlobalJob: &api.GlobalJob{}}, nil, nil
	if j := ServiceSpecWithDefaults(job); j.GetUpdate() != nil || j.GetRollback() != nil {
		t.Error("a job got update configs")
	}
}

func cliSpecFor(t *testing.T, body string) *api.ServiceSpec {
	t.Helper()
	var m swarm.ServiceSpec
	if err := strictDecode([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	s, err := ServiceSpecFromMoby(&m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTaskLabelsAndJob(t *testing.T) {
	task := &api.Task{
		Id:                 "t",
		Annotations:        &api.Annotations{Name: "web.1.t", Labels: map[string]string{"own": "1", "shared": "task"}},
		ServiceAnnotations: &api.Annotations{Name: "web", Labels: map[string]string{"com.docker.stack.namespace": "st", "shared": "svc"}},
		JobIteration:       3,
		Status: &api.TaskStatus{State: api.TaskState_FAILED, Err: "task: non-zero exit (1)", Container: &api.ContainerStatus{ExitCode: 1},
			PortStatus: &api.PortStatus{Ports: []*api.PortConfig{{TargetPort: 80, PublishedPort: 30000, PublishMode: api.PortConfig_HOST}}}},
		DesiredState: api.TaskState_SHUTDOWN,
		Networks:     []*api.NetworkAttachment{{NetworkId: "ing", NetworkName: "ingress", Ingress: true, Addresses: []string{"10.0.0.9/24"}}},
	}
	m := TaskToMoby(task, func(string) *api.Network { return nil })
	want := map[string]string{"com.docker.stack.namespace": "st", "shared": "task", "own": "1"}
	if len(m.Labels) != len(want) {
		t.Errorf("labels %v, want %v", m.Labels, want)
	}
	for k, v := range want {
		if m.Labels[k] != v {
			t.Errorf("labels %v, want %v", m.Labels, want)
		}
	}
	if m.Name != "web.1.t" || m.JobIteration == nil || m.JobIteration.Index != 3 {
		t.Errorf("name/job: %q %+v", m.Name, m.JobIteration)
	}
	if m.Status.State != "failed" || m.DesiredState != "shutdown" || m.Status.Err == "" || m.Status.ContainerStatus.ExitCode != 1 {
		t.Errorf("status: %+v", m.Status)
	}
	if p := m.Status.PortStatus.Ports; len(p) != 1 || p[0].PublishMode != swarm.PortConfigPublishModeHost || p[0].Protocol != "tcp" {
		t.Errorf("port status: %+v", p)
	}
	if n := m.NetworksAttachments[0].Network; !n.Spec.Ingress || n.Spec.Name != "ingress" || n.IPAMOptions != nil {
		t.Errorf("ingress attachment: %+v", n)
	}
	// Failed and desired shutdown: its addresses are freed, not shown
	// (as Docker's allocator clears them); while either is RUNNING or
	// before, they are held.
	if a := m.NetworksAttachments[0].Addresses; a != nil {
		t.Errorf("addresses of a dead task: %v", a)
	}
	for _, st := range [][2]api.TaskState{{api.TaskState_RUNNING, api.TaskState_SHUTDOWN}, {api.TaskState_FAILED, api.TaskState_RUNNING}, {api.TaskState_PENDING, api.TaskState_RUNNING}} {
		task.Status.State, task.DesiredState = st[0], st[1]
		if a := TaskToMoby(task, nil).NetworksAttachments[0].Addresses; len(a) != 1 || a[0].String() != "10.0.0.9/24" {
			t.Errorf("addresses of a task %v, desired %v: %v", st[0], st[1], a)
		}
	}
	if m := TaskToMoby(&api.Task{}, nil); m.JobIteration != nil || m.Labels == nil {
		t.Errorf("empty task: %+v", m)
	}
}

// A running task's host-mode ports are in its PortStatus (shoal's worker
// records none; Prometheus' swarm discovery reads them there); a stopped
// task's are not, and a recorded PortStatus is kept.
func TestTaskHostPortStatus(t *testing.T) {
	task := &api.Task{
		Status: &api.TaskStatus{State: api.TaskState_RUNNING},
		Endpoint: &api.Endpoint{Ports: []*api.PortConfig{
			{Name: "metrics", Protocol: api.PortConfig_TCP, TargetPort: 9100, PublishedPort: 19100, PublishMode: api.PortConfig_HOST},
			{Protocol: api.PortConfig_UDP, TargetPort: 53, PublishedPort: 5353, PublishMode: api.PortConfig_HOST},
			{TargetPort: 81, PublishMode: api.PortConfig_HOST}, // published 0: the mesh serves it nowhere
			{TargetPort: 80, PublishedPort: 8080, PublishMode: api.PortConfig_INGRESS},
		}},
	}
	want := []swarm.PortConfig{
		{Name: "metrics", Protocol: "tcp", TargetPort: 9100, PublishedPort: 19100, PublishMode: "host"},
		{Protocol: "udp", TargetPort: 53, PublishedPort: 5353, PublishMode: "host"},
	}
	if got := TaskToMoby(task, nil).Status.PortStatus.Ports; !reflect.DeepEqual(got, want) {
		t.Errorf("running task's port status:\n got %+v\nwant %+v", got, want)
	}
	for _, s := range []api.TaskState{api.TaskState_STARTING, api.TaskState_SHUTDOWN, api.TaskState_FAILED} {
		task.Status.State = s
		if got := TaskToMoby(task, nil).Status.PortStatus.Ports; got != nil {
			t.Errorf("%v task's port status: %+v", s, got)
		}
	}
	task.Status.PortStatus = &api.PortStatus{Ports: []*api.PortConfig{{TargetPort: 1, PublishedPort: 2, PublishMode: api.PortConfig_HOST}}}
	if got := TaskToMoby(task, nil).Status.PortStatus.Ports; len(got) != 1 || got[0].PublishedPort != 2 {
		t.Errorf("recorded port status: %+v", got)
	}
}

func TestCountTasks(t *testing.T) {
	task := func(svc, node string, desired, state api.TaskState, iter uint64) *api.Task {
		return &api.Task{ServiceId: svc, NodeId: node, DesiredState: desired, Status: &api.TaskStatus{State: state}, JobIteration: iter}
	}
	R, S, C := api.TaskState_RUNNING, api.TaskState_SHUTDOWN, api.TaskState_COMPLETE
	tasks := []*api.Task{
		task("s", "n1", R, R, 0),
		task("s", "n2", R, api.TaskState_PREPARING, 0),
		task("s", "n1", S, R, 0), // being replaced: still running, not wanted
		task("s", "down", R, R, 0),
		task("other", "n1", R, R, 0),
	}
	live := func(n string) bool { return n != "down" }
	repl := &api.Service{Id: "s", Spec: &api.ServiceSpec{Mode: &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 3}}}}
	if got := CountTasks(repl, tasks, live); got != (TaskCounts{Running: 1, Desired: 3}) {
		t.Errorf("replicated: %+v", got)
	}
	global := &api.Service{Id: "s", Spec: &api.ServiceSpec{Mode: &api.ServiceSpec_Global{Global: &api.GlobalService{}}}}
	if got := CountTasks(global, tasks, live); got != (TaskCounts{Running: 1, Desired: 2}) {
		t.Errorf("global: %+v", got)
	}
	if got := CountTasks(global, tasks, nil); got != (TaskCounts{Running: 2, Desired: 3}) {
		t.Errorf("global, all nodes live: %+v", got)
	}
	job := &api.Service{Id: "s", JobStatus: &api.JobStatus{JobIteration: 2},
		Spec: &api.ServiceSpec{Mode: &api.ServiceSpec_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 5}}}}
	jobTasks := []*api.Task{
		task("s", "n1", C, C, 2), task("s", "n1", C, C, 2), task("s", "n1", C, C, 2), task("s", "n2", C, R, 2),
		task("s", "n1", C, C, 1), // an earlier run
	}
	if got := CountTasks(job, jobTasks, live); got != (TaskCounts{Running: 1, Desired: 2, Completed: 3}) {
		t.Errorf("replicated job: %+v", got)
	}
	jobTasks = append(jobTasks, task("s", "n1", C, C, 2), task("s", "n1", C, C, 2))
	if got := CountTasks(job, jobTasks, live); got.Desired != 0 || got.Completed != 5 {
		t.Errorf("finished job: %+v", got)
	}
}
