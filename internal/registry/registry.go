package registry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/shoal-project/shoal/errdefs"
)

// DefaultTimeout bounds one Inspect when Options.Timeout is zero: long
// enough for a slow registry's token dance, short enough that a `service
// create` against an unreachable one goes on with a warning soon.
const DefaultTimeout = 20 * time.Second

// Options are how a node reaches registries.
type Options struct {
	// Insecure are the registries reached over plain HTTP besides loopback
	// ones: "host", "host:port" or a CIDR (shoald --insecure-registry).
	Insecure []string
	// Timeout bounds one Inspect; zero: DefaultTimeout.
	Timeout time.Duration
	// Transport carries the requests; nil: remote's default.
	Transport http.RoundTripper
}

// Auth are the credentials a client sends for the registry (docker's
// X-Registry-Auth, `--with-registry-auth`). The zero value is anonymous.
type Auth struct {
	Username, Password, Auth, IdentityToken, RegistryToken string
}

func (a Auth) isZero() bool { return a == Auth{} }

// Platform is one platform an image is built for.
type Platform struct {
	OS, Architecture, Variant, OSVersion string
	OSFeatures                           []string
}

// Result is what the registry says of an image reference.
type Result struct {
	// MediaType, Digest and Size describe the manifest (or index) the
	// reference points to.
	MediaType string
	Digest    string
	Size      int64
	// Platforms are the platforms of an index's manifests (those with
	// os "unknown", attestations, left out), or the one image's.
	Platforms []Platform
}

// Inspect asks ref's registry for its manifest descriptor and platforms.
func Inspect(ctx context.Context, ref string, auth Auth, o Options) (*Result, error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var nopts []name.Option
	if host, ok := registryHost(ref); ok && PlainHTTP(host, o.Insecure) {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, errdefs.InvalidArgument("invalid image reference %q: %v", ref, err)
	}
	ropts := []remote.Option{remote.WithContext(ctx)}
	if !auth.isZero() {
		ropts = append(ropts, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: auth.Username,
			Password: auth.Password, Auth: auth.Auth, IdentityToken: auth.IdentityToken, RegistryToken: auth.RegistryToken})))
	}
	if o.Transport != nil {
		ropts = append(ropts, remote.WithTransport(o.Transport))
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, registryError(ref, err)
	}
	out := &Result{MediaType: string(desc.MediaType), Digest: desc.Digest.String(), Size: desc.Size, Platforms: []Platform{}}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, registryError(ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, registryError(ref, err)
		}
		for _, m := range im.Manifests {
			if p := m.Platform; p != nil && p.OS != "unknown" {
				out.Platforms = append(out.Platforms, Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion, OSFeatures: p.OSFeatures})
			}
		}
		return out, nil
	}
	img, err := desc.Image()
	if err != nil {
		return nil, registryError(ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, registryError(ref, err)
	}
	out.Platforms = append(out.Platforms, Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, OSVersion: cfg.OSVersion})
	return out, nil
}

// registryHost is the registry part of ref ("127.0.0.1:5000" of
// "127.0.0.1:5000/app:v1"); false when ref names Docker Hub.
func registryHost(ref string) (string, bool) {
	host, _, ok := strings.Cut(ref, "/")
	if !ok || !strings.ContainsAny(host, ".:") && host != "localhost" {
		return "", false
	}
	return host, true
}

// PlainHTTP tells whether host ("name" or "name:port") is reached over
// plain HTTP: loopback always (Docker's default insecure range), otherwise
// when insecure lists the host, the host with its port, or a CIDR holding
// its address.
func PlainHTTP(host string, insecure []string) bool {
	hostname := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hostname = h
	}
	hostname = strings.Trim(hostname, "[]")
	if hostname == "localhost" {
		return true
	}
	addr, addrErr := netip.ParseAddr(hostname)
	if addrErr == nil && addr.IsLoopback() {
		return true
	}
	for _, r := range insecure {
		if r == host || r == hostname {
			return true
		}
		if p, err := netip.ParsePrefix(r); err == nil && addrErr == nil && p.Contains(addr.Unmap()) {
			return true
		}
	}
	return false
}

// registryError maps a registry failure to an errdefs kind: unknown image
// NotFound, refused credentials PermissionDenied, others Unavailable.
func registryError(ref string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusNotFound:
			return errdefs.NotFound("image %s not found in its registry: check the name and tag (%v)", ref, err)
		case http.StatusUnauthorized, http.StatusForbidden:
			return errdefs.PermissionDenied("the registry refused access to %s: log in with `docker login` and pass --with-registry-auth (%v)", ref, err)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errdefs.Unavailable("cannot read %s from its registry: no answer in time (%v)", ref, err)
	}
	return errdefs.Unavailable("cannot read %s from its registry: %v", ref, err)
}
