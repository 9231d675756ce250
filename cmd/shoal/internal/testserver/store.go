package testserver

import (
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// store is one kind of object the fake daemon keeps: its name in errors,
// the server field holding the objects, and how a ref resolves (by ID, name
// or ID prefix). Its methods expect the caller to hold Mu.
type store[T proto.Message] struct {
	kind string
	objs func(*Server) *[]T
	id   func(T) string
	name func(T) string
}

var (
	nodes    = store[*api.Node]{"node", func(s *Server) *[]*api.Node { return &s.Nodes }, (*api.Node).GetId, nodeName}
	tasks    = store[*api.Task]{"task", func(s *Server) *[]*api.Task { return &s.Tasks }, (*api.Task).GetId, noName[*api.Task]}
	services = store[*api.Service]{"service", func(s *Server) *[]*api.Service { return &s.Services }, (*api.Service).GetId, svcName}
	clusters = store[*api.Cluster]{"cluster", func(s *Server) *[]*api.Cluster { return &s.Clusters }, (*api.Cluster).GetId, noName[*api.Cluster]}
	networks = store[*api.Network]{"network", func(s *Server) *[]*api.Network { return &s.Networks }, (*api.Network).GetId, netName}
	secrets  = store[*api.Secret]{"secret", func(s *Server) *[]*api.Secret { return &s.Secrets }, (*api.Secret).GetId, secretName}
	configs  = store[*api.Config]{"config", func(s *Server) *[]*api.Config { return &s.Configs }, (*api.Config).GetId, configName}
)

func nodeName(n *api.Node) string         { return n.GetDescription().GetHostname() }
func svcName(s *api.Service) string       { return s.GetSpec().GetAnnotations().GetName() }
func netName(n *api.Network) string       { return n.GetSpec().GetAnnotations().GetName() }
func secretName(s *api.Secret) string     { return s.GetSpec().GetAnnotations().GetName() }
func configName(c *api.Config) string     { return c.GetSpec().GetAnnotations().GetName() }
func noName[T any](T) string              { return "\x00" }
func (st store[T]) all(s *Server) []T     { return *st.objs(s) }
func (st store[T]) at(s *Server, i int) T { return (*st.objs(s))[i] }

// reply returns r, or only err when there is one, as a handler does.
func reply[R any](r R, err error) (R, error) {
	if err != nil {
		var zero R
		return zero, err
	}
	return r, nil
}

// find returns the index of the object ref names.
func (st store[T]) find(s *Server, ref string) (int, error) {
	return resolve(st.kind, ref, st.all(s), st.id, st.name)
}

// get returns a copy of the object ref names.
func (st store[T]) get(s *Server, ref string) (T, error) {
	i, err := st.find(s, ref)
	if err != nil {
		var zero T
		return zero, err
	}
	return clone(st.at(s, i)), nil
}

// remove deletes the object ref names, unless inUse (when set) refuses.
func (st store[T]) remove(s *Server, ref string, inUse func(T) error) error {
	i, err := st.find(s, ref)
	if err != nil {
		return err
	}
	if inUse != nil {
		if err := inUse(st.at(s, i)); err != nil {
			return err
		}
	}
	*st.objs(s) = slices.Delete(st.all(s), i, i+1)
	return nil
}

// list returns copies of the objects keep accepts (all when keep is nil).
func (st store[T]) list(s *Server, keep func(T) bool) []T {
	var out []T
	for _, o := range st.all(s) {
		if keep == nil || keep(o) {
			out = append(out, clone(o))
		}
	}
	return out
}

// hasName tells whether an object is called name.
func (st store[T]) hasName(s *Server, name string) bool {
	return slices.ContainsFunc(st.all(s), func(o T) bool { return st.name(o) == name })
}

// serviceUsing returns the first service for which uses holds, nil when
// none does.
func (s *Server) serviceUsing(uses func(*api.Service) bool) *api.Service {
	if i := slices.IndexFunc(s.Services, uses); i >= 0 {
		return s.Services[i]
	}
	return nil
}

func prefixMatch(prefixes []string, id string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

// matchFilters applies names, name prefixes, ID prefixes and labels as the
// daemon does for networks, secrets and configs.
func matchFilters(f *api.ListFilters, id, name string, labels map[string]string) bool {
	if len(f.GetNames()) > 0 && !slices.Contains(f.GetNames(), name) {
		return false
	}
	if len(f.GetNamePrefixes()) > 0 && !prefixMatch(f.GetNamePrefixes(), name) {
		return false
	}
	if !prefixMatch(f.GetIdPrefixes(), id) {
		return false
	}
	for _, l := range f.GetLabels() {
		k, v, hasValue := strings.Cut(l, "=")
		got, ok := labels[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	return true
}

// resolve finds the one object whose ID equals ref, else whose name equals
// ref, else whose ID starts with ref, as the daemon does.
func resolve[T any](kind, ref string, objs []T, id func(T) string, name func(T) string) (int, error) {
	if i := slices.IndexFunc(objs, func(o T) bool { return id(o) == ref }); i >= 0 {
		return i, nil
	}
	byName := func(o T) bool { return name(o) == ref }
	byPrefix := func(o T) bool { return ref != "" && strings.HasPrefix(id(o), ref) }
	for _, match := range []func(T) bool{byName, byPrefix} {
		found := -1
		for i, o := range objs {
			if !match(o) {
				continue
			}
			if found >= 0 {
				return -1, status.Errorf(codes.InvalidArgument, "%s %s is ambiguous (%d matches found)", kind, ref, 2)
			}
			found = i
		}
		if found >= 0 {
			return found, nil
		}
	}
	return -1, notFound(kind, ref)
}
