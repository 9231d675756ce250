package stack

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/golden"
)

var fullEnv = []string{"API_KEY=k3y", "FROM_ENV=os", "REGION=os-region"}

// TestConvertFull maps every supported key of a realistic pair of files
// (interpolation from the environment and .env, an override file, env_file,
// file, environment and inline sources) and checks the plan.
func TestConvertFull(t *testing.T) {
	l, p := mustPlan(t, "s", fullEnv, "testdata/full/app.yml", "testdata/full/override.yml")
	if len(l.Warnings) != 0 {
		t.Errorf("warnings: %q", l.Warnings)
	}
	golden.Assert(t, render(t, p), "full.plan.golden")
	var names []string
	for _, s := range p.Services {
		names = append(names, s.Key)
	}
	if got := strings.Join(names, " "); got != "agent api migrate web" {
		t.Errorf("creation order %q, want web after api", got)
	}
}

// TestConvertDeterministic converts the same files many times: Go's map
// order must not leak into the specs, or a redeploy would roll services.
func TestConvertDeterministic(t *testing.T) {
	_, first := mustPlan(t, "s", fullEnv, "testdata/full/app.yml", "testdata/full/override.yml")
	for i := 0; i < 20; i++ {
		_, p := mustPlan(t, "s", fullEnv, "testdata/full/app.yml", "testdata/full/override.yml")
		for j, s := range p.Services {
			if !proto.Equal(s.Spec, first.Services[j].Spec) {
				t.Fatalf("run %d: service %s differs:\n%v\n%v", i, s.Name, s.Spec, first.Services[j].Spec)
			}
		}
		for j, n := range p.Networks {
			if !proto.Equal(n.Spec, first.Networks[j].Spec) {
				t.Fatalf("run %d: network %s differs", i, n.Name)
			}
		}
	}
}

// TestExampleApp loads and converts examples/app.
func TestExampleApp(t *testing.T) {
	l, p := mustPlan(t, "app", nil, "../../../../examples/app/app.yml")
	if len(l.Warnings) != 0 {
		t.Errorf("warnings: %q", l.Warnings)
	}
	golden.Assert(t, render(t, p), "example_app.plan.golden")
	web := p.Services[0]
	if web.Key != "web" || !web.Healthcheck || p.Services[1].DependsOn[0] != "app_web" {
		t.Errorf("web first with a health check, worker depending on it; got %s %v %v", web.Key, web.Healthcheck, p.Services[1].DependsOn)
	}
}

// TestResolve fills IDs into references and refuses unknown names.
func TestResolve(t *testing.T) {
	_, p := mustPlan(t, "app", nil, "../../../../examples/app/app.yml")
	ids := IDs{
		Networks: map[string]string{"app_front": "n1", "app_back": "n2"},
		Secrets:  map[string]string{"app_api_token": "s1"},
		Configs:  map[string]string{"app_web_conf": "c1"},
	}
	web, err := p.Services[0].Resolve(ids)
	if err != nil {
		t.Fatal(err)
	}
	if got := web.Task.Networks[0].Target + web.Task.Networks[1].Target + web.Task.Container.Configs[0].ConfigId; got != "n2n1c1" {
		t.Errorf("resolved %q", got)
	}
	if p.Services[0].Spec.Task.Networks[0].Target != "app_back" {
		t.Error("Resolve changed the plan's spec")
	}
	delete(ids.Secrets, "app_api_token")
	if _, err := p.Services[1].Resolve(ids); err == nil || !strings.Contains(err.Error(), "secret not found: app_api_token") {
		t.Errorf("err = %v", err)
	}
}
