package stack

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	units "github.com/docker/go-units"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

// resources converts deploy.resources; nil when nothing is set.
func (c *converter) resources(key string, r types.Resources) (*api.ResourceRequirements, error) {
	out := &api.ResourceRequirements{}
	var err error
	if out.Limits, err = c.resource(key, "deploy.resources.limits", r.Limits, false); err != nil {
		return nil, err
	}
	if out.Reservations, err = c.resource(key, "deploy.resources.reservations", r.Reservations, true); err != nil {
		return nil, err
	}
	if out.Limits == nil && out.Reservations == nil {
		return nil, nil
	}
	if l, res := out.GetLimits().GetMemoryBytes(), out.GetReservations().GetMemoryBytes(); l > 0 && res > l {
		return nil, c.errorf(key, "deploy.resources.reservations.memory", "the reservation (%s) is larger than the limit (%s)",
			units.BytesSize(float64(res)), units.BytesSize(float64(l)))
	}
	return out, nil
}

func (c *converter) resource(key, field string, r *types.Resource, reservation bool) (*api.Resources, error) {
	if r == nil {
		return nil, nil
	}
	out := &api.Resources{MemoryBytes: int64(r.MemoryBytes), Pids: r.Pids}
	if r.NanoCPUs != 0 {
		// compose-go keeps cpus as a float32; its shortest decimal form is
		// what the file said ("0.1", not 0.10000000149).
		nano, err := opts.ParseCPUs(strconv.FormatFloat(float64(r.NanoCPUs), 'f', -1, 32))
		if err != nil {
			return nil, c.errorf(key, field+".cpus", "%v", err)
		}
		out.NanoCpus = nano
	}
	if out.MemoryBytes < 0 {
		return nil, c.errorf(key, field+".memory", "must not be negative")
	}
	if out.Pids < 0 {
		return nil, c.errorf(key, field+".pids", "must not be negative")
	}
	if reservation && out.Pids != 0 {
		return nil, c.errorf(key, field+".pids", "pids can only be limited: use deploy.resources.limits.pids")
	}
	for _, g := range r.GenericResources {
		d := g.DiscreteResourceSpec
		if d == nil {
			continue
		}
		if !reservation {
			return nil, c.errorf(key, field+".generic_resources", "generic resources can only be reserved: use deploy.resources.reservations.generic_resources")
		}
		if d.Kind == "" || d.Value < 0 {
			return nil, c.errorf(key, field+".generic_resources", "each resource needs a kind and a value of 0 or more")
		}
		out.Generic = append(out.Generic, &api.GenericResource{Kind: d.Kind, Value: d.Value})
	}
	sort.SliceStable(out.Generic, func(i, j int) bool { return out.Generic[i].Kind < out.Generic[j].Kind })
	if out.NanoCpus == 0 && out.MemoryBytes == 0 && out.Pids == 0 && len(out.Generic) == 0 {
		return nil, nil
	}
	return out, nil
}

// endpoint converts ports and deploy.endpoint_mode; nil when neither is set.
func (c *converter) endpoint(key string, svc types.ServiceConfig, mode string) (*api.EndpointSpec, error) {
	out := &api.EndpointSpec{}
	switch mode {
	case "", "vip":
	case "dnsrr":
		out.Mode = api.EndpointSpec_DNSRR
	default:
		return nil, c.errorf(key, "deploy.endpoint_mode", "unknown mode %q: use vip or dnsrr", mode)
	}
	seen := map[string]bool{}
	for i, p := range svc.Ports {
		pc, err := portConfig(p)
		if err != nil {
			return nil, c.errorf(key, fmt.Sprintf("ports[%d]", i), "%v", err)
		}
		if pc.PublishedPort != 0 {
			k := fmt.Sprintf("%d/%s", pc.PublishedPort, strings.ToLower(pc.Protocol.String()))
			if seen[k] {
				return nil, c.errorf(key, "ports", "published port %s is used twice", k)
			}
			seen[k] = true
		}
		if out.Mode == api.EndpointSpec_DNSRR && pc.PublishMode == api.PortConfig_INGRESS {
			return nil, c.errorf(key, fmt.Sprintf("ports[%d]", i), "a port published in ingress mode can't be used with endpoint_mode dnsrr: publish it with mode: host")
		}
		out.Ports = append(out.Ports, pc)
	}
	if len(out.Ports) == 0 && mode == "" {
		return nil, nil
	}
	sort.SliceStable(out.Ports, func(i, j int) bool {
		a, b := out.Ports[i], out.Ports[j]
		if a.PublishedPort != b.PublishedPort {
			return a.PublishedPort < b.PublishedPort
		}
		if a.TargetPort != b.TargetPort {
			return a.TargetPort < b.TargetPort
		}
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		return a.PublishMode < b.PublishMode
	})
	return out, nil
}

func portConfig(p types.ServicePortConfig) (*api.PortConfig, error) {
	if p.HostIP != "" {
		return nil, fmt.Errorf("host IP %s: a published port listens on every address of the node; remove the host IP", p.HostIP)
	}
	if p.Target == 0 || p.Target > 65535 {
		return nil, fmt.Errorf("target port %d: must be 1-65535", p.Target)
	}
	pc := &api.PortConfig{Name: p.Name, TargetPort: p.Target}
	published, err := parsePublished(p.Published)
	if err != nil {
		return nil, err
	}
	pc.PublishedPort = published
	switch strings.ToLower(p.Protocol) {
	case "", "tcp":
	case "udp":
		pc.Protocol = api.PortConfig_UDP
	case "sctp":
		return nil, fmt.Errorf("protocol %q: shoal's routing mesh does not publish sctp ports: use tcp or udp", p.Protocol)
	default:
		return nil, fmt.Errorf("unknown protocol %q: use tcp or udp", p.Protocol)
	}
	switch p.Mode {
	case "", "ingress":
	case "host":
		pc.PublishMode = api.PortConfig_HOST
	default:
		return nil, fmt.Errorf("unknown mode %q: use ingress or host", p.Mode)
	}
	// x-masquerade (long syntax, a shoal extension): Docker's ingress
	// behaviour, the task sees the ingress node's address instead of
	// the client's (see `shoal service create --publish ...,masquerade=true`).
	if v, ok := p.Extensions["x-masquerade"]; ok {
		switch b := v.(type) {
		case bool:
			pc.Masquerade = b
		case string:
			switch strings.ToLower(b) {
			case "true", "yes", "1":
				pc.Masquerade = true
			case "false", "no", "0":
			default:
				return nil, fmt.Errorf("x-masquerade %q: use true or false", b)
			}
		default:
			return nil, fmt.Errorf("x-masquerade %v: use true or false", v)
		}
		if pc.Masquerade && pc.PublishMode != api.PortConfig_INGRESS {
			return nil, fmt.Errorf("x-masquerade applies to ingress-mode ports only: remove it or use mode: ingress")
		}
	}
	return pc, nil
}

// parsePublished reads a published port, given as a string by compose-go:
// "" (the allocator picks one), "8080", or a one-port range "8080-8080".
func parsePublished(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		if lo != hi {
			return 0, fmt.Errorf("published port range %s for one target port is not supported: publish each port, e.g. \"8080-8081:80-81\"", s)
		}
		s = lo
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > 65535 {
		return 0, fmt.Errorf("published port %q: must be 0-65535", s)
	}
	return uint32(n), nil
}

// mounts converts volumes and tmpfs, sorted by target.
func (c *converter) mounts(key string, svc types.ServiceConfig) ([]*api.Mount, error) {
	var out []*api.Mount
	for i, v := range svc.Volumes {
		at := fmt.Sprintf("volumes[%d]", i)
		m := &api.Mount{Target: v.Target, ReadOnly: v.ReadOnly}
		switch v.Type {
		case types.VolumeTypeVolume:
			m.Type = api.Mount_VOLUME
			if v.Source != "" {
				name, err := c.volumeName(key, at, v.Source)
				if err != nil {
					return nil, err
				}
				m.Source = name
			}
			if vv := v.Volume; vv != nil && (vv.NoCopy || vv.Subpath != "" || len(vv.Labels) > 0) {
				c.ignored["volumes.volume"] = true
			}
		case types.VolumeTypeBind:
			m.Type = api.Mount_BIND
			m.Source = v.Source
			if b := v.Bind; b != nil && (b.Propagation != "" || b.SELinux != "" || b.Recursive != "") {
				c.ignored["volumes.bind"] = true
			}
		case types.VolumeTypeTmpfs:
			m.Type = api.Mount_TMPFS
			if t := v.Tmpfs; t != nil {
				if t.Size < 0 {
					return nil, c.errorf(key, at+".tmpfs.size", "must not be negative")
				}
				m.TmpfsSizeBytes, m.TmpfsMode = int64(t.Size), t.Mode
			}
		default:
			return nil, c.errorf(key, at+".type", "volume type %q is not supported: use volume, bind or tmpfs", v.Type)
		}
		if m.Target == "" || !strings.HasPrefix(m.Target, "/") {
			return nil, c.errorf(key, at+".target", "the target %q must be an absolute path in the container", m.Target)
		}
		out = append(out, m)
	}
	for i, t := range svc.Tmpfs {
		m, err := tmpfsMount(t)
		if err != nil {
			return nil, c.errorf(key, fmt.Sprintf("tmpfs[%d]", i), "%v", err)
		}
		out = append(out, m)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Target < out[j].Target })
	for i := 1; i < len(out); i++ {
		if out[i].Target == out[i-1].Target {
			return nil, c.errorf(key, "volumes", "%s is mounted twice", out[i].Target)
		}
	}
	return out, nil
}

// volumeName is the name of a named volume: <stack>_<key>, its name:, or
// its plain name when external.
func (c *converter) volumeName(service, at, key string) (string, error) {
	vol, ok := c.p.Volumes[key]
	if !ok {
		return "", c.errorf(service, at+".source", "undefined volume %q: declare it in the top-level volumes", key)
	}
	if vol.Driver != "" && vol.Driver != "local" {
		c.ignored["volumes."+key+".driver"] = true
	}
	if len(vol.DriverOpts) > 0 {
		c.ignored["volumes."+key+".driver_opts"] = true
	}
	if vol.External {
		return externalName(key, vol.Name), nil
	}
	return c.scoped(key, vol.Name), nil
}

// tmpfsMount reads a tmpfs entry: "/path" or "/path:size=64m,mode=1777".
func tmpfsMount(s string) (*api.Mount, error) {
	target, options, _ := strings.Cut(s, ":")
	if !strings.HasPrefix(target, "/") {
		return nil, fmt.Errorf("the target %q must be an absolute path in the container", target)
	}
	m := &api.Mount{Type: api.Mount_TMPFS, Target: target}
	if options == "" {
		return m, nil
	}
	for _, o := range strings.Split(options, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "size":
			n, err := units.RAMInBytes(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("invalid size %q", v)
			}
			m.TmpfsSizeBytes = n
		case "mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return nil, fmt.Errorf("invalid mode %q: give an octal mode such as 1777", v)
			}
			m.TmpfsMode = uint32(n)
		default:
			return nil, fmt.Errorf("unknown option %q: use size= and mode=", o)
		}
	}
	return m, nil
}

// fileRef is what secret and config references have in common.
type fileRef struct {
	name   string // the object's name
	target *api.FileTarget
}

func (c *converter) fileRefs(key, field string, refs []types.FileReferenceConfig, names map[string]string) ([]fileRef, error) {
	var out []fileRef
	targets := map[string]bool{}
	for i, r := range refs {
		at := fmt.Sprintf("%s[%d]", field, i)
		name, ok := names[r.Source]
		if !ok {
			return nil, c.errorf(key, at, "undefined %s %q: declare it in the top-level %ss", strings.TrimSuffix(field, "s"), r.Source, strings.TrimSuffix(field, "s"))
		}
		t := &api.FileTarget{Name: r.Target, Uid: r.UID, Gid: r.GID, Mode: 0o444}
		if t.Name == "" {
			t.Name = r.Source
		}
		if t.Uid == "" {
			t.Uid = "0"
		}
		if t.Gid == "" {
			t.Gid = "0"
		}
		if r.Mode != nil {
			if *r.Mode < 0 || *r.Mode > 0o7777 {
				return nil, c.errorf(key, at+".mode", "invalid file mode %o", int64(*r.Mode))
			}
			t.Mode = uint32(*r.Mode)
		}
		if targets[t.Name] {
			return nil, c.errorf(key, at+".target", "duplicate %s target for %s not allowed", strings.TrimSuffix(field, "s"), t.Name)
		}
		targets[t.Name] = true
		out = append(out, fileRef{name: name, target: t})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].name != out[j].name {
			return out[i].name < out[j].name
		}
		return out[i].target.Name < out[j].target.Name
	})
	return out, nil
}

func (c *converter) secretRefs(key string, in []types.ServiceSecretConfig) ([]*api.SecretReference, error) {
	names := map[string]string{}
	for _, s := range c.plan.Secrets {
		names[s.Key] = s.Name
	}
	refs := make([]types.FileReferenceConfig, len(in))
	for i, r := range in {
		refs[i] = types.FileReferenceConfig(r)
		// compose-go writes the default target as /run/secrets/<source>;
		// the daemon takes a name under /run/secrets, as Docker's does.
		if rel, ok := strings.CutPrefix(r.Target, "/run/secrets/"); ok && rel != "" {
			refs[i].Target = rel
		}
	}
	conv, err := c.fileRefs(key, "secrets", refs, names)
	if err != nil {
		return nil, err
	}
	var out []*api.SecretReference
	for _, r := range conv {
		out = append(out, &api.SecretReference{SecretName: r.name, File: r.target})
	}
	return out, nil
}

func (c *converter) configRefs(key string, in []types.ServiceConfigObjConfig) ([]*api.ConfigReference, error) {
	names := map[string]string{}
	for _, s := range c.plan.Configs {
		names[s.Key] = s.Name
	}
	refs := make([]types.FileReferenceConfig, len(in))
	for i, r := range in {
		refs[i] = types.FileReferenceConfig(r)
		// compose-go writes the default target as /<source>; Docker sends
		// the bare name, which the daemon mounts at /<source>.
		if r.Target == "/"+r.Source {
			refs[i].Target = r.Source
		}
	}
	conv, err := c.fileRefs(key, "configs", refs, names)
	if err != nil {
		return nil, err
	}
	var out []*api.ConfigReference
	for _, r := range conv {
		out = append(out, &api.ConfigReference{ConfigName: r.name, File: r.target})
	}
	return out, nil
}
