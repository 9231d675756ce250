package opts

import (
	"errors"
	"sort"
	"strings"
)

// Filter collects -f key=value flags. Values of one key are ORed, different
// keys ANDed, as in Docker.
type Filter struct {
	values map[string][]string
}

// NewFilter returns an empty filter set.
func NewFilter() *Filter { return &Filter{values: map[string][]string{}} }

// Set adds one key=value pair.
func (f *Filter) Set(value string) error {
	k, v, ok := strings.Cut(value, "=")
	k = strings.ToLower(strings.TrimSpace(k))
	if !ok || k == "" {
		return errors.New("bad format of filter (expected name=value)")
	}
	f.values[k] = append(f.values[k], strings.TrimSpace(v))
	return nil
}

// String shows the filters.
func (f *Filter) String() string {
	var parts []string
	for _, k := range f.Keys() {
		for _, v := range f.values[k] {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

// Type names the value in help output.
func (f *Filter) Type() string { return "filter" }

// Get returns the values given for key.
func (f *Filter) Get(key string) []string { return f.values[key] }

// Keys returns the keys given, sorted.
func (f *Filter) Keys() []string {
	keys := make([]string, 0, len(f.values))
	for k := range f.values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Validate refuses keys outside allowed.
func (f *Filter) Validate(allowed ...string) error {
	for _, k := range f.Keys() {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
				break
			}
		}
		if !ok {
			return errors.New("invalid filter '" + k + "'")
		}
	}
	return nil
}

// MatchLabels applies label filters as the daemon does: "key" wants the
// label, "key=value" the label with that value; all must hold.
func MatchLabels(labels map[string]string, filters []string) bool {
	for _, f := range filters {
		k, v, withValue := strings.Cut(f, "=")
		got, ok := labels[k]
		if !ok || withValue && got != v {
			return false
		}
	}
	return true
}

// MatchPrefix tells whether s starts with one of prefixes (true when there
// are none), as ID and name prefix filters do.
func MatchPrefix(prefixes []string, s string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
