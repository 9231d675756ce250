package stack_test

import (
	"strings"
	"testing"

	"github.com/shoal-project/shoal/cmd/shoal/internal/commandtest"
)

const appRef = "registry.example:5000/app:v1"

func resolveCalls(e *commandtest.Env) int {
	return strings.Count(strings.Join(e.Srv.Methods(), " "), "ResolveImage")
}

func serviceImage(e *commandtest.Env, name string) string {
	return e.Srv.Read().Service(name).GetSpec().GetTask().GetContainer().GetImage()
}

// stack deploy pins each image as service create does; on a redeploy,
// --resolve-image decides whether the registry is asked again, as docker's.
func TestDeployResolveImage(t *testing.T) {
	e := commandtest.New(t, 0)
	a := e.Srv.PushImage(t, appRef, "A")
	file := e.File("s.yml", "services:\n  app:\n    image: "+appRef+"\n")
	r := e.MustRun("stack", "deploy", "-d", "-c", file, "s")
	if r.Err != "" {
		t.Errorf("stderr %q", r.Err)
	}
	if got := serviceImage(e, "s_app"); got != appRef+"@"+a {
		t.Fatalf("image %s, want %s", got, appRef+"@"+a)
	}
	if p := e.Srv.Read().Service("s_app").GetSpec().GetTask().GetPlacement().GetPlatforms(); len(p) != 1 || p[0].GetOs() != "linux" {
		t.Errorf("platforms %v", p)
	}
	b := e.Srv.PushImage(t, appRef, "B") // the tag moves

	// never and changed (the file's image is the same): no registry call,
	// the recorded digest stays, nothing is updated.
	for _, mode := range []string{"never", "changed"} {
		before, updates := resolveCalls(e), len(e.Srv.Requests("UpdateService"))
		if r := e.MustRun("stack", "deploy", "-d", "--resolve-image", mode, "-c", file, "s"); r.Out != "" || r.Err != "" {
			t.Errorf("%s: output of an unchanged redeploy:\n%s", mode, r)
		}
		if resolveCalls(e) != before || len(e.Srv.Requests("UpdateService")) != updates {
			t.Errorf("%s: the registry was asked or the service updated: %v", mode, e.Srv.Methods())
		}
		if got := serviceImage(e, "s_app"); got != appRef+"@"+a {
			t.Errorf("%s: image %s", mode, got)
		}
	}
	// always (the default): asked again, the new digest rolls out.
	r = e.MustRun("stack", "deploy", "-d", "-c", file, "s")
	if !strings.Contains(r.Out, "Updating service s_app") {
		t.Errorf("output:\n%s", r)
	}
	if got := serviceImage(e, "s_app"); got != appRef+"@"+b {
		t.Errorf("always: image %s, want %s", got, appRef+"@"+b)
	}
	// changed, with another image in the file: asked.
	c := e.Srv.PushImage(t, "registry.example:5000/app:v2", "C")
	file2 := e.File("s2.yml", "services:\n  app:\n    image: registry.example:5000/app:v2\n")
	e.MustRun("stack", "deploy", "-d", "--resolve-image", "changed", "-c", file2, "s")
	if got := serviceImage(e, "s_app"); got != "registry.example:5000/app:v2@"+c {
		t.Errorf("changed: image %s", got)
	}
	// never, with another image: the tag as written.
	e.MustRun("stack", "deploy", "-d", "--resolve-image", "never", "-c", file, "s")
	if got := serviceImage(e, "s_app"); got != appRef {
		t.Errorf("never: image %s", got)
	}
}

// An image the registry cannot give: docker's warning, the tag kept.
func TestDeployUnresolvedImageWarns(t *testing.T) {
	e := commandtest.New(t, 0)
	file := e.File("s.yml", "services:\n  app:\n    image: registry.example:5000/app:v9\n")
	r := e.MustRun("stack", "deploy", "-d", "-c", file, "s")
	want := "image registry.example:5000/app:v9 could not be accessed on a registry to record\n" +
		"its digest. Each node will access registry.example:5000/app:v9 independently,\n" +
		"possibly leading to different nodes running different\n" +
		"versions of the image.\n\n"
	if r.Err != want {
		t.Errorf("stderr %q, want %q", r.Err, want)
	}
	if got := serviceImage(e, "s_app"); got != "registry.example:5000/app:v9" {
		t.Errorf("image %s", got)
	}
}
