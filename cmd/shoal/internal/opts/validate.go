package opts

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	units "github.com/docker/go-units"
)

// ValidateEnv accepts KEY=VALUE or a bare KEY (taken from the environment
// when the spec is built).
func ValidateEnv(val string) (string, error) {
	k, _, _ := strings.Cut(val, "=")
	if k == "" {
		return "", fmt.Errorf("invalid environment variable %q: empty name", val)
	}
	if strings.ContainsAny(k, " \t\n") {
		return "", fmt.Errorf("invalid environment variable %q: the name contains whitespace", val)
	}
	return val, nil
}

// ValidateLabel accepts key=value or key (empty value).
func ValidateLabel(val string) (string, error) {
	if k, _, _ := strings.Cut(val, "="); strings.TrimSpace(k) == "" {
		return "", fmt.Errorf("invalid label %q: empty name", val)
	}
	return val, nil
}

// ValidateKeyValue wants key=value with a non-empty key (--sysctl).
func ValidateKeyValue(val string) (string, error) {
	k, _, ok := strings.Cut(val, "=")
	if !ok || k == "" {
		return "", fmt.Errorf("expected key=value, got %q", val)
	}
	return val, nil
}

// ValidateNotEmpty refuses an empty value.
func ValidateNotEmpty(val string) (string, error) {
	if strings.TrimSpace(val) == "" {
		return "", fmt.Errorf("value cannot be empty")
	}
	return val, nil
}

// ValidateIP accepts an IPv4 or IPv6 address (--dns).
func ValidateIP(val string) (string, error) {
	ip := net.ParseIP(strings.TrimSpace(val))
	if ip == nil {
		return "", fmt.Errorf("IP address is not correctly formatted: %s", val)
	}
	return ip.String(), nil
}

// ValidateExtraHost accepts HOST:IP (--host), as docker's --add-host.
func ValidateExtraHost(val string) (string, error) {
	host, ip, ok := strings.Cut(val, ":")
	if !ok || host == "" {
		return "", fmt.Errorf("bad format for add-host: %q (expected HOST:IP)", val)
	}
	if net.ParseIP(ip) == nil {
		return "", fmt.Errorf("invalid IP address in add-host: %q", ip)
	}
	return val, nil
}

// HostsEntry turns HOST:IP into the "IP HOST" line the spec stores.
func HostsEntry(val string) string {
	host, ip, _ := strings.Cut(val, ":")
	return ip + " " + host
}

// ValidateUlimit accepts NAME=SOFT[:HARD], e.g. nofile=1024:2048.
func ValidateUlimit(val string) (string, error) {
	if _, err := units.ParseUlimit(val); err != nil {
		return "", err
	}
	return val, nil
}

// ValidateGenericResource accepts KIND=VALUE with an integer value.
func ValidateGenericResource(val string) (string, error) {
	k, v, ok := strings.Cut(val, "=")
	if !ok || k == "" {
		return "", fmt.Errorf("invalid generic resource %q: expected KIND=VALUE", val)
	}
	if _, err := strconv.ParseInt(v, 10, 64); err != nil {
		return "", fmt.Errorf("invalid generic resource %q: %q is not an integer", val, v)
	}
	return val, nil
}

// constraintKeys are the keys a placement constraint may test.
var constraintKeys = []string{"node.id", "node.hostname", "node.role", "node.platform.os", "node.platform.arch", "node.ip", "node.labels.<label>", "engine.labels.<label>"}

// ValidateConstraint checks a placement constraint such as
// node.role==manager or node.labels.zone!=east.
func ValidateConstraint(val string) (string, error) {
	op := ""
	switch n := strings.Count(val, "==") + strings.Count(val, "!="); {
	case n == 0:
		return "", fmt.Errorf("expected KEY==VALUE or KEY!=VALUE, e.g. node.role==manager, got %q", val)
	case n > 1:
		return "", fmt.Errorf("expected exactly one operator (== or !=) in %q", val)
	case strings.Contains(val, "=="):
		op = "=="
	default:
		op = "!="
	}
	key, value, _ := strings.Cut(val, op)
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	if key == "" || value == "" || strings.Contains(value, "=") {
		return "", fmt.Errorf("expected KEY%sVALUE with a key and a value, got %q", op, val)
	}
	lower := strings.ToLower(key)
	switch {
	case lower == "node.id", lower == "node.hostname", lower == "node.platform.os",
		lower == "node.platform.arch", lower == "node.ip":
	case lower == "node.role":
		if v := strings.ToLower(value); v != "manager" && v != "worker" {
			return "", fmt.Errorf("node.role must be manager or worker, got %q", value)
		}
	case strings.HasPrefix(lower, "node.labels.") && len(key) > len("node.labels."),
		strings.HasPrefix(lower, "engine.labels.") && len(key) > len("engine.labels."):
	default:
		return "", fmt.Errorf("unknown constraint key %q (use %s)", key, strings.Join(constraintKeys, ", "))
	}
	return key + op + value, nil
}

// ValidatePlacementPref accepts spread=<descriptor>.
func ValidatePlacementPref(val string) (string, error) {
	strategy, arg, ok := strings.Cut(val, "=")
	if !ok || arg == "" {
		return "", fmt.Errorf("placement preference must be of the format \"<strategy>=<arg>\", e.g. spread=node.labels.zone")
	}
	if strings.ToLower(strategy) != "spread" {
		return "", fmt.Errorf("unsupported placement preference %s (only spread is supported)", strategy)
	}
	return "spread=" + arg, nil
}
