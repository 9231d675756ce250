package stack

import "github.com/compose-spec/compose-go/v2/types"

// MarshalYAML prints the merged, interpolated model, as `stack config`
// shows it: what shoal deploys, without the keys it ignores. Secret data
// is never part of it. Default object names (<stack>_<key>) are left out:
// they depend on the stack name given at deploy time.
func (l *Loaded) MarshalYAML() ([]byte, error) {
	p := *l.Project
	p.Name = ""
	prefix := projectName(l.Stack) + "_"
	p.Networks = withoutDefaultNames(l.Project.Networks, prefix, func(n *types.NetworkConfig) *string { return &n.Name })
	p.Volumes = withoutDefaultNames(l.Project.Volumes, prefix, func(v *types.VolumeConfig) *string { return &v.Name })
	p.Secrets = withoutDefaultNames(l.Project.Secrets, prefix, func(s *types.SecretConfig) *string { return &s.Name })
	p.Configs = withoutDefaultNames(l.Project.Configs, prefix, func(c *types.ConfigObjConfig) *string { return &c.Name })
	return p.MarshalYAML()
}

// withoutDefaultNames copies objects, clearing each name (reached through
// name) that is the default <prefix><key>.
func withoutDefaultNames[V any](objects map[string]V, prefix string, name func(*V) *string) map[string]V {
	out := make(map[string]V, len(objects))
	for k, v := range objects {
		if n := name(&v); *n == prefix+k {
			*n = ""
		}
		out[k] = v
	}
	return out
}
