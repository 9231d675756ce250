package commands

import (
	"fmt"
	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

func logDriverOf(t *testing.T, e *env, method string) string {
	t.Helper()
	var d *api.Driver
	switch r := e.lastRequest(method).(type) {
	case *api.CreateServiceRequest:
		d = r.GetSpec().GetTask().GetLogDriver()
	case *api.UpdateServiceRequest:
		d = r.GetSpec().GetTask().GetLogDriver()
	}
	if d == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q %v", d.GetName(), d.GetOptions())
}

// --log-driver and --log-opt as Docker's: they become the task template's
// log driver.
func TestServiceCreateLogDriver(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-driver", "json-file", "--log-opt", "max-size=10m", "--log-opt", "max-file=3"}, `"json-file" map[max-file:3 max-size:10m]`},
		{[]string{"--log-driver", "local"}, `"local" map[]`},
		{[]string{"--log-driver", "none"}, `"none" map[]`},
		// Docker's CLI drops --log-opt without --log-driver; shoal applies
		// it to the node's default driver.
		{[]string{"--log-opt", "max-file=2"}, `"" map[max-file:2]`},
		{nil, "<nil>"},
	} {
		e := newEnv(t)
		args := append(append([]string{"service", "create", "-d"}, c.args...), "nginx")
		if r := e.run(args...); r.Code != 0 {
			t.Fatalf("%v: exit %d: %s", c.args, r.Code, r.Err)
		}
		if got := logDriverOf(t, e, "CreateService"); got != c.want {
			t.Errorf("%v: log driver %s, want %s", c.args, got, c.want)
		}
	}
}

// Bad drivers and options are refused before anything is sent, with what
// is accepted.
func TestServiceCreateLogDriverRefused(t *testing.T) {
	e := newEnv(t)
	e.golden("service_create_log_driver_syslog", "service", "create", "-d", "--log-driver", "syslog", "nginx")
	e.golden("service_create_log_opt_size", "service", "create", "-d", "--log-opt", "max-size=huge", "nginx")
	e.golden("service_create_log_opt_file", "service", "create", "-d", "--log-driver", "json-file", "--log-opt", "max-file=0", "nginx")
	e.golden("service_create_log_opt_unknown", "service", "create", "-d", "--log-driver", "local", "--log-opt", "color=red", "nginx")
	e.golden("service_create_log_opt_compress", "service", "create", "-d", "--log-opt", "compress=true", "nginx")
	e.golden("service_create_log_opt_no_value", "service", "create", "-d", "--log-opt", "max-size", "nginx")
	e.golden("service_create_log_none_opts", "service", "create", "-d", "--log-driver", "none", "--log-opt", "max-size=1m", "nginx")
	e.nothingSent()
}

// service update: the options given replace the service's (as Docker's);
// the driver stays unless --log-driver names another; flags not given
// leave it alone.
func TestServiceUpdateLogDriver(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-opt", "max-file=5"}, `"json-file" map[max-file:5]`},
		{[]string{"--log-driver", "none"}, `"none" map[]`},
		{[]string{"--log-driver", "local", "--log-opt", "max-size=5m"}, `"local" map[max-size:5m]`},
		{[]string{"--replicas", "2"}, `"json-file" map[max-file:2 max-size:1m]`},
	} {
		e := newEnv(t)
		e.srv.Edit(func(f *daemontest.Fixture) {
			f.Service("web").Spec.Task.LogDriver = &api.Driver{Name: "json-file", Options: map[string]string{"max-size": "1m", "max-file": "2"}}

		})
		args := append(append([]string{"service", "update", "-d"}, c.args...), "web")
		if r := e.run(args...); r.Code != 0 {
			t.Fatalf("%v: exit %d: %s", c.args, r.Code, r.Err)
		}
		if got := logDriverOf(t, e, "UpdateService"); got != c.want {
			t.Errorf("%v: log driver %s, want %s", c.args, got, c.want)
		}
	}
	e := newEnv(t)
	e.golden("service_update_log_driver_gelf", "service", "update", "-d", "--log-driver", "gelf", "web")
	e.noMutations()
}

// inspect shows the log driver under Docker's names and in --pretty.
func TestServiceInspectLogDriver(t *testing.T) {
	e := newEnv(t)
	e.srv.Edit(func(f *daemontest.Fixture) {
		f.Service("web").Spec.Task.LogDriver = &api.Driver{Name: "json-file", Options: map[string]string{"max-size": "10m", "max-file": "3"}}
	})
	e.golden("service_inspect_log_driver", "service", "inspect", "-f",
		`{{.Spec.TaskTemplate.LogDriver.Name}} {{.Spec.TaskTemplate.LogDriver.Options}} {{index .Spec.TaskTemplate.LogDriver.Options "max-size"}}`, "web")
	e.golden("service_inspect_pretty_log_driver", "service", "inspect", "--pretty", "web")
}
