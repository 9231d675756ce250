package stack

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/internal/specs"
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
	Stack string
	// files names the stack files in messages.
	files    string
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

// Validate checks every service spec with the daemon's own rules (the
// Control API's validation), so a deploy refuses a file before it creates
// anything rather than halfway through. Errors name the file and service.
func (p *Plan) Validate() error {
	for _, s := range p.Services {
		if err := specs.ValidateService(proto.Clone(s.Spec).(*api.ServiceSpec)); err != nil {
			return fmt.Errorf("%s: service %q: %v", p.files, s.Key, err)
		}
	}
	return nil
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
			return fmt.Errorf("%s: secrets.%s.file: %w", p.files, s.Key, sizeError(err, "secret", MaxSecretSize))
		}
		if len(data) == 0 {
			return fmt.Errorf("%s: secrets.%s.file: %s is empty; a secret needs data", p.files, s.Key, s.File)
		}
		s.Spec.Data = data
	}
	for _, c := range p.Configs {
		if c.File == "" || c.External {
			continue
		}
		data, err := read(c.File, MaxConfigSize)
		if err != nil {
			return fmt.Errorf("%s: configs.%s.file: %w", p.files, c.Key, sizeError(err, "config", MaxConfigSize))
		}
		c.Spec.Data = data
	}
	return p.checkSizes()
}

func sizeError(err error, kind string, limit int64) error {
	if strings.Contains(err.Error(), "is larger than") {
		return fmt.Errorf("%w (%s data is limited to %s)", err, kind, api.FormatBytes(limit))
	}
	return err
}

// checkSizes refuses data the daemon would refuse.
func (p *Plan) checkSizes() error {
	for _, s := range p.Secrets {
		if n := len(s.Spec.GetData()); !s.External && n > MaxSecretSize {
			return fmt.Errorf("secret %s is %s; the limit is %s", s.Name, api.FormatBytes(int64(n)), api.FormatBytes(MaxSecretSize))
		}
	}
	for _, c := range p.Configs {
		if n := len(c.Spec.GetData()); !c.External && n > MaxConfigSize {
			return fmt.Errorf("config %s is %s; the limit is %s", c.Name, api.FormatBytes(int64(n)), api.FormatBytes(MaxConfigSize))
		}
	}
	return nil
}

// order sorts services so that each comes after what it depends on:
// services whose dependencies are placed go first, by name (Kahn's
// algorithm). A cycle is an error naming its services. deps maps a service
// key to the keys it depends on.
func order(services map[string]*Service, deps map[string][]string) ([]*Service, error) {
	waiting := map[string]int{}         // unplaced dependencies of each service
	dependants := map[string][]string{} // who depends on each service
	for _, k := range sortedKeys(services) {
		for _, dep := range deps[k] {
			if _, ok := services[dep]; !ok {
				return nil, fmt.Errorf("service %q depends on undefined service %q", k, dep)
			}
			waiting[k]++
			dependants[dep] = append(dependants[dep], k)
		}
	}
	var ready, out []string
	for _, k := range sortedKeys(services) {
		if waiting[k] == 0 {
			ready = append(ready, k)
		}
	}
	for len(ready) > 0 {
		sort.Strings(ready)
		k := ready[0]
		ready = ready[1:]
		out = append(out, k)
		for _, d := range dependants[k] {
			if waiting[d]--; waiting[d] == 0 {
				ready = append(ready, d)
			}
		}
	}
	if len(out) < len(services) {
		return nil, cycleError(services, deps, waiting)
	}
	ordered := make([]*Service, len(out))
	for i, k := range out {
		ordered[i] = services[k]
	}
	return ordered, nil
}

// cycleError finds a cycle among the services left unplaced and names it.
func cycleError(services map[string]*Service, deps map[string][]string, waiting map[string]int) error {
	state := map[string]int{}
	var path []string
	var find func(k string) []string
	find = func(k string) []string {
		if state[k] == 1 {
			i := slices.Index(path, k)
			return append(append([]string{}, path[i:]...), k)
		}
		if state[k] == 2 {
			return nil
		}
		state[k] = 1
		path = append(path, k)
		for _, d := range deps[k] {
			if c := find(d); c != nil {
				return c
			}
		}
		path = path[:len(path)-1]
		state[k] = 2
		return nil
	}
	for _, k := range sortedKeys(services) {
		if waiting[k] == 0 {
			continue
		}
		if c := find(k); c != nil {
			return fmt.Errorf("depends_on: services %s depend on each other in a cycle (%s); remove one of these dependencies",
				strings.Join(sortedUnique(c[:len(c)-1]), ", "), strings.Join(c, " -> "))
		}
	}
	return fmt.Errorf("depends_on: services depend on each other in a cycle")
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
