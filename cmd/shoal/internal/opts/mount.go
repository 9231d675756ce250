package opts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	units "github.com/docker/go-units"

	api "github.com/shoal-project/shoal/proto"
)

// MountOpt collects --mount values:
// type=volume|bind|tmpfs,source=…,target=…,readonly,tmpfs-size=…,tmpfs-mode=….
type MountOpt struct {
	mounts []*api.Mount
}

// Set parses one --mount value.
func (m *MountOpt) Set(value string) error {
	mnt, err := ParseMount(value)
	if err != nil {
		return err
	}
	m.mounts = append(m.mounts, mnt)
	return nil
}

// String shows the mounts.
func (m *MountOpt) String() string {
	var s []string
	for _, mnt := range m.mounts {
		s = append(s, strings.ToLower(mnt.GetType().String())+":"+mnt.GetSource()+":"+mnt.GetTarget())
	}
	return strings.Join(s, ",")
}

// Type names the value in help output.
func (m *MountOpt) Type() string { return "mount" }

// Value returns the parsed mounts.
func (m *MountOpt) Value() []*api.Mount { return m.mounts }

// unsupportedMountKeys are Docker --mount keys shoal's spec cannot carry.
var unsupportedMountKeys = map[string]bool{
	"volume-driver": true, "volume-label": true, "volume-nocopy": true, "volume-opt": true,
	"bind-propagation": true, "bind-nonrecursive": true, "bind-recursive": true, "consistency": true,
	"volume-subpath": true, "image-subpath": true,
}

// ParseMount reads one --mount value.
func ParseMount(value string) (*api.Mount, error) {
	fields, err := parseCSV(value)
	if err != nil {
		return nil, err
	}
	mnt := &api.Mount{Type: api.Mount_VOLUME}
	tmpfsOpt := ""
	for _, f := range fields {
		switch f.key {
		case "readonly", "ro":
			ro, err := parseBool(f)
			if err != nil {
				return nil, err
			}
			mnt.ReadOnly = ro
			continue
		}
		if !f.hasValue {
			return nil, fmt.Errorf("invalid field %q: must be a key=value pair", f.key)
		}
		switch f.key {
		case "type":
			switch strings.ToLower(f.value) {
			case "volume":
				mnt.Type = api.Mount_VOLUME
			case "bind":
				mnt.Type = api.Mount_BIND
			case "tmpfs":
				mnt.Type = api.Mount_TMPFS
			default:
				return nil, fmt.Errorf("invalid mount type %q: must be %s", f.value, OneOf([]string{"volume", "bind", "tmpfs"}))
			}
		case "source", "src":
			mnt.Source = f.value
		case "target", "dst", "destination":
			mnt.Target = f.value
		case "tmpfs-size":
			n, err := units.RAMInBytes(f.value)
			if err != nil {
				return nil, fmt.Errorf("invalid tmpfs-size: %w", err)
			}
			mnt.TmpfsSizeBytes, tmpfsOpt = n, f.key
		case "tmpfs-mode":
			n, err := strconv.ParseUint(f.value, 8, 32)
			if err != nil {
				return nil, fmt.Errorf("invalid tmpfs-mode %q: expected an octal mode such as 1777", f.value)
			}
			mnt.TmpfsMode, tmpfsOpt = uint32(n), f.key
		default:
			if unsupportedMountKeys[f.key] {
				return nil, fmt.Errorf("mount option %q is not supported by shoal", f.key)
			}
			return nil, fmt.Errorf("unexpected key %q in %q", f.key, value)
		}
	}
	if mnt.Target == "" {
		return nil, errors.New("target is required")
	}
	switch mnt.Type {
	case api.Mount_BIND:
		if mnt.Source == "" {
			return nil, errors.New("source is required for bind mounts")
		}
	case api.Mount_TMPFS:
		if mnt.Source != "" {
			return nil, errors.New("source is not allowed for tmpfs mounts")
		}
	}
	if tmpfsOpt != "" && mnt.Type != api.Mount_TMPFS {
		return nil, fmt.Errorf("%s can only be used with type=tmpfs", tmpfsOpt)
	}
	return mnt, nil
}
