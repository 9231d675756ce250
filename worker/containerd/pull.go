package containerd

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shoal-project/shoal/worker"
)

// ensureImage pulls ref and unpacks it into the snapshotter, and returns
// the image. Like Docker's swarm executor it pulls on every Prepare, so a
// moved tag is followed, but falls back to a local copy when the registry
// fails; with neither, an image the registry does not know is a rejection
// and anything else a transient error. Concurrent pulls of one reference
// share one transfer.
func (e *Executor) ensureImage(ctx context.Context, ref string) (client.Image, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return nil, worker.Rejected(fmt.Errorf("invalid image reference %q: %w", ref, err))
	}
	full := named.String()
	v, err, _ := e.pulls.Do(full, func() (any, error) { return e.pull(ctx, ref, full) })
	if err != nil {
		return nil, err
	}
	return v.(client.Image), nil
}

func (e *Executor) pull(ctx context.Context, ref, full string) (_ client.Image, err error) {
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(func(host string) (bool, error) {
			return e.cfg.plainHTTP(host), nil
		})),
	})
	// Blobs the content store lacks are fetched: their sizes are the
	// bytes pulled (the handler runs before the fetch).
	var fetched atomic.Int64
	cs := e.client.ContentStore()
	countNew := images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if _, err := cs.Info(ctx, desc.Digest); cerrdefs.IsNotFound(err) {
			fetched.Add(desc.Size)
		}
		return nil, nil
	})
	start := time.Now()
	img, pullErr := e.client.Pull(ctx, full,
		client.WithResolver(resolver),
		client.WithPullUnpack,
		client.WithPullSnapshotter(e.cfg.Snapshotter),
		client.WithImageHandler(countNew),
	)
	e.pm.bytes.Add(float64(fetched.Load()))
	if pullErr == nil {
		e.pm.seconds.Observe(time.Since(start).Seconds())
		e.pm.pulls.WithLabelValues("pulled").Inc()
		return img, nil
	}
	defer func() {
		result := "local"
		if err != nil {
			result = "failed"
		}
		e.pm.pulls.WithLabelValues(result).Inc()
	}()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, pullErr)
	}
	if local, err := e.client.GetImage(ctx, full); err == nil {
		if ok, _ := local.IsUnpacked(ctx, e.cfg.Snapshotter); !ok {
			if err := local.Unpack(ctx, e.cfg.Snapshotter); err != nil {
				return nil, fmt.Errorf("pull %s: %w; unpack the local copy: %v", ref, pullErr, err)
			}
		}
		return local, nil
	}
	if cerrdefs.IsNotFound(pullErr) {
		// Docker's words, so users recognise the failure in `service ps`.
		return nil, worker.Rejected(fmt.Errorf("No such image: %s: %w", ref, pullErr))
	}
	return nil, fmt.Errorf("pull %s: %w", ref, pullErr)
}

// defaultsOf extracts what a container inherits from its image config.
func defaultsOf(img ocispec.Image, health *imageHealth) imageDefaults {
	c := img.Config
	return imageDefaults{
		Healthcheck: health,
		Entrypoint:  c.Entrypoint,
		Cmd:         c.Cmd,
		Env:         c.Env,
		WorkingDir:  c.WorkingDir,
		User:        c.User,
		StopSignal:  c.StopSignal,
	}
}
