package opts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	api "github.com/shoal-project/shoal/proto"
)

// PortOpt collects -p/--publish values, in the long form
// published=8080,target=80,protocol=tcp,mode=ingress[,masquerade=true] or the short form
// [PUBLISHED:]TARGET[/PROTOCOL], ranges allowed (8080-8081:80-81).
type PortOpt struct {
	ports []*api.PortConfig
}

// Set parses one --publish value.
func (p *PortOpt) Set(value string) error {
	ports, err := ParsePorts(value)
	if err != nil {
		return err
	}
	p.ports = append(p.ports, ports...)
	return nil
}

// String shows the ports.
func (p *PortOpt) String() string {
	var s []string
	for _, pc := range p.ports {
		s = append(s, fmt.Sprintf("%d:%d/%s", pc.GetPublishedPort(), pc.GetTargetPort(), strings.ToLower(pc.GetProtocol().String())))
	}
	return strings.Join(s, ",")
}

// Type names the value in help output.
func (p *PortOpt) Type() string { return "port" }

// Value returns the parsed ports.
func (p *PortOpt) Value() []*api.PortConfig { return p.ports }

// ParsePorts reads one --publish value in the long or short form.
func ParsePorts(value string) ([]*api.PortConfig, error) {
	if strings.Contains(value, "=") {
		pc, err := parseLongPort(value)
		if err != nil {
			return nil, err
		}
		return []*api.PortConfig{pc}, nil
	}
	return parseShortPort(value)
}

func parseLongPort(value string) (*api.PortConfig, error) {
	fields, err := parseCSV(value)
	if err != nil {
		return nil, err
	}
	pc := &api.PortConfig{}
	hasTarget := false
	for _, f := range fields {
		if f.key == "masquerade" {
			// Docker's ingress behaviour: the task sees the ingress
			// node's address instead of the client's.
			b, err := parseBool(f)
			if err != nil {
				return nil, err
			}
			pc.Masquerade = b
			continue
		}
		if !f.hasValue {
			return nil, fmt.Errorf("invalid field %q: must be a key=value pair", f.key)
		}
		switch f.key {
		case "target":
			n, err := parsePort(f.value, false)
			if err != nil {
				return nil, fmt.Errorf("invalid target port: %w", err)
			}
			pc.TargetPort, hasTarget = n, true
		case "published":
			n, err := parsePort(f.value, true)
			if err != nil {
				return nil, fmt.Errorf("invalid published port: %w", err)
			}
			pc.PublishedPort = n
		case "protocol":
			proto, err := parseProtocol(f.value)
			if err != nil {
				return nil, err
			}
			pc.Protocol = proto
		case "mode":
			switch strings.ToLower(f.value) {
			case "ingress":
				pc.PublishMode = api.PortConfig_INGRESS
			case "host":
				pc.PublishMode = api.PortConfig_HOST
			default:
				return nil, fmt.Errorf("invalid publish mode %q: must be %s", f.value, OneOf([]string{"ingress", "host"}))
			}
		case "name":
			pc.Name = f.value
		default:
			return nil, fmt.Errorf("invalid field key %q (expected target, published, protocol, mode, name or masquerade)", f.key)
		}
	}
	if !hasTarget {
		return nil, errors.New("missing mandatory field 'target'")
	}
	return pc, nil
}

func parseShortPort(value string) ([]*api.PortConfig, error) {
	spec, protoName, _ := strings.Cut(value, "/")
	proto := api.PortConfig_TCP
	if protoName != "" {
		p, err := parseProtocol(protoName)
		if err != nil {
			return nil, err
		}
		proto = p
	}
	parts := strings.Split(spec, ":")
	var published, target string
	switch len(parts) {
	case 1:
		target = parts[0]
	case 2:
		published, target = parts[0], parts[1]
	default:
		return nil, fmt.Errorf("invalid port %q: a host IP cannot be given in swarm mode; use [PUBLISHED:]TARGET[/PROTOCOL]", value)
	}
	tStart, tEnd, err := parseRange(target, false)
	if err != nil {
		return nil, fmt.Errorf("invalid target port %q: %w", target, err)
	}
	var pStart, pEnd uint32
	if published != "" {
		if pStart, pEnd, err = parseRange(published, true); err != nil {
			return nil, fmt.Errorf("invalid published port %q: %w", published, err)
		}
		if pEnd-pStart != tEnd-tStart {
			return nil, fmt.Errorf("invalid port %q: the published and target ranges differ in size", value)
		}
	}
	var ports []*api.PortConfig
	for i := uint32(0); i <= tEnd-tStart; i++ {
		pc := &api.PortConfig{Protocol: proto, TargetPort: tStart + i}
		if published != "" {
			pc.PublishedPort = pStart + i
		}
		ports = append(ports, pc)
	}
	return ports, nil
}

func parseRange(s string, allowZero bool) (uint32, uint32, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	start, err := parsePort(lo, allowZero)
	if err != nil {
		return 0, 0, err
	}
	if !isRange {
		return start, start, nil
	}
	end, err := parsePort(hi, allowZero)
	if err != nil {
		return 0, 0, err
	}
	if end < start {
		return 0, 0, fmt.Errorf("range %s ends before it starts", s)
	}
	return start, end, nil
}

func parsePort(s string, allowZero bool) (uint32, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil || n > 65535 || (n == 0 && !allowZero) {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return uint32(n), nil
}

func parseProtocol(s string) (api.PortConfig_Protocol, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return api.PortConfig_TCP, nil
	case "udp":
		return api.PortConfig_UDP, nil
	case "sctp":
		// The API would refuse it (internal/specs): say so before sending.
		return 0, fmt.Errorf("invalid protocol %q: shoal's routing mesh does not publish sctp ports: use tcp or udp", s)
	}
	return 0, fmt.Errorf("invalid protocol %q: must be %s", s, OneOf([]string{"tcp", "udp"}))
}
