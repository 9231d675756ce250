package stack

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// Labels every stack object carries.
const (
	// LabelNamespace ties an object to its stack (Docker's
	// com.docker.stack.namespace).
	LabelNamespace = "io.shoal.stack.namespace"
	// LabelImage records a service's image as written in the file
	// (Docker's com.docker.stack.image).
	LabelImage = "io.shoal.stack.image"
)

// NamespaceFilter is the label filter that selects a stack's objects.
func NamespaceFilter(stack string) string { return LabelNamespace + "=" + stack }

// Plan is what a stack deploy creates or updates.
type Plan struct {
	Stack    string
	Networks []*Network // sorted by name
	Secrets  []*Secret  // sorted by name
	Configs  []*Config  // sorted by name
	Services []*Service // in creation order: dependencies first, then by name
	// Warnings found while converting, ready to print on stderr.
	Warnings []string
}

// Network is a network the stack uses.
type Network struct {
	Key      string // name in the file
	Name     string // <stack>_<key>, its name: or, when external, its plain name
	External bool
	Spec     *api.NetworkSpec // nil when external
}

// Secret is a secret the stack declares.
type Secret struct {
	Key      string
	Name     string
	External bool
	// Spec carries the data once known: from the environment at conversion,
	// from File once ReadSources ran. Nil when external.
	Spec *api.SecretSpec
	// File is where the data comes from, "" when not from a file.
	File string
}

// Config is a config the stack declares.
type Config struct {
	Key      string
	Name     string
	External bool
	Spec     *api.ConfigSpec // nil when external
	File     string
}

// Service is a service of the stack.
type Service struct {
	Key  string // name in the file
	Name string // <stack>_<key>
	// Spec names networks, secrets and configs by name; Resolve fills IDs.
	Spec *api.ServiceSpec
	// DependsOn are the names of the services to wait for, sorted.
	DependsOn []string
	// Healthcheck tells whether the service has a health check of its own.
	Healthcheck bool
}

// IDs maps object names to the IDs the daemon gave them.
type IDs struct {
	Networks, Secrets, Configs map[string]string
}

// Resolve returns a copy of the spec whose references carry IDs: network
// targets become network IDs, secret and config references get their IDs.
func (s *Service) Resolve(ids IDs) (*api.ServiceSpec, error) {
	spec := proto.Clone(s.Spec).(*api.ServiceSpec)
	for _, n := range spec.GetTask().GetNetworks() {
		id, ok := ids.Networks[n.Target]
		if !ok {
			return nil, fmt.Errorf("service %s: network %s not found", s.Name, n.Target)
		}
		n.Target = id
	}
	c := spec.GetTask().GetContainer()
	for _, r := range c.GetSecrets() {
		id, ok := ids.Secrets[r.SecretName]
		if !ok {
			return nil, fmt.Errorf("service %s: secret not found: %s", s.Name, r.SecretName)
		}
		r.SecretId = id
	}
	for _, r := range c.GetConfigs() {
		id, ok := ids.Configs[r.ConfigName]
		if !ok {
			return nil, fmt.Errorf("service %s: config not found: %s", s.Name, r.ConfigName)
		}
		r.ConfigId = id
	}
	return spec, nil
}

// ReadSources fills the data of secrets and configs that come from files,
// with read (ReadFileCapped in the CLI), checking the daemon's size limits.
func (p *Plan) ReadSources(read func(path string, limit int64) ([]byte, error)) error {
	for _, s := range p.Secrets {
		if s.File == "" || s.External {
			continue
		}
		data, err := read(s.File, MaxSecretSize)
		if err != nil {
			return fmt.Errorf("secret %s (%s): %w", s.Key, s.File, sizeError(err, "secret", MaxSecretSize))
		}
		if len(data) == 0 {
			return fmt.Errorf("secret %s (%s): the file is empty; a secret needs data", s.Key, s.File)
		}
		s.Spec.Data = data
	}
	for _, c := range p.Configs {
		if c.File == "" || c.External {
			continue
		}
		data, err := read(c.File, MaxConfigSize)
		if err != nil {
			return fmt.Errorf("config %s (%s): %w", c.Key, c.File, sizeError(err, "config", MaxConfigSize))
		}
		c.Spec.Data = data
	}
	return p.checkSizes()
}

func sizeError(err error, kind string, limit int64) error {
	if strings.Contains(err.Error(), "larger than") {
		return fmt.Errorf("%ss must be smaller than %s", kind, humanSize(limit))
	}
	return err
}

// checkSizes refuses data the daemon would refuse.
func (p *Plan) checkSizes() error {
	for _, s := range p.Secrets {
		if n := len(s.Spec.GetData()); !s.External && n >= MaxSecretSize {
			return fmt.Errorf("secret %s is %d bytes; secrets must be smaller than 500KB", s.Name, n)
		}
	}
	for _, c := range p.Configs {
		if n := len(c.Spec.GetData()); !c.External && n >= MaxConfigSize {
			return fmt.Errorf("config %s is %d bytes; configs must be smaller than 1000KB", c.Name, n)
		}
	}
	return nil
}

// order sorts services so that each comes after what it depends on, ties
// by name; a cycle is an error naming its services. deps maps a service key
// to the keys it depends on.
func order(services map[string]*Service, deps map[string][]string) ([]*Service, error) {
	var out []*Service
	state := map[string]int{} // 0 new, 1 visiting, 2 done
	var path []string
	var visit func(key string) error
	visit = func(key string) error {
		switch state[key] {
		case 2:
			return nil
		case 1:
			i := 0
			for path[i] != key {
				i++
			}
			cycle := append(append([]string{}, path[i:]...), key)
			return fmt.Errorf("depends_on: services %s depend on each other in a cycle (%s); remove one of these dependencies",
				strings.Join(sortedUnique(path[i:]), ", "), strings.Join(cycle, " -> "))
		}
		state[key] = 1
		path = append(path, key)
		for _, dep := range deps[key] {
			if _, ok := services[dep]; !ok {
				return fmt.Errorf("service %q depends on undefined service %q", key, dep)
			}
			if err := visit(dep); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		state[key] = 2
		out = append(out, services[key])
		return nil
	}
	for _, k := range sortedKeys(services) {
		if err := visit(k); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func sortedUnique(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	n := 0
	for i, s := range out {
		if i == 0 || s != out[n-1] {
			out[n] = s
			n++
		}
	}
	return out[:n]
}
