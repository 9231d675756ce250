package images

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// StartRegistry starts an in-memory OCI registry (go-containerregistry's
// pkg/registry) on 127.0.0.1 for the duration of the test and returns its
// "host:port". It speaks plain HTTP; containerd clients must treat the host
// as insecure (shoal's executor does so for loopback addresses).
func StartRegistry(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// PushTest builds the named image (see Names) and pushes it to registry as
// Ref(registry, imageName), failing the test on error. It returns the
// reference.
func PushTest(t testing.TB, registry, imageName string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := Build(ctx, imageName)
	if err != nil {
		t.Fatalf("build image %s: %v", imageName, err)
	}
	ref := Ref(registry, imageName)
	if err := Push(ctx, img, ref, true); err != nil {
		t.Fatalf("%v", err)
	}
	return ref
}
