package dockerapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	ireg "github.com/shoal-project/shoal/internal/registry"
)

// distributionInspect answers GET /distribution/{image}/json: the image's
// manifest descriptor in its registry and the platforms it has, as
// `docker service create` asks to pin the image by digest. The image
// reference holds slashes, so the path is cut here. X-Registry-Auth (if
// any) is used to log in to the registry. The registry is read by package
// internal/registry, as the control socket's Registry service reads it for
// the shoal CLI: loopback registries and Config.InsecureRegistries over
// plain HTTP, as the nodes pull.
func (s *Server) distributionInspect(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	raw, ok := strings.CutSuffix(r.PathValue("ref"), "/json")
	if !ok || raw == "" {
		return notFound("page not found")
	}
	var auth ireg.Auth
	if h := r.Header.Get("X-Registry-Auth"); h != "" {
		ac, err := registryAuth(h)
		if err != nil {
			return err
		}
		auth = ireg.Auth{Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
			IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}
	}
	res, err := ireg.Inspect(ctx, raw, auth, ireg.Options{Insecure: s.cfg.InsecureRegistries})
	if err != nil {
		return err // errdefs kinds: 400, 404, 403, 503
	}
	out := registry.DistributionInspect{
		Descriptor: ocispec.Descriptor{MediaType: res.MediaType, Digest: digest.Digest(res.Digest), Size: res.Size},
		Platforms:  make([]ocispec.Platform, 0, len(res.Platforms)),
	}
	for _, p := range res.Platforms {
		out.Platforms = append(out.Platforms, ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion, OSFeatures: p.OSFeatures})
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
