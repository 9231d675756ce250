package stack

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	api "github.com/shoal-project/shoal/proto"
)

// Convert builds the plan of a stack from a loaded project. It is pure and
// deterministic: the same project always gives the same specs. Errors name
// the files of the project, the service and the key.
func Convert(p *types.Project, stack string) (*Plan, error) {
	return convert(p, stack, nil)
}

// Convert builds the plan of the loaded stack; errors name the file that
// sets the faulty key.
func (l *Loaded) Convert() (*Plan, error) {
	return convert(l.Project, l.Stack, l)
}

type converter struct {
	p       *types.Project
	stack   string
	prefix  string // compose-go's default name prefix
	l       *Loaded
	plan    *Plan
	ignored map[string]bool
}

func convert(p *types.Project, stack string, l *Loaded) (*Plan, error) {
	if p == nil {
		return nil, fmt.Errorf("no project to convert")
	}
	if err := ValidateName(stack); err != nil {
		return nil, err
	}
	c := &converter{p: p, stack: stack, prefix: projectName(stack) + "_", l: l, plan: &Plan{Stack: stack}, ignored: map[string]bool{}}
	c.plan.files = c.files()
	if err := c.networks(); err != nil {
		return nil, err
	}
	if err := c.secrets(); err != nil {
		return nil, err
	}
	if err := c.configs(); err != nil {
		return nil, err
	}
	services := map[string]*Service{}
	deps := map[string][]string{}
	for _, key := range sortedKeys(p.Services) {
		svc, err := c.service(key, p.Services[key])
		if err != nil {
			return nil, err
		}
		services[key] = svc
		for _, d := range sortedKeys(p.Services[key].DependsOn) {
			deps[key] = append(deps[key], d)
			svc.DependsOn = append(svc.DependsOn, c.scoped(d, ""))
		}
	}
	ordered, err := order(services, deps)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.files(), err)
	}
	c.plan.Services = ordered
	if err := c.plan.checkSizes(); err != nil {
		return nil, err
	}
	if len(c.ignored) > 0 {
		c.plan.Warnings = append(c.plan.Warnings, fmt.Sprintf("Ignoring unsupported options: %s\n\n", strings.Join(sortedKeys(c.ignored), ", ")))
	}
	return c.plan, nil
}

// scoped is an object's name: <stack>_<key> unless the file names it.
func (c *converter) scoped(key, name string) string {
	if name == "" || name == c.prefix+key {
		return c.stack + "_" + key
	}
	return name
}

func (c *converter) files() string {
	if c.l != nil {
		return strings.Join(c.l.Files, ", ")
	}
	files := make([]string, 0, len(c.p.ComposeFiles))
	for _, f := range c.p.ComposeFiles {
		if f != "" {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return "stack file"
	}
	return strings.Join(files, ", ")
}

// errorf words a service error: "<file>: service "web": <key>: <msg>".
func (c *converter) errorf(service, key, format string, args ...any) error {
	file := c.files()
	if c.l != nil {
		top, _, _ := strings.Cut(key, ".")
		file = c.l.Origin(service, top)
	}
	return fmt.Errorf("%s: service %q: %s: %s", file, service, key, fmt.Sprintf(format, args...))
}

// topErrorf words an error about a top-level object.
func (c *converter) topErrorf(key, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %s", c.files(), key, fmt.Sprintf(format, args...))
}

func (c *converter) labels(in map[string]string) map[string]string {
	out := make(map[string]string, len(in)+1)
	for k, v := range in {
		out[k] = v
	}
	out[LabelNamespace] = c.stack
	return out
}

// optMTU is Docker's driver option for a network's MTU.
const optMTU = "com.docker.network.driver.mtu"

// networks converts the networks services use (Docker creates no other).
func (c *converter) networks() error {
	used := map[string]bool{}
	for _, svc := range c.p.Services {
		for n := range svc.Networks {
			used[n] = true
		}
	}
	for _, key := range sortedKeys(used) {
		cfg, ok := c.p.Networks[key]
		if !ok {
			return c.topErrorf("networks."+key, "undefined network: declare it in the top-level networks")
		}
		if cfg.External {
			name := cfg.Name
			if name == "" {
				name = key
			}
			c.plan.Networks = append(c.plan.Networks, &Network{Key: key, Name: name, External: true})
			continue
		}
		spec, err := c.networkSpec(key, cfg)
		if err != nil {
			return err
		}
		c.plan.Networks = append(c.plan.Networks, &Network{Key: key, Name: spec.Annotations.Name, Spec: spec})
	}
	sort.SliceStable(c.plan.Networks, func(i, j int) bool { return c.plan.Networks[i].Name < c.plan.Networks[j].Name })
	return nil
}

func (c *converter) networkSpec(key string, cfg types.NetworkConfig) (*api.NetworkSpec, error) {
	where := "networks." + key
	if cfg.Driver != "" && cfg.Driver != "overlay" {
		return nil, c.topErrorf(where+".driver", "driver %q is not supported: shoal networks use the overlay driver (remove driver or set it to overlay)", cfg.Driver)
	}
	spec := &api.NetworkSpec{
		Annotations: &api.Annotations{Name: c.scoped(key, cfg.Name), Labels: c.labels(cfg.Labels)},
		Driver:      &api.Driver{Name: "overlay"},
		Internal:    cfg.Internal,
		Attachable:  cfg.Attachable,
		Ipv6:        cfg.EnableIPv6 != nil && *cfg.EnableIPv6,
	}
	if len(cfg.DriverOpts) > 0 {
		opts := map[string]string{}
		for k, v := range cfg.DriverOpts {
			if k == "encrypted" {
				spec.Encrypted = true
				continue
			}
			if k == optMTU {
				if n, err := strconv.Atoi(strings.TrimSpace(v)); err != nil || n < 68 || n > 65535 {
					return nil, c.topErrorf(where+".driver_opts."+k, "invalid MTU %q: use a number of bytes from 68 to 65535, e.g. 1400", v)
				}
			}
			opts[k] = v
		}
		if len(opts) > 0 {
			spec.Driver.Options = opts
		}
	}
	if d := cfg.Ipam.Driver; d != "" && d != "default" {
		c.ignored[where+".ipam.driver"] = true
	}
	for i, pool := range cfg.Ipam.Config {
		if pool == nil {
			continue
		}
		at := fmt.Sprintf("%s.ipam.config[%d]", where, i)
		if len(pool.AuxiliaryAddresses) > 0 {
			c.ignored[where+".ipam.config.aux_addresses"] = true
		}
		ipam, err := ipamConfig(pool)
		if err != nil {
			return nil, c.topErrorf(at, "%v", err)
		}
		spec.Ipam = append(spec.Ipam, ipam)
	}
	return spec, nil
}

// ipamConfig checks a pool: a subnet, and a gateway and range inside it.
func ipamConfig(pool *types.IPAMPool) (*api.IPAMConfig, error) {
	out := &api.IPAMConfig{Subnet: pool.Subnet, Range: pool.IPRange, Gateway: pool.Gateway}
	if pool.Subnet == "" {
		if pool.Gateway != "" || pool.IPRange != "" {
			return nil, fmt.Errorf("gateway and ip_range need a subnet")
		}
		return out, nil
	}
	prefix, err := netip.ParsePrefix(pool.Subnet)
	if err != nil {
		return nil, fmt.Errorf("invalid subnet %q: use CIDR notation, e.g. 10.20.0.0/24", pool.Subnet)
	}
	if pool.Gateway != "" {
		gw, err := netip.ParseAddr(pool.Gateway)
		if err != nil || !prefix.Contains(gw) {
			return nil, fmt.Errorf("gateway %q is not an address in subnet %s", pool.Gateway, pool.Subnet)
		}
	}
	if pool.IPRange != "" {
		r, err := netip.ParsePrefix(pool.IPRange)
		if err != nil || !prefix.Contains(r.Addr()) || r.Bits() < prefix.Bits() {
			return nil, fmt.Errorf("ip_range %q is not inside subnet %s", pool.IPRange, pool.Subnet)
		}
	}
	return out, nil
}

// secrets converts every declared secret, as Docker does.
func (c *converter) secrets() error {
	for _, key := range sortedKeys(c.p.Secrets) {
		cfg := c.p.Secrets[key]
		obj := types.FileObjectConfig(cfg)
		if obj.External {
			c.plan.Secrets = append(c.plan.Secrets, &Secret{Key: key, Name: externalName(key, obj.Name), External: true})
			continue
		}
		data, file, err := c.source("secrets."+key, obj, false)
		if err != nil {
			return err
		}
		name := c.scoped(key, obj.Name)
		c.plan.Secrets = append(c.plan.Secrets, &Secret{Key: key, Name: name, File: file,
			Spec: &api.SecretSpec{Annotations: &api.Annotations{Name: name, Labels: c.labels(obj.Labels)}, Data: data}})
	}
	sort.SliceStable(c.plan.Secrets, func(i, j int) bool { return c.plan.Secrets[i].Name < c.plan.Secrets[j].Name })
	return nil
}

// configs converts every declared config.
func (c *converter) configs() error {
	for _, key := range sortedKeys(c.p.Configs) {
		obj := types.FileObjectConfig(c.p.Configs[key])
		if obj.External {
			c.plan.Configs = append(c.plan.Configs, &Config{Key: key, Name: externalName(key, obj.Name), External: true})
			continue
		}
		data, file, err := c.source("configs."+key, obj, true)
		if err != nil {
			return err
		}
		name := c.scoped(key, obj.Name)
		c.plan.Configs = append(c.plan.Configs, &Config{Key: key, Name: name, File: file,
			Spec: &api.ConfigSpec{Annotations: &api.Annotations{Name: name, Labels: c.labels(obj.Labels)}, Data: data}})
	}
	sort.SliceStable(c.plan.Configs, func(i, j int) bool { return c.plan.Configs[i].Name < c.plan.Configs[j].Name })
	return nil
}

func externalName(key, name string) string {
	if name == "" {
		return key
	}
	return name
}

// source finds where a secret's or config's data comes from: a file (read
// later), an environment variable, or inline content (configs only).
func (c *converter) source(where string, obj types.FileObjectConfig, inline bool) ([]byte, string, error) {
	if obj.Driver != "" {
		c.ignored[where+".driver"] = true
	}
	if obj.TemplateDriver != "" {
		c.ignored[where+".template_driver"] = true
	}
	switch {
	case obj.File != "":
		return nil, obj.File, nil
	case obj.Environment != "":
		v, ok := c.p.Environment[obj.Environment]
		if !ok {
			return nil, "", c.topErrorf(where+".environment", "variable %s is not set in the environment", obj.Environment)
		}
		return []byte(v), "", nil
	case obj.Content != "" && inline:
		return []byte(obj.Content), "", nil
	}
	want := "file: or environment:"
	if inline {
		want = "file:, environment: or content:"
	}
	return nil, "", c.topErrorf(where, "no data: give %s, or external: true for one created with shoal %s create", want, strings.TrimSuffix(strings.Split(where, ".")[0], "s"))
}
