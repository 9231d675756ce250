package service

import (
	"context"
	"strings"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/internal/imageref"
	api "github.com/shoal-project/shoal/proto"
)

// PinImage does what the docker client does to a service's image before
// it sends the spec: a bare name gets ":latest"; then, when resolve is
// true, the local node asks the image's registry what the tag points to
// (Registry.ResolveImage), and the spec records "image:tag@sha256:..." and
// the image's platforms, so that every node runs the same image. When the
// registry cannot be read, the tag stays and the returned warning (docker's
// words) says so; the caller prints it with the daemon's warnings. An image
// that already has a digest is not rewritten, but its platforms are
// recorded as docker records them.
func PinImage(ctx context.Context, cli *command.Cli, spec *api.ServiceSpec, resolve bool) (warning string) {
	c := spec.GetTask().GetContainer()
	if c == nil || c.GetImage() == "" {
		return ""
	}
	c.Image = imageref.WithDefaultTag(c.Image)
	if !resolve {
		return ""
	}
	cl, err := cli.Client()
	if err != nil {
		return imageref.Warning(c.Image)
	}
	resp, err := cl.Registry.ResolveImage(ctx, &api.ResolveImageRequest{Image: c.Image})
	if err != nil || resp.GetDigest() == "" {
		return imageref.Warning(c.Image)
	}
	c.Image = imageref.Pin(c.Image, resp.GetDigest())
	if len(resp.GetPlatforms()) > 0 {
		ps := make([]*api.Platform, 0, len(resp.GetPlatforms()))
		for _, p := range resp.GetPlatforms() {
			arch := p.GetArchitecture()
			// As docker: image configs say "arm" where nodes say
			// "armv7l", so arm images carry no architecture constraint.
			if strings.EqualFold(arch, "arm") {
				arch = ""
			}
			ps = append(ps, &api.Platform{Os: p.GetOs(), Architecture: arch})
		}
		placement(spec.Task).Platforms = ps
	}
	return ""
}
