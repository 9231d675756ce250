package opts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// FileRef is a --secret or --config value before its name is resolved to an
// ID: source=NAME,target=PATH,uid=…,gid=…,mode=0444 or just NAME.
type FileRef struct {
	Source string
	Target string
	UID    string
	GID    string
	Mode   uint32
}

// FileRefOpt collects --secret or --config values.
type FileRefOpt struct {
	// Kind names the value in help output: "secret" or "config".
	Kind string
	refs []FileRef
}

// Set parses one value.
func (o *FileRefOpt) Set(value string) error {
	ref, err := ParseFileRef(value)
	if err != nil {
		return err
	}
	o.refs = append(o.refs, ref)
	return nil
}

// String shows the sources.
func (o *FileRefOpt) String() string {
	var s []string
	for _, r := range o.refs {
		s = append(s, r.Source)
	}
	return strings.Join(s, ",")
}

// Type names the value in help output.
func (o *FileRefOpt) Type() string {
	if o.Kind == "" {
		return "file"
	}
	return o.Kind
}

// Value returns the parsed references.
func (o *FileRefOpt) Value() []FileRef { return o.refs }

// ParseFileRef reads one --secret/--config value.
func ParseFileRef(value string) (FileRef, error) {
	ref := FileRef{UID: "0", GID: "0", Mode: 0o444}
	if !strings.Contains(value, "=") {
		if strings.TrimSpace(value) == "" {
			return ref, errors.New("source is required")
		}
		ref.Source, ref.Target = value, value
		return ref, nil
	}
	fields, err := parseCSV(value)
	if err != nil {
		return ref, err
	}
	for _, f := range fields {
		if !f.hasValue {
			return ref, fmt.Errorf("invalid field %q: must be a key=value pair", f.key)
		}
		switch f.key {
		case "source", "src":
			ref.Source = f.value
		case "target":
			ref.Target = f.value
		case "uid":
			ref.UID = f.value
		case "gid":
			ref.GID = f.value
		case "mode":
			m, err := strconv.ParseUint(f.value, 0, 32)
			if err != nil {
				return ref, fmt.Errorf("invalid mode %q: expected an octal file mode such as 0400", f.value)
			}
			ref.Mode = uint32(m)
		default:
			return ref, fmt.Errorf("invalid field key %q (expected source, target, uid, gid or mode)", f.key)
		}
	}
	if ref.Source == "" {
		return ref, errors.New("source is required")
	}
	if ref.Target == "" {
		ref.Target = ref.Source
	}
	return ref, nil
}
