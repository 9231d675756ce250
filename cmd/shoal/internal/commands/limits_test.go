package commands

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	"github.com/shoal-project/shoal/internal/ids"
	api "github.com/shoal-project/shoal/proto"
)

// TestListsBeyondOneMessage: `service ls`, `service ps` of a 20,000-replica
// service and `config ls` of configs at the size limit work against the
// real Control API under the daemon's message cap: the lists come in pages
// that the CLI follows.
func TestListsBeyondOneMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 20,000 tasks")
	}
	const replicas = 20000
	spec := &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "big"},
		Task: &api.TaskSpec{Container: &api.ContainerSpec{Image: "127.0.0.1:5000/shoal/whoami:latest",
			Env: []string{"PADDING=" + strings.Repeat("x", 400)}}},
		Mode: &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: replicas}},
	}
	// Loaded as a snapshot: 20,000 transactions' worth of tasks, at once.
	meta := &api.Meta{Version: 1}
	svc := &api.Service{Id: ids.New(), Meta: meta, Spec: spec, SpecVersion: 1}
	f := &daemontest.Fixture{Services: []*api.Service{svc},
		Nodes: []*api.Node{{Id: "node1aaaaaaaaaaaaaaaaaaaa", Meta: meta, Spec: &api.NodeSpec{}, Description: &api.NodeDescription{Hostname: "h1"}}}}
	for i := 0; i < replicas; i++ {
		f.Tasks = append(f.Tasks, &api.Task{Id: ids.New(), Meta: meta, ServiceId: svc.Id, Slot: uint64(i + 1), NodeId: "node1aaaaaaaaaaaaaaaaaaaa", SpecVersion: 1,
			DesiredState: api.TaskState_RUNNING, Spec: spec.Task, ServiceAnnotations: spec.Annotations,
			Status: &api.TaskStatus{State: api.TaskState_RUNNING}})
	}
	for i := 0; i < 12; i++ {
		f.Configs = append(f.Configs, &api.Config{Id: ids.New(), Meta: meta, Spec: &api.ConfigSpec{
			Annotations: &api.Annotations{Name: fmt.Sprintf("big%02d", i)}, Data: make([]byte, api.MaxConfigDataBytes)}})
	}
	e := newEnv(t)
	f.Clusters = e.srv.Read().Clusters
	e.srv.Load(f)
	run := func(args ...string) result {
		t.Helper()
		r := e.run(args...)
		if r.Code != 0 {
			t.Fatalf("shoal %s: exit %d: %s", strings.Join(args, " "), r.Code, r.Err)
		}
		return r
	}
	if r := run("service", "ls"); !strings.Contains(r.Out, "20000/20000") {
		t.Errorf("service ls:\n%s", r.Out)
	}
	if r := run("service", "ps", "-q", "big"); strings.Count(r.Out, "\n") != replicas {
		t.Errorf("service ps listed %d tasks", strings.Count(r.Out, "\n"))
	}
	if r := run("config", "ls", "-q"); strings.Count(r.Out, "\n") != 12 {
		t.Errorf("config ls:\n%s", r.Out)
	}
	// A service using seven of them: the CLI resolves their names through
	// a list of 3.5 MiB.
	args := []string{"service", "create", "-d", "--name", "web"}
	for i := 0; i < 7; i++ {
		args = append(args, "--config", fmt.Sprintf("source=big%02d,target=/etc/big%02d", i, i))
	}
	run(append(args, "127.0.0.1:5000/shoal/whoami:latest")...)
}

// A reference of 100 KB is not repeated whole in the error.
func TestLongReferencesAreCutInMessages(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("a", 100000)
	for _, args := range [][]string{{"service", "inspect", long}, {"node", "inspect", long}, {"service", "ps", long}} {
		r := e.run(args...)
		if r.Code == 0 || len(r.Err) > 300 || !strings.Contains(r.Err, strings.Repeat("a", 64)+"…(100000 bytes)") {
			t.Errorf("%s %s: exit %d, %d bytes of error: %.200s", args[0], args[1], r.Code, len(r.Err), r.Err)
		}
	}
}
