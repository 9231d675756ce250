// Package opts holds the flag value types of the CLI: repeatable lists with
// validators, sizes, CPUs, durations, enums, filters, and the CSV-style
// --publish, --mount, --secret/--config and --network values. Every parse
// error is returned from Set, so it reaches the user as
// `invalid argument "…" for "--flag" flag: …` before anything is sent to
// the daemon.
package opts

import (
	"strings"
)

// Validator checks (and may normalize) one value of a list flag.
type Validator func(string) (string, error)

// ListOpts is a repeatable string flag.
type ListOpts struct {
	values    []string
	validator Validator
}

// NewListOpts returns a list that checks each value with v (nil: any value).
func NewListOpts(v Validator) *ListOpts { return &ListOpts{validator: v} }

// Set adds one value.
func (o *ListOpts) Set(value string) error {
	if o.validator != nil {
		v, err := o.validator(value)
		if err != nil {
			return err
		}
		value = v
	}
	o.values = append(o.values, value)
	return nil
}

// String shows the values for help output.
func (o *ListOpts) String() string {
	if len(o.values) == 0 {
		return ""
	}
	return "[" + strings.Join(o.values, " ") + "]"
}

// Type names the flag's value in help output.
func (o *ListOpts) Type() string { return "list" }

// GetAll returns the values in the order given.
func (o *ListOpts) GetAll() []string { return append([]string(nil), o.values...) }

// Len is the number of values.
func (o *ListOpts) Len() int { return len(o.values) }

// KVMap turns "k=v" (or bare "k", meaning an empty value) strings into a map.
func KVMap(values []string) map[string]string {
	if len(values) == 0 {
		return nil
	}
	m := make(map[string]string, len(values))
	for _, kv := range values {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// KeyOf returns the key of "k=v" or "k".
func KeyOf(kv string) string {
	k, _, _ := strings.Cut(kv, "=")
	return k
}
