package commands

import (
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	api "github.com/shoal-project/shoal/proto"
)

func TestServiceLs(t *testing.T) {
	e := newEnv(t)
	e.golden("service_ls", "service", "ls")
	e.golden("service_ls_quiet", "service", "ls", "-q")
	e.golden("service_ls_json", "service", "ls", "--format", "json")
	e.golden("service_ls_template", "service", "ls", "--format", "{{.Name}}: {{.Replicas}} {{join (split .Image \":\") \"|\"}} {{.Mode | title}}")
	e.golden("service_ls_bad_template", "service", "ls", "--format", "{{.Nope")
	e.golden("service_ls_bad_field", "service", "ls", "--format", "{{.Nope}}")
}

func TestServiceLsFilters(t *testing.T) {
	e := newEnv(t)
	if r := e.run("service", "ls", "-f", "name=we", "-f", "mode=global", "-f", "label=team", "-f", "id=7q"); r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Err)
	}
	e.requestGolden("ListServices", "service_ls_filters.request")
	e2 := newEnv(t)
	e2.golden("service_ls_bad_mode", "service", "ls", "-f", "mode=daemonset")
	e2.nothingSent()
}

func TestServicePs(t *testing.T) {
	e := newEnv(t)
	e.golden("service_ps", "service", "ps", "web")
	e.golden("service_ps_global", "service", "ps", "api")
	e.golden("service_ps_notrunc", "service", "ps", "--no-trunc", "web")
	e.golden("service_ps_quiet", "service", "ps", "-q", "web", "api")
	e.golden("service_ps_format", "service", "ps", "--format", "{{.Name}} {{.CurrentState}} {{.Error}}", "web")
	e.golden("service_ps_name_filter", "service", "ps", "-f", "name=web.1", "web")
	e.golden("service_ps_missing", "service", "ps", "web", "nope")
}

func TestServicePsFilters(t *testing.T) {
	e := newEnv(t)
	if r := e.run("service", "ps", "-f", "desired-state=running", "-f", "node=node2", "-f", "node=self", "web"); r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Err)
	}
	e.requestGolden("ListTasks", "service_ps_filters.request")
	e2 := newEnv(t)
	e2.golden("service_ps_bad_state", "service", "ps", "-f", "desired-state=sleeping", "web")
	e2.golden("service_ps_bad_key", "service", "ps", "-f", "image=nginx", "web")
	e2.noMutations()
}

func TestServiceInspect(t *testing.T) {
	e := newEnv(t)
	e.golden("service_inspect", "service", "inspect", "migrate")
	e.golden("service_inspect_pretty", "service", "inspect", "--pretty", "web")
	e.golden("service_inspect_format", "service", "inspect", "-f", "{{.Spec.Name}} {{.ID}} {{.Spec.TaskTemplate.ContainerSpec.Image}} {{.Spec.Mode.Replicated.Replicas}} {{json .Spec.Labels}} {{.CreatedAt}}", "web")
	// Docker's names and values, its template functions, and docker's
	// fallback to the JSON's maps for a field the type lacks.
	e.golden("service_inspect_format_docker", "service", "inspect", "-f",
		`{{index .Spec.Labels "com.example.team"}} {{.Version.Index}} {{.Spec.UpdateConfig.FailureAction}} {{upper .Spec.UpdateConfig.Order}} {{.Spec.EndpointSpec.Mode}} {{join .Spec.TaskTemplate.ContainerSpec.Args ","}} {{range .Spec.TaskTemplate.Placement.Constraints}}{{println .}}{{end}}`, "web")
	e.golden("service_inspect_format_json", "service", "inspect", "-f", "json", "web")
	e.golden("service_inspect_format_old_name", "service", "inspect", "-f", "{{.Spec.Task.Container.Image}}", "web", "migrate")
	e.golden("service_inspect_missing", "service", "inspect", "nope")
}

func TestServiceInspectPrettyFull(t *testing.T) {
	e := newEnv(t)
	e.srv.Edit(func(f *daemontest.Fixture) {
		svc := f.Service("web")
		svc.UpdateStatus = &api.UpdateStatus{State: api.UpdateStatus_PAUSED, StartedAt: daemontest.Ago(90e9), Message: "update paused due to failure or early termination of task k3c9w0y4r6t2"}
		c := svc.Spec.Task.Container
		c.Healthcheck = &api.HealthConfig{Test: []string{"CMD-SHELL", "curl -f localhost"}, Retries: 3}
		c.Secrets = []*api.SecretReference{{SecretId: "sec1", SecretName: "db-password", File: &api.FileTarget{Name: "db-password"}}}
		svc.Spec.Task.Placement.Preferences = []*api.PlacementPreference{{SpreadDescriptor: "node.labels.zone"}}
		svc.Spec.Task.Placement.MaxReplicas = 2
		svc.Endpoint = &api.Endpoint{Spec: svc.Spec.Endpoint, Ports: svc.Spec.Endpoint.GetPorts()}
	})
	e.golden("service_inspect_pretty_full", "service", "inspect", "--pretty", "web")
	e.golden("service_inspect_update_state", "service", "inspect", "-f", "{{.UpdateStatus.State}} {{range .Endpoint.Ports}}{{.PublishedPort}}:{{.TargetPort}}/{{.Protocol}}{{end}}", "web")
}

func TestServiceRm(t *testing.T) {
	e := newEnv(t)
	e.golden("service_rm", "service", "rm", "web", "nope", "api")
	if n := len(e.srv.Requests("RemoveService")); n != 3 {
		t.Errorf("%d RemoveService calls, want 3", n)
	}
}

func TestServiceLogs(t *testing.T) {
	e := newEnv(t)
	// The workers of node1 and node2 hold these lines; node3 and node10
	// have no agent (down, or not connected).
	err := e.srv.ServeLogs([]string{daemontest.Node1, daemontest.Node2},
		logLine(daemontest.Web, daemontest.Node1, "p1x8kq2m0b7d9sx0o1i7y3l2a", api.LogStream_LOG_STREAM_STDOUT, "GET / 200\n"),
		logLine(daemontest.Web, daemontest.Node2, "a8w7b1c0d4e6f9g2h5j3k7m1n", api.LogStream_LOG_STREAM_STDERR, "warn: slow\n"),
		logLine(daemontest.Web, daemontest.Node1, "p1x8kq2m0b7d9sx0o1i7y3l2a", api.LogStream_LOG_STREAM_STDOUT, "two\nlines"))
	if err != nil {
		t.Fatal(err)
	}
	e.golden("service_logs", "service", "logs", "web")
	e.golden("service_logs_options", "service", "logs", "-t", "--no-task-ids", "--tail", "5", "--since", "10m", "-f", "web")
	req := e.lastRequest("SubscribeLogs").(*api.SubscribeLogsRequest)
	if o := req.GetOptions(); !o.GetFollow() || o.GetTail() != 5 || !o.GetSince().AsTime().Equal(daemontest.Now.Add(-600e9)) {
		t.Errorf("options %v", o)
	}
	e.golden("service_logs_raw", "service", "logs", "--raw", "--no-trunc", "web")
	e.golden("service_logs_task", "service", "logs", "--no-resolve", "p1x8kq2m0b7d")
	if sel := e.lastRequest("SubscribeLogs").(*api.SubscribeLogsRequest).GetSelector(); len(sel.GetTaskIds()) != 1 {
		t.Errorf("selector %v, want the task", sel)
	}
	// migrate ran on node3 (down) and node10: their logs are missing, and
	// the broker says so.
	e.golden("service_logs_nodes_missing", "service", "logs", "migrate")
	e.golden("service_logs_missing", "service", "logs", "nope")
	e.golden("service_logs_bad_tail", "service", "logs", "--tail", "lots", "web")
	e.golden("service_logs_bad_since", "service", "logs", "--since", "yesterday", "web")
}

func logLine(service, node, task string, stream api.LogStream, data string) *api.LogMessage {
	return &api.LogMessage{
		Context:   &api.LogContext{ServiceId: service, NodeId: node, TaskId: task},
		Timestamp: timestamppb.New(daemontest.Now),
		Stream:    stream,
		Data:      []byte(data),
	}
}
