package opts

import (
	"errors"
	"fmt"
	"strings"

	api "github.com/shoal-project/shoal/proto"
)

// NetworkOpt collects --network values: NAME or name=NAME,alias=A,alias=B.
type NetworkOpt struct {
	attachments []*api.NetworkAttachmentConfig
}

// Set parses one value.
func (n *NetworkOpt) Set(value string) error {
	att, err := ParseNetwork(value)
	if err != nil {
		return err
	}
	n.attachments = append(n.attachments, att)
	return nil
}

// String shows the networks.
func (n *NetworkOpt) String() string {
	var s []string
	for _, a := range n.attachments {
		s = append(s, a.GetTarget())
	}
	return strings.Join(s, ",")
}

// Type names the value in help output.
func (n *NetworkOpt) Type() string { return "network" }

// Value returns the attachments, targets as given (names or IDs).
func (n *NetworkOpt) Value() []*api.NetworkAttachmentConfig { return n.attachments }

// ParseNetwork reads one --network value.
func ParseNetwork(value string) (*api.NetworkAttachmentConfig, error) {
	if !strings.Contains(value, "=") {
		if strings.TrimSpace(value) == "" {
			return nil, errors.New("network name is required")
		}
		return &api.NetworkAttachmentConfig{Target: value}, nil
	}
	fields, err := parseCSV(value)
	if err != nil {
		return nil, err
	}
	att := &api.NetworkAttachmentConfig{}
	for _, f := range fields {
		if !f.hasValue {
			return nil, fmt.Errorf("invalid field %q: must be a key=value pair", f.key)
		}
		switch f.key {
		case "name", "target":
			att.Target = f.value
		case "alias":
			att.Aliases = append(att.Aliases, f.value)
		case "ip":
			att.Addresses = append(att.Addresses, f.value)
		default:
			return nil, fmt.Errorf("invalid field key %q (expected name, alias or ip)", f.key)
		}
	}
	if att.Target == "" {
		return nil, errors.New("network name is required")
	}
	return att, nil
}
