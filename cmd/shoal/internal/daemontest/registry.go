package daemontest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shoal-project/shoal/internal/registry"
)

// FixtureImages are pushed by LoadCluster: the images the CLI tests name,
// so `service create` pins them without a warning. Others are unknown to
// the registry (the warning path).
var FixtureImages = []string{
	"nginx:latest", "nginx:1", "nginx:1.27", "nginx:1.28", "nginx:2", "busybox:latest", "busybox:1.36",
	"postgres:latest", "postgres:16", "redis:latest", "redis:7", "api:latest", "api:1",
	// examples/app/app.yml
	"127.0.0.1:5000/shoal/whoami:latest", "127.0.0.1:5000/shoal/busybox:latest",
}

// imageRegistry is the daemon's registry: go-containerregistry's real one
// in memory, behind every registry host. The node's Registry service (the
// real one, package internal/registry) reaches it through a transport that
// sends every request there, so "nginx" (Docker Hub) resolves in the test
// process without a network.
type imageRegistry struct {
	srv *httptest.Server
}

func startRegistry(t testing.TB) *imageRegistry {
	srv := httptest.NewServer(ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return &imageRegistry{srv: srv}
}

// RoundTrip sends the request to the in-memory registry whatever its host.
func (r *imageRegistry) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.URL.Scheme = "http"
	out.URL.Host = strings.TrimPrefix(r.srv.URL, "http://")
	out.Host = out.URL.Host
	return r.srv.Client().Transport.RoundTrip(out)
}

func (r *imageRegistry) options() registry.Options {
	return registry.Options{Transport: r}
}

// PushImage pushes a small image to the daemon's registry as ref (any
// registry host: they all lead to the one in memory) and returns its
// digest. The image is made from ref and content alone, so its digest is
// the same in every run; another content makes another image (a tag that
// moved).
func (d *Daemon) PushImage(t testing.TB, ref, content string) string {
	t.Helper()
	img := fixtureImage(t, ref, content)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithTransport(d.registry)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	dg, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return dg.String()
}

// ImageDigest is the digest PushImage(t, ref, "") gives: what a fixture
// image is pinned to.
func ImageDigest(t testing.TB, ref string) string {
	t.Helper()
	dg, err := fixtureImage(t, ref, "").Digest()
	if err != nil {
		t.Fatal(err)
	}
	return dg.String()
}

// fixtureImage is an image with no layers whose config names ref and
// content: deterministic, a few hundred bytes.
func fixtureImage(t testing.TB, ref, content string) v1.Image {
	t.Helper()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64",
		RootFS: v1.RootFS{Type: "layers"}, Config: v1.Config{Labels: map[string]string{"ref": ref, "content": content}}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}
