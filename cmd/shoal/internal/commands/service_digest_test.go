package commands

import (
	"slices"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	api "github.com/shoal-project/shoal/proto"
)

// The docker CLI's warning when an image's digest cannot be recorded.
const warnV9 = "image registry.example:5000/app:v9 could not be accessed on a registry to record\n" +
	"its digest. Each node will access registry.example:5000/app:v9 independently,\n" +
	"possibly leading to different nodes running different\n" +
	"versions of the image.\n\n"

func createdImage(t *testing.T, e *env) *api.ServiceSpec {
	t.Helper()
	return e.lastRequest("CreateService").(*api.CreateServiceRequest).GetSpec()
}

func updatedSpec(t *testing.T, e *env) *api.ServiceSpec {
	t.Helper()
	return e.lastRequest("UpdateService").(*api.UpdateServiceRequest).GetSpec()
}

func (e *env) called(method string) bool { return slices.Contains(e.srv.Methods(), method) }

// service create asks the node's registry and records tag and digest,
// and the image's platforms, as docker does.
func TestServiceCreatePinsDigest(t *testing.T) {
	e := newEnv(t)
	dg := e.srv.PushImage(t, "registry.example:5000/app:v1", "A")
	r := e.run("service", "create", "-d", "--name", "app", "registry.example:5000/app:v1")
	if r.Code != 0 || r.Err != "" {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Err)
	}
	spec := createdImage(t, e)
	if got, want := spec.GetTask().GetContainer().GetImage(), "registry.example:5000/app:v1@"+dg; got != want {
		t.Errorf("image %s, want %s", got, want)
	}
	if p := spec.GetTask().GetPlacement().GetPlatforms(); len(p) != 1 || p[0].GetOs() != "linux" || p[0].GetArchitecture() != "amd64" {
		t.Errorf("platforms %v", p)
	}
	// A bare name gets :latest, and Docker Hub names keep their short form.
	if r := e.run("service", "create", "-d", "--name", "bb", "busybox"); r.Code != 0 || r.Err != "" {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Err)
	}
	if got, want := createdImage(t, e).GetTask().GetContainer().GetImage(), "busybox:latest@"+daemontest.ImageDigest(t, "busybox:latest"); got != want {
		t.Errorf("image %s, want %s", got, want)
	}
}

// An image the registry cannot give: docker's warning on stderr, the tag
// is kept, the service is created.
func TestServiceCreateUnresolvedImageWarns(t *testing.T) {
	e := newEnv(t)
	r := e.run("service", "create", "-d", "--name", "app", "registry.example:5000/app:v9")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Err)
	}
	if r.Err != warnV9 {
		t.Errorf("stderr %q, want %q", r.Err, warnV9)
	}
	spec := createdImage(t, e)
	if got := spec.GetTask().GetContainer().GetImage(); got != "registry.example:5000/app:v9" {
		t.Errorf("image %s", got)
	}
	if spec.GetTask().GetPlacement().GetPlatforms() != nil {
		t.Errorf("platforms %v", spec.GetTask().GetPlacement().GetPlatforms())
	}
}

// --no-resolve-image: no registry call, the tag (with :latest added) as
// written.
func TestServiceCreateNoResolveImage(t *testing.T) {
	e := newEnv(t)
	if r := e.run("service", "create", "-d", "--no-resolve-image", "--name", "app", "nginx"); r.Code != 0 || r.Err != "" {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Err)
	}
	if e.called("ResolveImage") {
		t.Errorf("the registry was asked: %v", e.srv.Methods())
	}
	if got := createdImage(t, e).GetTask().GetContainer().GetImage(); got != "nginx:latest" {
		t.Errorf("image %s", got)
	}
}

// An image that already has a digest keeps it, whatever the tag points to
// now; one the registry does not have is kept too, with the warning.
func TestServiceCreateKeepsPinnedImage(t *testing.T) {
	e := newEnv(t)
	ref := "registry.example:5000/app:v1"
	pinned := ref + "@" + e.srv.PushImage(t, ref, "A")
	e.srv.PushImage(t, ref, "B")
	if r := e.run("service", "create", "-d", "--name", "app", pinned); r.Code != 0 || r.Err != "" {
		t.Fatalf("exit %d, stderr %q", r.Code, r.Err)
	}
	if got := createdImage(t, e).GetTask().GetContainer().GetImage(); got != pinned {
		t.Errorf("image %s, want %s", got, pinned)
	}
	gone := ref + "@" + daemontest.ImageDigest(t, "never pushed")
	r := e.run("service", "create", "-d", "--name", "gone", gone)
	if r.Code != 0 || !strings.HasPrefix(r.Err, "image "+gone+" could not be accessed") {
		t.Errorf("exit %d, stderr %q", r.Code, r.Err)
	}
	if got := createdImage(t, e).GetTask().GetContainer().GetImage(); got != gone {
		t.Errorf("image %s, want %s", got, gone)
	}
}

// service update asks the registry only when --image is given (the same
// image too: that follows a tag that moved), as docker does; --force and
// other flags keep the recorded digest.
func TestServiceUpdatePinsDigest(t *testing.T) {
	e := newEnv(t)
	ref := "registry.example:5000/app:v1"
	a := e.srv.PushImage(t, ref, "A")
	if r := e.run("service", "create", "-d", "--name", "app", ref); r.Code != 0 || r.Err != "" {
		t.Fatalf("create: exit %d, stderr %q", r.Code, r.Err)
	}
	b := e.srv.PushImage(t, ref, "B") // the tag moves
	if a == b {
		t.Fatal("the two pushes made one image")
	}
	if r := e.run("service", "update", "-d", "--force", "--replicas", "2", "app"); r.Code != 0 || r.Err != "" {
		t.Fatalf("update --force: exit %d, stderr %q", r.Code, r.Err)
	}
	if got := updatedSpec(t, e).GetTask().GetContainer().GetImage(); got != ref+"@"+a {
		t.Errorf("after --force: image %s, want the digest recorded at create %s", got, a)
	}
	if r := e.run("service", "update", "-d", "--image", ref, "app"); r.Code != 0 || r.Err != "" {
		t.Fatalf("update --image: exit %d, stderr %q", r.Code, r.Err)
	}
	if got := updatedSpec(t, e).GetTask().GetContainer().GetImage(); got != ref+"@"+b {
		t.Errorf("after --image: image %s, want the tag's new digest %s", got, b)
	}
	resolves := strings.Count(strings.Join(e.srv.Methods(), " "), "ResolveImage")
	if resolves != 2 {
		t.Errorf("%d registry calls, want 2 (create, update --image): %v", resolves, e.srv.Methods())
	}
	// --no-resolve-image: the tag as written, no call.
	if r := e.run("service", "update", "-d", "--no-resolve-image", "--image", ref, "app"); r.Code != 0 || r.Err != "" {
		t.Fatalf("update --no-resolve-image: exit %d, stderr %q", r.Code, r.Err)
	}
	if got := updatedSpec(t, e).GetTask().GetContainer().GetImage(); got != ref {
		t.Errorf("after --no-resolve-image: image %s", got)
	}
	// An image the registry does not have: the warning, the tag kept.
	r := e.run("service", "update", "-d", "--image", "registry.example:5000/app:v9", "app")
	if r.Code != 0 || r.Err != warnV9 {
		t.Errorf("update to an unknown tag: exit %d, stderr %q", r.Code, r.Err)
	}
	if got := updatedSpec(t, e).GetTask().GetContainer().GetImage(); got != "registry.example:5000/app:v9" {
		t.Errorf("after an unknown tag: image %s", got)
	}
	if n := strings.Count(strings.Join(e.srv.Methods(), " "), "ResolveImage"); n != 3 {
		t.Errorf("%d registry calls, want 3", n)
	}
}
