package node

import (
	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/internal/registry"
	api "github.com/shoal-project/shoal/proto"
)

// serveRegistry adds the Registry service (ResolveImage) to the control
// socket's server s: the CLI asks its own node what an image tag points to
// before it pins the digest, so the registry is reached as this node's
// executor reaches it (Config.InsecureRegistries, loopback over plain
// HTTP). It answers outside a swarm too; each call is bounded by
// Config.RegistryTimeout.
func (n *Node) serveRegistry(s *grpc.Server) {
	api.RegisterRegistryServer(s, registry.NewServer(registry.Options{
		Insecure: n.cfg.InsecureRegistries,
		Timeout:  n.cfg.RegistryTimeout,
	}))
}
