package dockercli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shoal-project/shoal/test/images"
	"github.com/shoal-project/shoal/test/lab"
)

// runSplit runs a CLI with stdout and stderr apart; it must succeed.
func runSplit(t *testing.T, env []string, bin string, args ...string) (string, string) {
	t.Helper()
	r := run(t, env, bin, args...)
	if r.code != 0 {
		t.Fatalf("%s %s: exit status %d\n%s%s", filepath.Base(bin), strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout, r.stderr
}

// TestDockerCLIDigestPinning: `docker service create` (which asks GET
// /distribution) and `shoal service create` (which asks the control
// socket's Registry service) pin an image to the same digest, the
// registry's, with the same platforms; for an image the registry does not
// have both print docker's warning, word for word, and keep the tag.
func TestDockerCLIDigestPinning(t *testing.T) {
	forEachCLI(t, func(t *testing.T, c cli) {
		reg := images.StartRegistry(t)
		busybox := images.PushTest(t, reg, images.Busybox)
		ref, err := name.ParseReference(busybox, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Head(ref)
		if err != nil {
			t.Fatal(err)
		}
		want := busybox + "@" + desc.Digest.String()
		d := startDaemon(t, c, "")
		d.mustDocker("swarm", "init", "--listen-addr", d.addr, "--advertise-addr", d.addr)
		shoal := lab.BuildShoal(t)
		docker := func(args ...string) (string, string) {
			return runSplit(t, d.dockerEnv, c.path, append([]string{"-H", "unix://" + d.dockerSocket()}, args...)...)
		}
		shoalCLI := func(args ...string) (string, string) {
			return runSplit(t, nil, shoal, append([]string{"-H", "unix://" + filepath.Join(d.dir, "ctl.sock")}, args...)...)
		}
		inspect := func(svc, format string) string {
			return strings.TrimSpace(d.mustDocker("service", "inspect", "--format", format, svc))
		}

		if _, e := docker("service", "create", "-d", "--replicas", "0", "--name", "by-docker", busybox); e != "" {
			t.Errorf("docker stderr: %q", e)
		}
		if _, e := shoalCLI("service", "create", "-d", "--replicas", "0", "--name", "by-shoal", busybox); e != "" {
			t.Errorf("shoal stderr: %q", e)
		}
		for _, svc := range []string{"by-docker", "by-shoal"} {
			if got := inspect(svc, "{{.Spec.TaskTemplate.ContainerSpec.Image}}"); got != want {
				t.Errorf("%s: image %q, want %q", svc, got, want)
			}
		}
		if dp, sp := inspect("by-docker", "{{json .Spec.TaskTemplate.Placement.Platforms}}"), inspect("by-shoal", "{{json .Spec.TaskTemplate.Placement.Platforms}}"); dp != sp || !strings.Contains(dp, `"OS":"linux"`) {
			t.Errorf("platforms: docker %s, shoal %s", dp, sp)
		}

		missing := reg + "/no/such:image"
		_, de := docker("service", "create", "-d", "--replicas", "0", "--name", "ghost-docker", missing)
		_, se := shoalCLI("service", "create", "-d", "--replicas", "0", "--name", "ghost-shoal", missing)
		if de != se || !strings.HasPrefix(de, "image "+missing+" could not be accessed on a registry to record\n") {
			t.Errorf("warnings differ:\ndocker: %q\nshoal:  %q", de, se)
		}
		for _, svc := range []string{"ghost-docker", "ghost-shoal"} {
			if got := inspect(svc, "{{.Spec.TaskTemplate.ContainerSpec.Image}}"); got != missing {
				t.Errorf("%s: image %q, want the tag %q", svc, got, missing)
			}
		}
	})
}
