package dockerapi

import (
	"context"
	"net/http"
)

// unsupported are the Engine API areas shoal does not serve, each with
// the swarm way to do what the client wanted.
var unsupported = []struct {
	prefix, what, instead string
}{
	{"/containers", "standalone containers", "run a service (`docker service create`) and look at its tasks with `docker service ps` and `docker service logs`"},
	{"/exec", "exec into containers", "read a service's output with `docker service logs`"},
	{"/commit", "committing containers to images", "build images elsewhere and push them to a registry the nodes pull from"},
	{"/images", "local images", "push images to a registry; every node pulls what its tasks need (`docker service create IMAGE`)"},
	{"/build", "image builds", "build images elsewhere and push them to a registry the nodes pull from"},
	{"/plugins", "plugins", "nothing: shoal has no plugin system"},
	{"/auth", "registry logins", "pass credentials with the service (`docker service create --with-registry-auth`)"},
	{"/system/df", "disk usage", "look at the nodes with `docker node ls` and `docker node inspect`"},
	{"/session", "build sessions", "build images elsewhere and push them to a registry"},
	{"/grpc", "buildkit", "build images elsewhere and push them to a registry"},
}

func (s *Server) unsupportedRoutes() {
	for _, u := range unsupported {
		h := func(context.Context, http.ResponseWriter, *http.Request) error {
			return notImplemented("shoal runs swarm services: %s (%s) are not served by its Engine API; instead, %s", u.what, u.prefix, u.instead)
		}
		s.handle(u.prefix, h)
		s.handle(u.prefix+"/", h)
	}
}
