package dockerapi

import (
	"context"
	"strings"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// finder looks up one kind of object by the {id} of a path: a full ID,
// then an exact name, then a unique ID prefix, as dockerd does.
type finder[T interface{ GetId() string }] struct {
	kind string // "node", "service", ... for messages
	get  func(ctx context.Context, id string) (T, error)
	// list lists the objects matching f, all pages.
	list func(ctx context.Context, f *api.ListFilters) ([]T, error)
	// names are the names an object answers to (a node: its name and
	// hostname).
	names func(T) []string
}

// lookup resolves ref. Errors: 404 "<kind> <ref> not found", 400 "<kind>
// <ref> is ambiguous (N matches found)", or the manager's own error.
func (f finder[T]) lookup(ctx context.Context, ref string) (T, error) {
	var zero T
	if ref == "" {
		return zero, badRequest("%s ID or name is empty", f.kind)
	}
	obj, err := f.get(ctx, ref)
	if err == nil {
		return obj, nil
	}
	if !errdefs.IsNotFound(err) && !errdefs.IsInvalidArgument(err) {
		return zero, err
	}
	byName, err := f.list(ctx, &api.ListFilters{Names: []string{ref}})
	if err != nil {
		return zero, err
	}
	var named []T
	for _, o := range byName {
		for _, n := range f.names(o) {
			if n == ref {
				named = append(named, o)
				break
			}
		}
	}
	switch len(named) {
	case 1:
		return named[0], nil
	case 0:
	default:
		return zero, badRequest("%s %s is ambiguous (%d matches found)", f.kind, ref, len(named))
	}
	byPrefix, err := f.list(ctx, &api.ListFilters{IdPrefixes: []string{ref}})
	if err != nil {
		return zero, err
	}
	var matched []T
	for _, o := range byPrefix {
		if strings.HasPrefix(o.GetId(), ref) {
			matched = append(matched, o)
		}
	}
	switch len(matched) {
	case 1:
		return matched[0], nil
	case 0:
		return zero, notFound("%s %s not found", f.kind, ref)
	}
	return zero, badRequest("%s %s is ambiguous (%d matches found)", f.kind, ref, len(matched))
}

// pages calls one page of a list until the answer has no next page token.
func pages[T any](ctx context.Context, call func(ctx context.Context, token string) ([]T, string, error)) ([]T, error) {
	var out []T
	token := ""
	seen := map[string]bool{}
	for {
		items, next, err := call(ctx, token)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if next == "" {
			return out, nil
		}
		if seen[next] {
			return nil, errdefs.Internal("the manager returned the same page twice (token %q)", next)
		}
		seen[next] = true
		token = next
	}
}

// Finders of each kind of object.

func (s *Server) nodes() finder[*api.Node] {
	return finder[*api.Node]{
		kind: "node",
		get: func(ctx context.Context, id string) (*api.Node, error) {
			r, err := s.control.GetNode(ctx, &api.GetNodeRequest{NodeId: id})
			return r.GetNode(), errdefs.FromGRPC(err)
		},
		list: func(ctx context.Context, f *api.ListFilters) ([]*api.Node, error) {
			return s.listNodes(ctx, f)
		},
		names: func(n *api.Node) []string {
			return []string{n.GetSpec().GetAnnotations().GetName(), n.GetDescription().GetHostname()}
		},
	}
}

func (s *Server) listNodes(ctx context.Context, f *api.ListFilters) ([]*api.Node, error) {
	return pages(ctx, func(ctx context.Context, token string) ([]*api.Node, string, error) {
		r, err := s.control.ListNodes(ctx, &api.ListNodesRequest{Filters: f, PageToken: token})
		return r.GetNodes(), r.GetNextPageToken(), errdefs.FromGRPC(err)
	})
}

func (s *Server) services() finder[*api.Service] {
	return finder[*api.Service]{
		kind: "service",
		get: func(ctx context.Context, id string) (*api.Service, error) {
			r, err := s.control.GetService(ctx, &api.GetServiceRequest{ServiceId: id})
			return r.GetService(), errdefs.FromGRPC(err)
		},
		list: func(ctx context.Context, f *api.ListFilters) ([]*api.Service, error) {
			return pages(ctx, func(ctx context.Context, token string) ([]*api.Service, string, error) {
				r, err := s.control.ListServices(ctx, &api.ListServicesRequest{Filters: f, PageToken: token})
				return r.GetServices(), r.GetNextPageToken(), errdefs.FromGRPC(err)
			})
		},
		names: func(o *api.Service) []string { return []string{o.GetSpec().GetAnnotations().GetName()} },
	}
}

func (s *Server) tasks() finder[*api.Task] {
	return finder[*api.Task]{
		kind: "task",
		get: func(ctx context.Context, id string) (*api.Task, error) {
			r, err := s.control.GetTask(ctx, &api.GetTaskRequest{TaskId: id})
			return r.GetTask(), errdefs.FromGRPC(err)
		},
		list: func(ctx context.Context, f *api.ListFilters) ([]*api.Task, error) {
			if len(f.GetNames()) > 0 {
				return nil, nil // tasks have no names of their own
			}
			return pages(ctx, func(ctx context.Context, token string) ([]*api.Task, string, error) {
				r, err := s.control.ListTasks(ctx, &api.ListTasksRequest{Filters: f, PageToken: token})
				return r.GetTasks(), r.GetNextPageToken(), errdefs.FromGRPC(err)
			})
		},
		names: func(*api.Task) []string { return nil },
	}
}

func (s *Server) networks() finder[*api.Network] {
	return finder[*api.Network]{
		kind: "network",
		get: func(ctx context.Context, id string) (*api.Network, error) {
			r, err := s.control.GetNetwork(ctx, &api.GetNetworkRequest{NetworkId: id})
			return r.GetNetwork(), errdefs.FromGRPC(err)
		},
		list: func(ctx context.Context, f *api.ListFilters) ([]*api.Network, error) {
			return pages(ctx, func(ctx context.Context, token string) ([]*api.Network, string, error) {
				r, err := s.control.ListNetworks(ctx, &api.ListNetworksRequest{Filters: f, PageToken: token})
				return r.GetNetworks(), r.GetNextPageToken(), errdefs.FromGRPC(err)
			})
		},
		names: func(o *api.Network) []string { return []string{o.GetSpec().GetAnnotations().GetName()} },
	}
}

func (s *Server) secrets() finder[*api.Secret] {
	return finder[*api.Secret]{
		kind: "secret",
		get: func(ctx context.Context, id string) (*api.Secret, error) {
			r, err := s.control.GetSecret(ctx, &api.GetSecretRequest{SecretId: id})
			return r.GetSecret(), errdefs.FromGRPC(err)
		},
		list: func(ctx context.Context, f *api.ListFilters) ([]*api.Secret, error) {
			return pages(ctx, func(ctx context.Context, token string) ([]*api.Secret, string, error) {
				r, err := s.control.ListSecrets(ctx, &api.ListSecretsRequest{Filters: f, PageToken: token})
				return r.GetSecrets(), r.GetNextPageToken(), errdefs.FromGRPC(err)
			})
		},
		names: func(o *api.Secret) []string { return []string{o.GetSpec().GetAnnotations().GetName()} },
	}
}

func (s *Server) configs() finder[*api.Config] {
	return finder[*api.Config]{
		kind: "config",
		get: func(ctx context.Context, id string) (*api.Config, error) {
			r, err := s.control.GetConfig(ctx, &api.GetConfigRequest{ConfigId: id})
			return r.GetConfig(), errdefs.FromGRPC(err)
		},
		list: func(ctx context.Context, f *api.ListFilters) ([]*api.Config, error) {
			return pages(ctx, func(ctx context.Context, token string) ([]*api.Config, string, error) {
				r, err := s.control.ListConfigs(ctx, &api.ListConfigsRequest{Filters: f, PageToken: token})
				return r.GetConfigs(), r.GetNextPageToken(), errdefs.FromGRPC(err)
			})
		},
		names: func(o *api.Config) []string { return []string{o.GetSpec().GetAnnotations().GetName()} },
	}
}
