package registry

import (
	"context"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func push(t *testing.T, ref string, img v1.Image) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestInspectImage(t *testing.T) {
	reg := startRegistry(t)
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	want := push(t, reg+"/app:v1", img)
	res, err := Inspect(context.Background(), reg+"/app:v1", Auth{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != want || len(res.Platforms) != 1 || res.Platforms[0].OS != "linux" || res.Platforms[0].Architecture != "amd64" {
		t.Errorf("got %+v, want digest %s on linux/amd64", res, want)
	}
	// The gRPC face pins the reference as the user wrote it.
	resp, err := NewServer(Options{}).ResolveImage(context.Background(), &api.ResolveImageRequest{Image: reg + "/app:v1"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetPinned() != reg+"/app:v1@"+want || resp.GetDigest() != want || len(resp.GetPlatforms()) != 1 {
		t.Errorf("ResolveImage: %v", resp)
	}
}

func TestInspectIndexPlatforms(t *testing.T) {
	reg := startRegistry(t)
	var adds []mutate.IndexAddendum
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}, {OS: "unknown", Architecture: "unknown"}} {
		img, err := random.Image(32, 1)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	r, _ := name.ParseReference(reg+"/multi:1", name.Insecure)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	res, err := Inspect(context.Background(), reg+"/multi:1", Auth{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != d.String() || len(res.Platforms) != 2 || res.Platforms[1].Variant != "v8" {
		t.Errorf("got %+v, want %s with the two real platforms", res, d)
	}
}

func TestInspectErrors(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	if _, err := Inspect(ctx, reg+"/nothing:v1", Auth{}, Options{}); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), reg+"/nothing:v1") {
		t.Errorf("unknown image: %v", err)
	}
	if _, err := Inspect(ctx, "UPPER/case", Auth{}, Options{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad reference: %v", err)
	}
	// A registry that accepts the connection and never answers: the
	// timeout ends the call.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	_, err = Inspect(ctx, lis.Addr().String()+"/app:v1", Auth{}, Options{Timeout: 300 * time.Millisecond})
	if !errdefs.IsUnavailable(err) || time.Since(start) > 5*time.Second {
		t.Errorf("silent registry: %v after %v", err, time.Since(start))
	}
}

func TestPlainHTTP(t *testing.T) {
	insecure := []string{"reg.example:5000", "10.1.0.0/16", "plain.example"}
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "localhost:5000": true, "localhost": true, "[::1]:5000": true,
		"reg.example:5000": true, "reg.example": false, "10.1.2.3:443": true, "10.2.0.1:5000": false,
		"plain.example:8080": true, "registry.example.com": false,
	} {
		if got := PlainHTTP(host, insecure); got != want {
			t.Errorf("%s: %v, want %v", host, got, want)
		}
	}
	for ref, want := range map[string]bool{
		"127.0.0.1:5000/a/b:c": true, "localhost:5000/x": true, "[::1]:5000/x": true,
		"nginx:latest": false, "registry.example.com/x": false, "10.0.0.1:5000/x": false,
	} {
		host, ok := registryHost(ref)
		if got := ok && PlainHTTP(host, nil); got != want {
			t.Errorf("%s: %v", ref, got)
		}
	}
}
