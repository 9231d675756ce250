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
	p.Networks = types.Networks{}
	for k, n := range l.Project.Networks {
		if n.Name == prefix+k {
			n.Name = ""
		}
		p.Networks[k] = n
	}
	p.Volumes = types.Volumes{}
	for k, v := range l.Project.Volumes {
		if v.Name == prefix+k {
			v.Name = ""
		}
		p.Volumes[k] = v
	}
	p.Secrets = types.Secrets{}
	for k, s := range l.Project.Secrets {
		if s.Name == prefix+k {
			s.Name = ""
		}
		p.Secrets[k] = s
	}
	p.Configs = types.Configs{}
	for k, c := range l.Project.Configs {
		if c.Name == prefix+k {
			c.Name = ""
		}
		p.Configs[k] = c
	}
	return p.MarshalYAML()
}
