package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/images"
)

// countingRegistry is an in-process registry on loopback that counts the
// manifest requests it answers and can be stopped (unreachable).
type countingRegistry struct {
	srv       *http.Server
	addr      string
	manifests atomic.Int64
}

func startCountingRegistry(t *testing.T) *countingRegistry {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &countingRegistry{addr: ln.Addr().String()}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.Path, "/manifests/") {
			r.manifests.Add(1)
		}
		reg.ServeHTTP(w, req)
	})}
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(r.stop)
	return r
}

func (r *countingRegistry) stop() { _ = r.srv.Close() }

// shoalSplit runs the CLI with stdout and stderr apart.
func (d *daemon) shoalSplit(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cli, append([]string{"-H", "unix://" + d.socket()}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// specImage reads a service's image from the Control API.
func specImage(t *testing.T, d *daemon, name string) *api.ContainerSpec {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := api.NewControlClient(d.client()).GetService(ctx, &api.GetServiceRequest{ServiceId: name})
	if err != nil {
		t.Fatalf("GetService %s: %v", name, err)
	}
	return resp.GetService().GetSpec().GetTask().GetContainer()
}

// runningImages maps each RUNNING container of the service (by name) to
// the image containerd created it from.
func runningImages(t *testing.T, d *daemon, service string) []string {
	t.Helper()
	var out []string
	for _, id := range runningContainers(t, d.ns) {
		b, err := exec.Command("ctr", "-n", d.ns, "containers", "info", id).Output()
		if err != nil {
			continue // gone since the listing
		}
		var info struct {
			Image  string
			Labels map[string]string
		}
		if err := json.Unmarshal(b, &info); err != nil {
			t.Fatalf("ctr containers info %s: %v", id, err)
		}
		if info.Labels["com.docker.swarm.service.name"] == service {
			out = append(out, info.Image)
		}
	}
	return out
}

func waitImages(t *testing.T, d *daemon, service string, n int, digest string, within time.Duration) {
	t.Helper()
	waitFor(t, within, fmt.Sprintf("%d containers of %s running %s", n, service, digest), func() error {
		imgs := runningImages(t, d, service)
		if len(imgs) != n {
			return fmt.Errorf("%d running: %v", len(imgs), imgs)
		}
		for _, img := range imgs {
			if !strings.HasSuffix(img, "@"+digest) {
				return fmt.Errorf("images %v", imgs)
			}
		}
		return nil
	})
}

// service create pins the tag's digest: after the tag moves, new tasks
// still run the image the service was created with, until `service update
// --image` pins the new one. An unreachable registry gives docker's
// warning and keeps the tag; --no-resolve-image asks no registry.
func TestServiceImageDigestPinning(t *testing.T) {
	testutil.RequiresContainerd(t)
	reg := startCountingRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	imgA, err := images.Build(ctx, images.Busybox)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := imgA.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Labels = map[string]string{"version": "B"}
	imgB, err := mutate.Config(imgA, cfg)
	if err != nil {
		t.Fatal(err)
	}
	digest := func(img v1.Image) string {
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	a, b := digest(imgA), digest(imgB)
	ref := reg.addr + "/app:v1"
	if err := images.Push(ctx, imgA, ref, true); err != nil {
		t.Fatal(err)
	}
	pushed := reg.manifests.Load() // the push's own requests
	d := newDaemon(t)
	d.start()
	d.mustShoal("swarm", "init", "--advertise-addr", d.addr)

	// --no-resolve-image: the tag, and not one manifest request.
	if _, errOut, err := d.shoalSplit("service", "create", "-d", "--no-resolve-image", "--replicas", "0", "--name", "tagged", ref, "sleep", "600"); err != nil || errOut != "" {
		t.Fatalf("create --no-resolve-image: %v\n%s", err, errOut)
	}
	if n := reg.manifests.Load() - pushed; n != 0 {
		t.Errorf("%d manifest requests with --no-resolve-image", n)
	}
	if got := specImage(t, d, "tagged").GetImage(); got != ref {
		t.Errorf("tagged: image %s, want %s", got, ref)
	}

	_, errOut, err := d.shoalSplit("service", "create", "-d", "--name", "app", "--update-parallelism", "3", ref, "sleep", "600")
	if err != nil || errOut != "" {
		t.Fatalf("create: %v\n%s", err, errOut)
	}
	if got := specImage(t, d, "app").GetImage(); got != ref+"@"+a {
		t.Fatalf("app: image %s, want %s", got, ref+"@"+a)
	}
	waitImages(t, d, "app", 1, a, 60*time.Second)

	// The tag moves; scaling up starts the pinned image, not the new one.
	if err := images.Push(ctx, imgB, ref, true); err != nil {
		t.Fatal(err)
	}
	d.mustShoal("service", "scale", "-d", "app=3")
	waitImages(t, d, "app", 3, a, 60*time.Second)
	// A service kept on the tag follows it (pulled by tag: B).
	d.mustShoal("service", "scale", "-d", "tagged=1")
	waitFor(t, 60*time.Second, "the tagged service running", func() error {
		if imgs := runningImages(t, d, "tagged"); len(imgs) != 1 || imgs[0] != ref {
			return fmt.Errorf("images %v", imgs)
		}
		return nil
	})

	// update --image with the same tag pins the tag's new digest.
	if _, errOut, err := d.shoalSplit("service", "update", "-d", "--image", ref, "app"); err != nil || errOut != "" {
		t.Fatalf("update --image: %v\n%s", err, errOut)
	}
	if got := specImage(t, d, "app").GetImage(); got != ref+"@"+b {
		t.Fatalf("after update: image %s, want %s", got, ref+"@"+b)
	}
	waitImages(t, d, "app", 3, b, 90*time.Second)

	// The registry goes away: docker's warning, the tag kept, and the
	// service runs from the node's copy of the tag.
	reg.stop()
	_, errOut, err = d.shoalSplit("service", "create", "-d", "--name", "offline", ref, "sleep", "600")
	want := "image " + ref + " could not be accessed on a registry to record\n" +
		"its digest. Each node will access " + ref + " independently,\n" +
		"possibly leading to different nodes running different\n" +
		"versions of the image.\n\n"
	if err != nil || errOut != want {
		t.Errorf("create with the registry down: %v, stderr %q, want %q", err, errOut, want)
	}
	if got := specImage(t, d, "offline").GetImage(); got != ref {
		t.Errorf("offline: image %s, want the tag %s", got, ref)
	}
	waitFor(t, 60*time.Second, "the offline service running", func() error {
		if imgs := runningImages(t, d, "offline"); len(imgs) != 1 {
			return fmt.Errorf("images %v", imgs)
		}
		return nil
	})
}
