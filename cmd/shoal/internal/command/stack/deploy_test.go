package stack_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/commandtest"
	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	api "github.com/shoal-project/shoal/proto"
)

func exampleApp(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../../../../examples/app/app.yml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDeployExample creates the example stack: networks, secrets and
// configs first, then services in depends_on order, with references sent
// as IDs and every object labelled.
func TestDeployExample(t *testing.T) {
	e := commandtest.New(t, 0)
	r := e.Run("stack", "deploy", "-d", "-c", exampleApp(t), "app")
	if r.Code != 0 {
		t.Fatal(r)
	}
	if want := "Creating network app_back\nCreating network app_front\nCreating secret app_api_token\nCreating config app_web_conf\nCreating service app_web\nCreating service app_worker\n"; r.Out != want || r.Err != "" {
		t.Errorf("output:\n%s", r)
	}
	creates := e.Srv.Requests("CreateService")
	web := creates[0].(*api.CreateServiceRequest).GetSpec()
	worker := creates[1].(*api.CreateServiceRequest).GetSpec()
	if web.GetAnnotations().GetName() != "app_web" || worker.GetAnnotations().GetName() != "app_worker" {
		t.Fatalf("order %s %s", web.GetAnnotations().GetName(), worker.GetAnnotations().GetName())
	}
	ids := map[string]string{}
	for _, n := range e.Srv.Read().Networks {
		ids[n.GetSpec().GetAnnotations().GetName()] = n.GetId()
		if n.GetSpec().GetAnnotations().GetName() == "app_back" && n.GetSpec().GetAnnotations().GetLabels()["io.shoal.stack.namespace"] != "app" {
			t.Error("network not labelled")
		}
	}
	for _, a := range web.GetTask().GetNetworks() {
		if a.GetTarget() != ids["app_back"] && a.GetTarget() != ids["app_front"] {
			t.Errorf("network target %q is not an ID", a.GetTarget())
		}
	}
	if ref := worker.GetTask().GetContainer().GetSecrets()[0]; ref.GetSecretId() == "" || ref.GetSecretName() != "app_api_token" {
		t.Errorf("secret reference %v", ref)
	}
	if ref := web.GetTask().GetContainer().GetConfigs()[0]; ref.GetConfigId() == "" {
		t.Errorf("config reference %v", ref)
	}
	if sec := e.Srv.Requests("CreateSecret")[0].(*api.CreateSecretRequest); string(sec.GetSpec().GetData()) != "demo-token-change-me\n" {
		t.Errorf("secret data %q", sec.GetSpec().GetData())
	}
}

// TestRedeployUnchanged: a second deploy of the same file sends nothing
// that changes state, so no service rolls.
func TestRedeployUnchanged(t *testing.T) {
	e := commandtest.New(t, 0)
	e.MustRun("stack", "deploy", "-d", "-c", exampleApp(t), "app")
	before := len(e.Srv.Calls())
	r := e.MustRun("stack", "deploy", "-d", "-c", exampleApp(t), "app")
	if r.Out != "" || r.Err != "" {
		t.Errorf("output of an unchanged redeploy:\n%s", r)
	}
	for _, c := range e.Srv.Calls()[before:] {
		if strings.HasPrefix(c.Method, "Create") || strings.HasPrefix(c.Method, "Update") || strings.HasPrefix(c.Method, "Remove") {
			t.Errorf("%s sent on an unchanged redeploy", c.Method)
		}
	}
}

// TestRedeployChanged updates only the changed service, in place, with the
// version read by GetService.
func TestRedeployChanged(t *testing.T) {
	e := commandtest.New(t, 0)
	v1 := e.File("v1.yml", "services:\n  web:\n    image: nginx:1\n  api:\n    image: api:1\n")
	v2 := e.File("v2.yml", "services:\n  web:\n    image: nginx:2\n  api:\n    image: api:1\n")
	e.MustRun("stack", "deploy", "-d", "-c", v1, "s")
	read := e.Srv.Read().Service("s_web").GetMeta().GetVersion()
	e.Golden("deploy_update", "stack", "deploy", "-d", "-c", v2, "s")
	updates := e.Srv.Requests("UpdateService")
	if len(updates) != 1 {
		t.Fatalf("%d updates, want 1 (web)", len(updates))
	}
	u := updates[0].(*api.UpdateServiceRequest)
	if u.GetServiceVersion() != read || u.GetSpec().GetTask().GetContainer().GetImage() != "nginx:2@"+daemontest.ImageDigest(t, "nginx:2") ||
		u.GetSpec().GetAnnotations().GetLabels()["io.shoal.stack.image"] != "nginx:2" {
		t.Errorf("update %v", u)
	}
}

func TestDeployPrune(t *testing.T) {
	e := commandtest.New(t, 0)
	two := e.File("two.yml", "services:\n  web:\n    image: nginx\n  old:\n    image: busybox\n")
	one := e.File("one.yml", "services:\n  web:\n    image: nginx\n")
	e.MustRun("stack", "deploy", "-d", "-c", two, "s")
	if r := e.MustRun("stack", "deploy", "-d", "-c", one, "s"); strings.Contains(r.Out, "Removing") {
		t.Errorf("removed without --prune:\n%s", r)
	}
	e.Golden("deploy_prune", "stack", "deploy", "-d", "--prune", "-c", one, "s")
	var names []string
	for _, s := range e.Srv.Read().Services {
		names = append(names, s.GetSpec().GetAnnotations().GetName())
	}
	slices.Sort(names)
	if got := strings.Join(names, " "); got != "api cache migrate s_web web" {
		t.Errorf("services left: %s (another stack's or unlabelled services must stay)", got)
	}
}

// TestDeployRefusals: whatever cannot be applied is found before anything
// is created.
func TestDeployRefusals(t *testing.T) {
	cases := []struct{ name, yaml string }{
		{"deploy_external_network_missing", `
services:
  web:
    image: nginx
    networks: [traefik, backend]
networks:
  traefik:
    external: true
  backend:
    external: true
`},
		{"deploy_external_secret_missing", `
services:
  web:
    image: nginx
    secrets: [db-password, tls-key]
secrets:
  db-password:
    external: true
  tls-key:
    external: true
`},
		{"deploy_name_taken", `
services:
  web:
    image: nginx
  api:
    image: nginx
`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := commandtest.New(t, 0)
			e.Srv.Edit(func(f *daemontest.Fixture) { f.Service("api").Spec.Annotations.Name = "s_api" }) // an unlabelled service with a stack's name
			path := e.File("app.yml", tc.yaml)
			e.Golden(tc.name, "stack", "deploy", "-d", "-c", path, "s")
			if m := e.Mutations(); len(m) > 0 {
				t.Errorf("created before refusing: %v", m)
			}
		})
	}
}

// TestDeploySecretChanged refuses a changed secret (secrets are immutable)
// and a mode change before touching anything.
func TestDeploySecretChanged(t *testing.T) {
	e := commandtest.New(t, 0)
	e.File("token.txt", "one")
	v1 := e.File("v1.yml", "services:\n  web:\n    image: nginx\n    secrets: [token]\nsecrets:\n  token:\n    file: ./token.txt\n")
	e.MustRun("stack", "deploy", "-d", "-c", v1, "s")
	e.File("token.txt", "two")
	n := len(e.Mutations())
	e.Golden("deploy_secret_changed", "stack", "deploy", "-d", "-c", v1, "s")
	e.File("token.txt", "one")
	global := e.File("global.yml", "services:\n  web:\n    image: nginx\n    deploy: {mode: global}\n    secrets: [token]\nsecrets:\n  token:\n    file: ./token.txt\n")
	e.Golden("deploy_mode_change", "stack", "deploy", "-d", "-c", global, "s")
	if m := e.Mutations(); len(m) != n {
		t.Errorf("mutations after refusals: %v", m[n:])
	}
}

func TestDeployDependsOnOrder(t *testing.T) {
	e := commandtest.New(t, 0)
	path := e.File("app.yml", `
services:
  web:
    image: nginx
    depends_on: [api]
  api:
    image: api
    depends_on: [db]
  db:
    image: postgres
  cache:
    image: redis
`)
	e.MustRun("stack", "deploy", "-d", "-c", path, "s")
	var order []string
	for _, r := range e.Srv.Requests("CreateService") {
		order = append(order, r.(*api.CreateServiceRequest).GetSpec().GetAnnotations().GetName())
	}
	if got := strings.Join(order, " "); got != "s_cache s_db s_api s_web" {
		t.Errorf("creation order %s", got)
	}
	cycle := e.File("cycle.yml", "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n")
	before := len(e.Srv.Calls())
	e.Golden("deploy_cycle", "stack", "deploy", "-d", "-c", cycle, "s")
	if len(e.Srv.Calls()) != before {
		t.Error("a file with a cycle reached the daemon")
	}
}

// TestDeployWaits: without -d the deploy waits for a dependency (here with
// a health check) to converge before creating its dependant, then follows
// the rest.
func TestDeployWaits(t *testing.T) {
	e := commandtest.New(t, 0)
	running(e)
	path := e.File("app.yml", `
services:
  web:
    image: nginx
    depends_on:
      db:
        condition: service_healthy
  db:
    image: postgres
    healthcheck:
      test: ["CMD", "pg_isready"]
    deploy:
      replicas: 2
`)
	r := e.Golden("deploy_wait", "stack", "deploy", "-c", path, "s")
	if r.Code != 0 {
		t.Fatal(r)
	}
	methods := e.Srv.Methods()
	first := slices.Index(methods, "CreateService")
	second := first + 1 + slices.Index(methods[first+1:], "CreateService")
	if !slices.Contains(methods[first:second], "ListTasks") {
		t.Errorf("s_web created before s_db was waited for: %v", methods)
	}
}

// TestDeployWarnings prints Docker's messages for ignored keys on stderr.
func TestDeployWarnings(t *testing.T) {
	e := commandtest.New(t, 0)
	path := e.File("app.yml", `
version: "3.8"
services:
  web:
    image: nginx
    build: .
    restart: always
    container_name: web
    expose: ["80"]
`)
	e.Golden("deploy_warnings", "stack", "deploy", "-d", "-c", path, "s")
	e.Golden("deploy_rejected", "stack", "deploy", "-d", "-c", e.File("bad.yml", "services:\n  web:\n    image: nginx\n    mem_limit: 1g\n"), "s")
}

func TestDeployStdin(t *testing.T) {
	e := commandtest.New(t, 0)
	e.Stdin = "services:\n  web:\n    image: nginx\n"
	e.MustRun("stack", "up", "-d", "-q", "-c", "-", "s")
	spec := e.Srv.Requests("CreateService")[0].(*api.CreateServiceRequest).GetSpec()
	want := &api.ServiceSpec{}
	if spec.GetAnnotations().GetName() != "s_web" || proto.Equal(spec, want) {
		t.Errorf("spec %v", spec)
	}
	e.Golden("deploy_bad_resolve_image", "stack", "deploy", "--resolve-image", "sometimes", "-c", "-", "s")
	e.Golden("deploy_no_file", "stack", "deploy", "s")
}

// TestDeployDependencyFails: when a dependency's rollout pauses, its
// dependants are not deployed and the error says why.
func TestDeployDependencyFails(t *testing.T) {
	e := commandtest.New(t, 0)
	running(e)
	e.Srv.Before("GetService", func(n int, _ proto.Message) {
		if n >= 1 {
			e.Srv.Edit(func(f *daemontest.Fixture) {
				if svc := f.Service("s_db"); svc != nil {
					svc.UpdateStatus = &api.UpdateStatus{State: api.UpdateStatus_PAUSED, Message: "update paused due to failure or early termination of task q0r1s2t3"}
				}
			})
		}
	})
	path := e.File("app.yml", "services:\n  web:\n    image: nginx\n    depends_on: [db]\n  db:\n    image: postgres\n")
	e.Golden("deploy_dependency_paused", "stack", "deploy", "-c", path, "s")
	for _, r := range e.Srv.Requests("CreateService") {
		if r.(*api.CreateServiceRequest).GetSpec().GetAnnotations().GetName() == "s_web" {
			t.Error("s_web created although s_db did not converge")
		}
	}
}

// TestRedeployConflict re-reads a service changed between GetService and
// UpdateService, once.
func TestRedeployConflict(t *testing.T) {
	e := commandtest.New(t, 0)
	e.MustRun("stack", "deploy", "-d", "-c", e.File("v1.yml", "services:\n  web:\n    image: nginx:1\n"), "s")
	e.Srv.ErrorsOnce["UpdateService"] = []error{errorConflict}
	r := e.MustRun("stack", "deploy", "-d", "-c", e.File("v2.yml", "services:\n  web:\n    image: nginx:2\n"), "s")
	if n := len(e.Srv.Requests("UpdateService")); n != 2 || strings.Count(r.Out, "Updating service") != 1 {
		t.Errorf("%d updates, output:\n%s", n, r)
	}
}

func TestDeployHelp(t *testing.T) {
	e := commandtest.New(t, 0)
	e.Golden("help_deploy", "stack", "deploy", "--help")
	e.Golden("help_stack", "stack")
}

// TestRedeployKeepsForceUpdate: a redeploy after `service update --force`
// changes nothing.
func TestRedeployKeepsForceUpdate(t *testing.T) {
	e := commandtest.New(t, 0)
	path := e.File("v1.yml", "services:\n  web:\n    image: nginx:1\n")
	e.MustRun("stack", "deploy", "-d", "-c", path, "s")
	e.Srv.Edit(func(f *daemontest.Fixture) { f.Service("s_web").Spec.Task.ForceUpdate = 2 })
	e.MustRun("stack", "deploy", "-d", "-c", path, "s")
	if n := len(e.Srv.Requests("UpdateService")); n != 0 {
		t.Errorf("%d updates after a forced update", n)
	}
}

// TestDeployNetworks: top-level networks become labelled overlay networks
// with their options and IPAM; a service lists networks as a list or a map
// with aliases, always with its short name as an alias; a service with no
// networks joins <stack>_default; an external network is used as is;
// deploy.endpoint_mode reaches the spec.
func TestDeployNetworks(t *testing.T) {
	e := commandtest.New(t, 0)
	file := filepath.Join(t.TempDir(), "net.yml")
	if err := os.WriteFile(file, []byte(`
services:
  web:
    image: nginx:1.27
    networks:
      front:
        aliases: [www, site]
      back: {}
      backend: {}
  db:
    image: postgres:16
    networks: [back]
    deploy:
      endpoint_mode: dnsrr
  tool:
    image: busybox:1.36
networks:
  front:
    attachable: true
    driver_opts:
      com.docker.network.driver.mtu: "1400"
    labels:
      tier: front
  back:
    internal: true
    ipam:
      config:
        - subnet: 10.40.0.0/24
          gateway: 10.40.0.1
          ip_range: 10.40.0.128/25
  backend:
    external: true
`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.Run("stack", "deploy", "-d", "-c", file, "s")
	if want := "Creating network s_back\nCreating network s_default\nCreating network s_front\nCreating service s_db\nCreating service s_tool\nCreating service s_web\n"; r.Code != 0 || r.Out != want {
		t.Fatalf("output:\n%s", r)
	}
	nets := map[string]*api.NetworkSpec{}
	for _, req := range e.Srv.Requests("CreateNetwork") {
		spec := req.(*api.CreateNetworkRequest).GetSpec()
		nets[spec.GetAnnotations().GetName()] = spec
		if spec.GetDriver().GetName() != "overlay" || spec.GetAnnotations().GetLabels()["io.shoal.stack.namespace"] != "s" {
			t.Errorf("%s: driver %q, labels %v", spec.GetAnnotations().GetName(), spec.GetDriver().GetName(), spec.GetAnnotations().GetLabels())
		}
	}
	if f := nets["s_front"]; !f.GetAttachable() || f.GetDriver().GetOptions()["com.docker.network.driver.mtu"] != "1400" || f.GetAnnotations().GetLabels()["tier"] != "front" {
		t.Errorf("s_front: %v", f)
	}
	if b := nets["s_back"]; !b.GetInternal() || len(b.GetIpam()) != 1 || b.GetIpam()[0].GetSubnet() != "10.40.0.0/24" ||
		b.GetIpam()[0].GetGateway() != "10.40.0.1" || b.GetIpam()[0].GetRange() != "10.40.0.128/25" {
		t.Errorf("s_back: %v", b)
	}
	ids := map[string]string{}
	for _, n := range e.Srv.Read().Networks {
		ids[n.GetId()] = n.GetSpec().GetAnnotations().GetName()
	}
	specs := map[string]*api.ServiceSpec{}
	for _, req := range e.Srv.Requests("CreateService") {
		spec := req.(*api.CreateServiceRequest).GetSpec()
		specs[spec.GetAnnotations().GetName()] = spec
	}
	attached := func(svc string) string {
		var out []string
		for _, a := range specs[svc].GetTask().GetNetworks() {
			out = append(out, ids[a.GetTarget()]+"="+strings.Join(a.GetAliases(), "+"))
		}
		return strings.Join(out, " ")
	}
	for svc, want := range map[string]string{
		"s_web":  "backend=web s_back=web s_front=www+site+web",
		"s_db":   "s_back=db",
		"s_tool": "s_default=tool",
	} {
		if got := attached(svc); got != want {
			t.Errorf("%s networks %q, want %q", svc, got, want)
		}
	}
	if m := specs["s_db"].GetEndpoint().GetMode(); m != api.EndpointSpec_DNSRR {
		t.Errorf("s_db endpoint mode %v", m)
	}
	if m := specs["s_web"].GetEndpoint().GetMode(); m != api.EndpointSpec_VIP {
		t.Errorf("s_web endpoint mode %v", m)
	}
}
