package commands

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	api "github.com/shoal-project/shoal/proto"
)

func TestVersion(t *testing.T) {
	e := newEnv(t)
	e.golden("version", "version")
	e.golden("version_format", "version", "--format", "{{.Client.Version}} {{.Server.Version}}")
	e.golden("version_flag", "--version")
}

func TestVersionWithoutDaemon(t *testing.T) {
	e := newEnv(t)
	e.srv.Socket = filepath.Join(t.TempDir(), "gone.sock")
	r := e.run("version")
	if r.Code != 1 || !strings.Contains(r.Out, "Client:") ||
		r.Err != "Cannot connect to the shoal daemon at unix://"+e.srv.Socket+". Is the shoal daemon running?\n" {
		t.Errorf("exit %d\nstdout %q\nstderr %q", r.Code, r.Out, r.Err)
	}
}

func TestInfo(t *testing.T) {
	e := newEnv(t)
	e.golden("info_manager", "info")
	e.golden("info_format", "info", "--format", "{{.NodeID}} {{.State}} {{len .Managers}}")
	e.srv.Edit(func(f *daemontest.Fixture) {
		f.Clusters[0].Spec.DataPathPort = 7789
		f.Clusters[0].Spec.DefaultAddressPool = []string{"10.20.0.0/16", "10.30.0.0/16"}
		f.Clusters[0].Spec.SubnetSize = 26
	})
	if r := e.run("info"); !strings.Contains(r.Out, "  Default Address Pool: 10.20.0.0/16 10.30.0.0/16\n  SubnetSize: 26\n  Data Path Port: 7789\n") {
		t.Errorf("info with a data path port and two pools:\n%s", r.Out)
	}
	e.srv.InfoResp = &api.InfoResponse{State: api.InfoResponse_INACTIVE, Version: "0.1.0-dev", Hostname: "lonely", DataDir: "/var/lib/shoal"}
	e.golden("info_inactive", "info")
	e.srv.InfoResp = &api.InfoResponse{State: api.InfoResponse_ACTIVE, NodeId: daemontest.Node3, NodeAddr: "10.0.0.3", Version: "0.1.0-dev", Hostname: "node3", DataDir: "/var/lib/shoal",
		Managers: []*api.Peer{{NodeId: daemontest.Node1, Addr: "10.0.0.1:4242"}}}
	e.golden("info_worker", "info")
}

func TestCannotConnect(t *testing.T) {
	e := newEnv(t)
	e.srv.Socket = "/nonexistent/shoal/missing.sock"
	e.golden("cannot_connect", "service", "ls")
}

func TestHostFromEnvironmentAndPlainPath(t *testing.T) {
	e := newEnv(t)
	e.vars["SHOAL_HOST"] = "unix:///nonexistent/shoal.sock"
	// -H wins over SHOAL_HOST.
	if r := e.run("node", "ls", "-q"); r.Code != 0 {
		t.Fatalf("with -H: exit %d: %s", r.Code, r.Err)
	}
	r := runNoHost(e, "node", "ls")
	if r.Code != 1 || !strings.Contains(r.Err, "unix:///nonexistent/shoal.sock") {
		t.Errorf("SHOAL_HOST ignored: exit %d %q", r.Code, r.Err)
	}
	e.vars["SHOAL_HOST"] = e.srv.Socket // a plain path
	if r := runNoHost(e, "node", "ls", "-q"); r.Code != 0 {
		t.Errorf("plain path: exit %d: %s", r.Code, r.Err)
	}
	e.vars["SHOAL_HOST"] = "tcp://10.0.0.1:4242"
	if r := runNoHost(e, "node", "ls"); r.Code != 1 || !strings.Contains(r.Err, `unsupported protocol scheme "tcp"`) {
		t.Errorf("tcp host: exit %d %q", r.Code, r.Err)
	}
}

// runNoHost runs without the -H the harness adds.
func runNoHost(e *env, args ...string) result {
	saved := e.srv.Socket
	defer func() { e.srv.Socket = saved }()
	e.srv.Socket = ""
	return e.runRaw(args...)
}

func TestNotAManager(t *testing.T) {
	e := newEnv(t)
	for _, m := range []string{"ListServices", "ListNodes", "CreateService"} {
		e.srv.Errors[m] = daemontest.NotManager
	}
	e.golden("not_manager_service_ls", "service", "ls")
	e.golden("not_manager_node_ls", "node", "ls")
	e.golden("not_manager_create", "service", "create", "-d", "nginx")
}

func TestUsage(t *testing.T) {
	e := newEnv(t)
	e.golden("help_root", "--help")
	e.golden("help_service", "service")
	e.golden("help_node_ls", "node", "ls", "--help")
	e.golden("unknown_command", "services")
	e.golden("unknown_subcommand", "node", "list-all")
	e.golden("unknown_flag", "node", "ls", "--colour")
	e.golden("global_flag_after_command", "node", "ls", "-H", "unix:///x")
	e.nothingSent()
}
