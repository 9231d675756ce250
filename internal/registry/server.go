package registry

import (
	"context"

	"github.com/shoal-project/shoal/internal/imageref"
	api "github.com/shoal-project/shoal/proto"
)

// Server serves the Registry gRPC service (ResolveImage) with Inspect.
type Server struct {
	api.UnimplementedRegistryServer
	opts Options
}

// NewServer returns a Registry server that reaches registries with o.
func NewServer(o Options) *Server { return &Server{opts: o} }

// ResolveImage answers what req.Image points to in its registry; the
// error is Inspect's (an errdefs kind, mapped to a gRPC code by the
// caller's interceptor).
func (s *Server) ResolveImage(ctx context.Context, req *api.ResolveImageRequest) (*api.ResolveImageResponse, error) {
	var auth Auth
	if a := req.GetAuth(); a != nil {
		auth = Auth{Username: a.GetUsername(), Password: a.GetPassword(), Auth: a.GetAuth(),
			IdentityToken: a.GetIdentityToken(), RegistryToken: a.GetRegistryToken()}
	}
	res, err := Inspect(ctx, req.GetImage(), auth, s.opts)
	if err != nil {
		return nil, err
	}
	out := &api.ResolveImageResponse{Digest: res.Digest, Pinned: imageref.Pin(req.GetImage(), res.Digest),
		MediaType: res.MediaType, Size: res.Size}
	for _, p := range res.Platforms {
		out.Platforms = append(out.Platforms, &api.Platform{Os: p.OS, Architecture: p.Architecture})
	}
	return out, nil
}
