package dockerapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shoal-project/shoal/errdefs"
)

// distributionInspect answers GET /distribution/{image}/json: the image's
// manifest descriptor in its registry and the platforms it has, as
// `docker service create` asks to pin the image by digest. The image
// reference holds slashes, so the path is cut here. X-Registry-Auth (if
// any) is used to log in to the registry; loopback registries are reached
// over plain HTTP, as the nodes reach them.
func (s *Server) distributionInspect(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	raw, ok := strings.CutSuffix(r.PathValue("ref"), "/json")
	if !ok || raw == "" {
		return notFound("page not found")
	}
	var opts []name.Option
	if isLoopbackRegistry(raw) {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(raw, opts...)
	if err != nil {
		return badRequest("invalid image reference %q: %v", raw, err)
	}
	auth := authn.Anonymous
	if h := r.Header.Get("X-Registry-Auth"); h != "" {
		ac, err := registryAuth(h)
		if err != nil {
			return err
		}
		auth = authn.FromConfig(authn.AuthConfig{Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
			IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken})
	}
	desc, err := remote.Get(ref, remote.WithContext(ctx), remote.WithAuth(auth))
	if err != nil {
		return registryError(raw, err)
	}
	out := registry.DistributionInspect{
		Descriptor: ocispec.Descriptor{MediaType: string(desc.MediaType), Digest: digest.Digest(desc.Digest.String()), Size: desc.Size},
		Platforms:  []ocispec.Platform{},
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return registryError(raw, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return registryError(raw, err)
		}
		for _, m := range im.Manifests {
			if p := m.Platform; p != nil && p.OS != "unknown" {
				out.Platforms = append(out.Platforms, ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion, OSFeatures: p.OSFeatures})
			}
		}
	} else {
		img, err := desc.Image()
		if err != nil {
			return registryError(raw, err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return registryError(raw, err)
		}
		out.Platforms = append(out.Platforms, ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, OSVersion: cfg.OSVersion})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// registryAuth decodes an X-Registry-Auth header (base64url JSON, as the
// docker CLI sends it); an empty header is no credentials. Its error is a
// 400 naming the header.
func registryAuth(h string) (*registry.AuthConfig, error) {
	ac, err := authconfig.Decode(h)
	if err != nil {
		// authconfig's message starts "invalid X-Registry-Auth header: ".
		return nil, badRequest("%v (send base64url-encoded JSON such as e30=, which is {})", err)
	}
	return ac, nil
}

// isLoopbackRegistry reports whether ref names a registry on a loopback
// address ("127.0.0.1:5000/x", "localhost:5000/x").
func isLoopbackRegistry(ref string) bool {
	host, _, ok := strings.Cut(ref, "/")
	if !ok {
		return false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// registryError maps a registry failure to docker's statuses: unknown
// image 404, refused credentials 403, others 503.
func registryError(ref string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusNotFound:
			return notFound("image %s not found in its registry: check the name and tag (%v)", ref, err)
		case http.StatusUnauthorized, http.StatusForbidden:
			return errdefs.PermissionDenied("the registry refused access to %s: log in with `docker login` and pass --with-registry-auth (%v)", ref, err)
		}
	}
	return errdefs.Unavailable("cannot read %s from its registry: %v", ref, err)
}
