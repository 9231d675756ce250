package filters

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// MaxLen is the longest filters parameter Parse reads: a filter is a few
// names and labels, never megabytes.
const MaxLen = 64 << 10

// Args is a parsed filters parameter: each key's values, sorted and without
// duplicates. A nil or empty Args filters nothing.
type Args map[string][]string

// InvalidFilterError names a key the endpoint does not know.
type InvalidFilterError struct{ Key string }

func (e *InvalidFilterError) Error() string { return fmt.Sprintf("invalid filter '%s'", e.Key) }

// SyntaxError is a filters parameter that is not one of the two JSON forms.
type SyntaxError struct {
	Value  string
	Reason string
}

func (e *SyntaxError) Error() string {
	v := e.Value
	if len(v) > 80 {
		v = v[:80] + "..."
	}
	return fmt.Sprintf("invalid filters parameter %q: %s (expected a JSON object such as {\"name\":{\"web\":true}} or {\"name\":[\"web\"]})", v, e.Reason)
}

// Parse reads a filters parameter. allowed is the set of keys the endpoint
// accepts; every other key is an *InvalidFilterError. An empty raw value is
// an empty Args.
func Parse(raw string, allowed ...string) (Args, error) {
	if strings.TrimSpace(raw) == "" {
		return Args{}, nil
	}
	if len(raw) > MaxLen {
		return nil, &SyntaxError{Value: raw, Reason: fmt.Sprintf("longer than %d bytes", MaxLen)}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &top); err != nil {
		return nil, &SyntaxError{Value: raw, Reason: "not a JSON object"}
	}
	out := Args{}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the first bad key deterministically
	for _, k := range keys {
		if len(allowed) > 0 && !slices.Contains(allowed, k) {
			return nil, &InvalidFilterError{Key: k}
		}
		vals, err := values(top[k])
		if err != nil {
			return nil, &SyntaxError{Value: raw, Reason: fmt.Sprintf("filter %q: %s", k, err)}
		}
		if len(vals) == 0 {
			continue
		}
		sort.Strings(vals)
		out[k] = slices.Compact(vals)
	}
	return out, nil
}

// values reads one key's values: {"v":true,...} or ["v",...]. A value
// mapped to false is not a value (dockerd ignores it too).
func values(raw json.RawMessage) ([]string, error) {
	var asMap map[string]bool
	if err := json.Unmarshal(raw, &asMap); err == nil {
		var out []string
		for v, on := range asMap {
			if on {
				out = append(out, v)
			}
		}
		return out, nil
	}
	var asList []string
	if err := json.Unmarshal(raw, &asList); err == nil {
		return asList, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	return nil, fmt.Errorf("values must be an object of booleans or a list of strings")
}

// Len is the number of keys with values.
func (a Args) Len() int { return len(a) }

// Contains reports whether key has values.
func (a Args) Contains(key string) bool { return len(a[key]) > 0 }

// Get returns key's values (sorted), nil when it has none.
func (a Args) Get(key string) []string { return a[key] }

// ExactMatch reports whether source is one of key's values; true when the
// key is not set.
func (a Args) ExactMatch(key, source string) bool {
	vals, ok := a[key]
	if !ok || len(vals) == 0 {
		return true
	}
	return slices.Contains(vals, source)
}

// FuzzyMatch reports whether source starts with one of key's values (an ID
// prefix); true when the key is not set.
func (a Args) FuzzyMatch(key, source string) bool {
	vals, ok := a[key]
	if !ok || len(vals) == 0 {
		return true
	}
	for _, v := range vals {
		if strings.HasPrefix(source, v) {
			return true
		}
	}
	return false
}

// Match reports whether source matches one of key's values as a regular
// expression, as dockerd's name filters do (a value that does not compile
// matches as a plain substring). True when the key is not set.
func (a Args) Match(key, source string) bool {
	vals, ok := a[key]
	if !ok || len(vals) == 0 {
		return true
	}
	for _, v := range vals {
		re, err := regexp.Compile(v)
		if err != nil {
			if strings.Contains(source, v) {
				return true
			}
			continue
		}
		if re.MatchString(source) {
			return true
		}
	}
	return false
}

// MatchKVList reports whether the labels match every "key" or "key=value"
// value of the filter key (usually "label"); true when the key is not set.
func (a Args) MatchKVList(key string, labels map[string]string) bool {
	vals, ok := a[key]
	if !ok || len(vals) == 0 {
		return true
	}
	for _, v := range vals {
		k, want, hasValue := strings.Cut(v, "=")
		got, present := labels[k]
		if !present || hasValue && got != want {
			return false
		}
	}
	return true
}

// Bool reads a boolean filter such as dangling=true: ok is false when the
// key is not set; an error when a value is not a boolean or both are given.
func (a Args) Bool(key string) (v, ok bool, err error) {
	vals := a[key]
	if len(vals) == 0 {
		return false, false, nil
	}
	seen := map[bool]bool{}
	for _, s := range vals {
		switch strings.ToLower(s) {
		case "true", "1":
			seen[true] = true
		case "false", "0":
			seen[false] = true
		default:
			return false, false, fmt.Errorf("invalid filter '%s=%s': expected true or false", key, s)
		}
	}
	if len(seen) > 1 {
		return false, false, fmt.Errorf("invalid filter '%s': both true and false given", key)
	}
	return seen[true], true, nil
}
