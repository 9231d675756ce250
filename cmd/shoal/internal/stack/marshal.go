package stack

// MarshalYAML prints the merged, interpolated model, as `stack config`
// shows it: what shoal deploys, without the keys it ignores. Secret data
// is never part of it.
func (l *Loaded) MarshalYAML() ([]byte, error) {
	p := *l.Project
	p.Name = ""
	return p.MarshalYAML()
}
