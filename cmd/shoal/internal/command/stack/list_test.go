package stack_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/commandtest"
	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	api "github.com/shoal-project/shoal/proto"
)

// twoStacks deploys stacks "app" (the example) and "tools".
func twoStacks(t *testing.T) *commandtest.Env {
	e := commandtest.New(t, 0)
	e.MustRun("stack", "deploy", "-d", "-c", exampleApp(t), "app")
	e.MustRun("stack", "deploy", "-d", "-c", e.File("tools.yml", "services:\n  shell:\n    image: busybox\n    deploy:\n      mode: global\n"), "tools")
	return e
}

func TestStackLs(t *testing.T) {
	e := twoStacks(t)
	e.Golden("stack_ls", "stack", "ls")
	e.Golden("stack_ls_format", "stack", "ls", "--format", "{{.Name}}={{.Services}}")
	e.Golden("stack_ls_json", "stack", "ls", "--format", "json")
	req := e.Srv.Requests("ListServices")
	if got := req[len(req)-1].(*api.ListServicesRequest).GetFilters().GetLabels(); len(got) != 1 || got[0] != "io.shoal.stack.namespace" {
		t.Errorf("label filter %v", got)
	}
}

func TestStackServices(t *testing.T) {
	e := twoStacks(t)
	e.Srv.Edit(func(f *daemontest.Fixture) { // one task of each service runs
		for _, s := range f.Services {
			if strings.HasPrefix(s.GetSpec().GetAnnotations().GetName(), "app_") || strings.HasPrefix(s.GetSpec().GetAnnotations().GetName(), "tools_") {
				f.Tasks = append(f.Tasks, daemontest.Task(s.GetId()[:4]+"taskaaaaaaaaaaaaaaaaa", s.GetId(), s.GetSpec().GetAnnotations().GetName(), 1,
					daemontest.Node1, api.TaskState_RUNNING, api.TaskState_RUNNING, time.Second))
			}
		}
	})
	e.Golden("stack_services", "stack", "services", "app")
	e.Golden("stack_services_quiet", "stack", "services", "-q", "tools")
	e.Golden("stack_services_none", "stack", "services", "nope")
	e.MustRun("stack", "services", "-f", "name=web", "-f", "mode=replicated", "app")
	req := e.Srv.Requests("ListServices")
	f := req[len(req)-1].(*api.ListServicesRequest).GetFilters()
	if strings.Join(f.GetNamePrefixes(), ",") != "web,app_web" || strings.Join(f.GetLabels(), ",") != "io.shoal.stack.namespace=app" {
		t.Errorf("filters %v", f)
	}
	e.Golden("stack_services_bad_filter", "stack", "services", "-f", "image=x", "app")
}

func TestStackPs(t *testing.T) {
	e := twoStacks(t)
	var web *api.Service
	for _, s := range e.Srv.Read().Services {
		if s.GetSpec().GetAnnotations().GetName() == "app_web" {
			web = s
		}
	}
	e.Srv.Edit(func(f *daemontest.Fixture) {
		f.Tasks = append(f.Tasks,
			daemontest.Task("t1aaaaaaaaaaaaaaaaaaaaaaa", web.GetId(), "app_web", 1, daemontest.Node1, api.TaskState_RUNNING, api.TaskState_RUNNING, 8*time.Second),
			daemontest.Task("t2aaaaaaaaaaaaaaaaaaaaaaa", web.GetId(), "app_web", 2, daemontest.Node2, api.TaskState_RUNNING, api.TaskState_STARTING, 2*time.Second))
	})
	e.Golden("stack_ps", "stack", "ps", "app")
	e.Golden("stack_ps_quiet", "stack", "ps", "-q", "app")
	e.Golden("stack_ps_empty", "stack", "ps", "tools")
	e.Golden("stack_ps_none", "stack", "ps", "nope")
	req := e.Srv.Requests("ListTasks")
	if ids := req[len(req)-1].(*api.ListTasksRequest).GetFilters().GetServiceIds(); len(ids) != 1 {
		t.Errorf("tasks of %v, want the one tools service", ids)
	}
}

func TestStackRm(t *testing.T) {
	e := twoStacks(t)
	e.Golden("stack_rm", "stack", "rm", "app", "nope")
	for _, s := range e.Srv.Read().Services {
		if strings.HasPrefix(s.GetSpec().GetAnnotations().GetName(), "app_") {
			t.Errorf("%s left", s.GetSpec().GetAnnotations().GetName())
		}
	}
	if left := e.Srv.Read(); len(left.Secrets) != 1 || len(left.Configs) != 1 || len(left.Networks) != 2 {
		t.Errorf("left: %d secrets, %d configs, %d networks (want the fixture's and tools_default)", len(left.Secrets), len(left.Configs), len(left.Networks))
	}
	e.Srv.Errors["RemoveNetwork"] = errorInUse
	start := e.Clock.Now()
	e.Golden("stack_rm_failure", "stack", "rm", "tools")
	if waited := e.Clock.Now().Sub(start); waited < 30*time.Second || waited > 32*time.Second {
		t.Errorf("stack rm retried the network for %s, want about 30s", waited)
	}
}

// A network the swarm still says is in use (its tasks are shutting down)
// is retried until it goes.
func TestStackRmNetworkRetry(t *testing.T) {
	e := twoStacks(t)
	e.Srv.ErrorsOnce["RemoveNetwork"] = []error{errorInUse, errorInUse}
	e.Golden("stack_rm_network_retry", "stack", "rm", "tools")
	for _, n := range e.Srv.Read().Networks {
		if n.GetSpec().GetAnnotations().GetName() == "tools_default" {
			t.Error("tools_default left")
		}
	}
	if got := len(e.Srv.Requests("RemoveNetwork")); got != 3 {
		t.Errorf("%d RemoveNetwork calls, want 3", got)
	}
}

func TestStackRmWaits(t *testing.T) {
	e := twoStacks(t)
	var id string
	for _, s := range e.Srv.Read().Services {
		if s.GetSpec().GetAnnotations().GetName() == "tools_shell" {
			id = s.GetId()
		}
	}
	// The task shuts down and is removed by the fourth poll.
	e.Srv.Edit(func(f *daemontest.Fixture) {
		f.Tasks = append(f.Tasks, daemontest.Task("t9aaaaaaaaaaaaaaaaaaaaaaa", id, "tools_shell", 0, daemontest.Node1, api.TaskState_SHUTDOWN, api.TaskState_RUNNING, time.Second))
	})
	e.Srv.Before("ListTasks", func(n int, _ proto.Message) {
		if n == 3 {
			e.Srv.Edit(func(f *daemontest.Fixture) {
				f.Tasks = slices.DeleteFunc(f.Tasks, func(t *api.Task) bool { return t.GetId() == "t9aaaaaaaaaaaaaaaaaaaaaaa" })
			})
		}
	})
	e.MustRun("stack", "rm", "-d=false", "tools")
	if n := len(e.Srv.Requests("ListTasks")); n != 4 {
		t.Errorf("%d ListTasks, want 4 (until no task is left)", n)
	}
}

func TestStackConfig(t *testing.T) {
	e := commandtest.New(t, 0)
	a := e.File("a.yml", "version: \"3.8\"\nservices:\n  web:\n    image: nginx:${TAG:-1.27}\n    restart: always\n    deploy:\n      replicas: 2\n")
	b := e.File("b.yml", "services:\n  web:\n    deploy:\n      replicas: 5\n")
	e.Golden("stack_config", "stack", "config", "-c", a, "-c", b)
	e.Golden("stack_config_skip", "stack", "config", "--skip-interpolation", "-c", a)
	if len(e.Srv.Calls()) != 0 {
		t.Error("stack config talked to the daemon")
	}
}
