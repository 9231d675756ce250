package stack_test

import (
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/cmd/shoal/internal/testserver"
	api "github.com/shoal-project/shoal/proto"
)

// twoStacks deploys stacks "app" (the example) and "tools".
func twoStacks(t *testing.T) *env {
	e := newEnv(t)
	e.mustRun("stack", "deploy", "-d", "-c", exampleApp(t), "app")
	e.mustRun("stack", "deploy", "-d", "-c", e.file("tools.yml", "services:\n  shell:\n    image: busybox\n    deploy:\n      mode: global\n"), "tools")
	return e
}

func TestStackLs(t *testing.T) {
	e := twoStacks(t)
	e.golden("stack_ls", "stack", "ls")
	e.golden("stack_ls_format", "stack", "ls", "--format", "{{.Name}}={{.Services}}")
	e.golden("stack_ls_json", "stack", "ls", "--format", "json")
	req := e.srv.Requests("ListServices")
	if got := req[len(req)-1].(*api.ListServicesRequest).GetFilters().GetLabels(); len(got) != 1 || got[0] != "io.shoal.stack.namespace" {
		t.Errorf("label filter %v", got)
	}
}

func TestStackServices(t *testing.T) {
	e := twoStacks(t)
	for _, s := range e.srv.Services {
		e.srv.Counts[s.GetId()] = &api.ServiceCounts{Running: 1, Desired: s.GetSpec().GetReplicated().GetReplicas()}
	}
	e.golden("stack_services", "stack", "services", "app")
	e.golden("stack_services_quiet", "stack", "services", "-q", "tools")
	e.golden("stack_services_none", "stack", "services", "nope")
	e.mustRun("stack", "services", "-f", "name=web", "-f", "mode=replicated", "app")
	req := e.srv.Requests("ListServices")
	f := req[len(req)-1].(*api.ListServicesRequest).GetFilters()
	if strings.Join(f.GetNamePrefixes(), ",") != "web,app_web" || strings.Join(f.GetLabels(), ",") != "io.shoal.stack.namespace=app" {
		t.Errorf("filters %v", f)
	}
	e.golden("stack_services_bad_filter", "stack", "services", "-f", "image=x", "app")
}

func TestStackPs(t *testing.T) {
	e := twoStacks(t)
	var web *api.Service
	for _, s := range e.srv.Services {
		if s.GetSpec().GetAnnotations().GetName() == "app_web" {
			web = s
		}
	}
	e.srv.Tasks = append(e.srv.Tasks,
		testserver.Task("t1aaaaaaaaaaaaaaaaaaaaaaa", web.GetId(), "app_web", 1, testserver.Node1, api.TaskState_RUNNING, api.TaskState_RUNNING, 8*time.Second),
		testserver.Task("t2aaaaaaaaaaaaaaaaaaaaaaa", web.GetId(), "app_web", 2, testserver.Node2, api.TaskState_RUNNING, api.TaskState_STARTING, 2*time.Second))
	e.golden("stack_ps", "stack", "ps", "app")
	e.golden("stack_ps_quiet", "stack", "ps", "-q", "app")
	e.golden("stack_ps_empty", "stack", "ps", "tools")
	e.golden("stack_ps_none", "stack", "ps", "nope")
	req := e.srv.Requests("ListTasks")
	if ids := req[len(req)-1].(*api.ListTasksRequest).GetFilters().GetServiceIds(); len(ids) != 1 {
		t.Errorf("tasks of %v, want the one tools service", ids)
	}
}

func TestStackRm(t *testing.T) {
	e := twoStacks(t)
	e.golden("stack_rm", "stack", "rm", "app", "nope")
	for _, s := range e.srv.Services {
		if strings.HasPrefix(s.GetSpec().GetAnnotations().GetName(), "app_") {
			t.Errorf("%s left", s.GetSpec().GetAnnotations().GetName())
		}
	}
	if len(e.srv.Secrets) != 1 || len(e.srv.Configs) != 1 || len(e.srv.Networks) != 2 {
		t.Errorf("left: %d secrets, %d configs, %d networks (want the fixture's and tools_default)", len(e.srv.Secrets), len(e.srv.Configs), len(e.srv.Networks))
	}
	e.srv.Errors["RemoveNetwork"] = errorInUse
	e.golden("stack_rm_failure", "stack", "rm", "tools")
}

func TestStackRmWaits(t *testing.T) {
	e := twoStacks(t)
	var id string
	for _, s := range e.srv.Services {
		if s.GetSpec().GetAnnotations().GetName() == "tools_shell" {
			id = s.GetId()
		}
	}
	e.srv.ListTasksHook = func(n int, _ *api.ListTasksRequest) []*api.Task {
		if n < 3 {
			return []*api.Task{testserver.Task("t9aaaaaaaaaaaaaaaaaaaaaaa", id, "tools_shell", 0, testserver.Node1, api.TaskState_SHUTDOWN, api.TaskState_RUNNING, time.Second)}
		}
		return nil
	}
	e.mustRun("stack", "rm", "-d=false", "tools")
	if n := len(e.srv.Requests("ListTasks")); n != 4 {
		t.Errorf("%d ListTasks, want 4 (until no task is left)", n)
	}
}

func TestStackConfig(t *testing.T) {
	e := newEnv(t)
	a := e.file("a.yml", "version: \"3.8\"\nservices:\n  web:\n    image: nginx:${TAG:-1.27}\n    restart: always\n    deploy:\n      replicas: 2\n")
	b := e.file("b.yml", "services:\n  web:\n    deploy:\n      replicas: 5\n")
	e.golden("stack_config", "stack", "config", "-c", a, "-c", b)
	e.golden("stack_config_skip", "stack", "config", "--skip-interpolation", "-c", a)
	if len(e.srv.Calls()) != 0 {
		t.Error("stack config talked to the daemon")
	}
}
