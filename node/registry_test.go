package node

import (
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	api "github.com/shoal-project/shoal/proto"
)

// hostIPv4 is a non-loopback IPv4 address of this host, "" when none.
func hostIPv4() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String()
		}
	}
	return ""
}

// The control socket's Registry service answers outside a swarm, reaches
// loopback registries over plain HTTP, and others only when
// Config.InsecureRegistries lists them.
func TestRegistryResolveImageOnTheControlSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	loop := "127.0.0.1:" + port
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(loop+"/app:v1", name.Insecure)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	dg, _ := img.Digest()

	ip := hostIPv4()
	var insecure []string
	if ip != "" {
		insecure = []string{ip + ":" + port}
	}
	tn := startNodeWith(t, t.TempDir(), freeAddr(t), newFakeExec(), func(c *Config) { c.InsecureRegistries = insecure })
	reg := api.NewRegistryClient(tn.conn)
	resp, err := reg.ResolveImage(tn.ctx(), &api.ResolveImageRequest{Image: loop + "/app:v1"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetDigest() != dg.String() || resp.GetPinned() != loop+"/app:v1@"+dg.String() {
		t.Errorf("ResolveImage: %v, want digest %s", resp, dg)
	}
	_, err = reg.ResolveImage(tn.ctx(), &api.ResolveImageRequest{Image: loop + "/app:nope"})
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "app:nope") {
		t.Errorf("unknown tag: %v", err)
	}
	if ip == "" {
		t.Log("no non-loopback IPv4 address: the --insecure-registry case is not run")
		return
	}
	resp, err = reg.ResolveImage(tn.ctx(), &api.ResolveImageRequest{Image: ip + ":" + port + "/app:v1"})
	if err != nil || resp.GetDigest() != dg.String() {
		t.Errorf("insecure registry %s:%s: %v %v", ip, port, resp, err)
	}
}
