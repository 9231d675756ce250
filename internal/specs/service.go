package specs

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/distribution/reference"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/logopt"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/scheduler"
)

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// ValidateName checks an object name as Docker does: it must work as a DNS
// label component (service names become DNS names). Secrets and configs
// may be one character longer, as in Docker.
func ValidateName(kind, name string) error {
	limit := api.MaxNameLength
	if kind == "secret" || kind == "config" {
		limit = api.MaxDataNameLength
	}
	switch {
	case name == "":
		return errdefs.InvalidArgument("%s name is required", kind)
	case len(name) > limit:
		return errdefs.InvalidArgument("%s name %s is longer than %d characters", kind, api.Echo(name), limit)
	case !nameRE.MatchString(name):
		return errdefs.InvalidArgument("invalid %s name %s: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", kind, api.Echo(name))
	}
	return nil
}

// MinMemoryLimit is the smallest memory limit a container can start with.
const MinMemoryLimit = 6 << 20

var signals = map[string]bool{
	"ABRT": true, "ALRM": true, "BUS": true, "CHLD": true, "CONT": true, "FPE": true, "HUP": true, "ILL": true,
	"INT": true, "IO": true, "KILL": true, "PIPE": true, "PROF": true, "PWR": true, "QUIT": true, "SEGV": true,
	"STKFLT": true, "STOP": true, "SYS": true, "TERM": true, "TRAP": true, "TSTP": true, "TTIN": true, "TTOU": true,
	"URG": true, "USR1": true, "USR2": true, "VTALRM": true, "WINCH": true, "XCPU": true, "XFSZ": true,
}

func validSignal(s string) bool {
	s = strings.ToUpper(strings.TrimPrefix(strings.ToUpper(s), "SIG"))
	if signals[s] {
		return true
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err == nil && n > 0 && n < 65 {
		return true
	}
	return strings.HasPrefix(s, "RTMIN") || strings.HasPrefix(s, "RTMAX")
}

// ValidateService checks a whole service spec and says what is wrong and how to
// fix it. Nothing is written when it fails.
func ValidateService(s *api.ServiceSpec) error {
	if s == nil {
		return errdefs.InvalidArgument("service spec is missing")
	}
	if err := validateSpecLimits(s); err != nil {
		return err
	}
	if err := ValidateName("service", s.GetAnnotations().GetName()); err != nil {
		return err
	}
	if s.GetMode() == nil {
		return errdefs.InvalidArgument("service mode is missing: give replicated, global, replicated-job or global-job")
	}
	if j := s.GetReplicatedJob(); j != nil && j.MaxConcurrent > 0 && j.TotalCompletions > 0 && j.MaxConcurrent > j.TotalCompletions {
		// Docker allows it and runs at most total completions at once.
		j.MaxConcurrent = j.TotalCompletions
	}
	if err := validateTaskSpec(s.GetTask(), s.IsGlobal()); err != nil {
		return err
	}
	for _, u := range []struct {
		what string
		c    *api.UpdateConfig
	}{{"update", s.GetUpdate()}, {"rollback", s.GetRollback()}} {
		if u.c == nil {
			continue
		}
		if err := CheckDuration(u.what+" delay", u.c.Delay, api.MaxUpdateDelay); err != nil {
			return err
		}
		if err := CheckDuration(u.what+" monitor", u.c.Monitor, api.MaxUpdateMonitor); err != nil {
			return err
		}
		if err := checkRatio(u.what+" max failure ratio", u.c.MaxFailureRatio); err != nil {
			return err
		}
	}
	return validateEndpoint(s.GetEndpoint())
}

func validateTaskSpec(t *api.TaskSpec, global bool) error {
	c := t.GetContainer()
	if c == nil {
		return errdefs.InvalidArgument("service has no container spec")
	}
	if c.Image == "" {
		return errdefs.InvalidArgument("an image is required")
	}
	if _, err := reference.ParseNormalizedNamed(c.Image); err != nil {
		return errdefs.InvalidArgument("invalid image reference %s: %v", api.Echo(c.Image), err)
	}
	for _, e := range c.Env {
		if e == "" || strings.HasPrefix(e, "=") {
			return errdefs.InvalidArgument("invalid environment variable %s: expected KEY=VALUE", api.Echo(e))
		}
	}
	if c.StopSignal != "" && !validSignal(c.StopSignal) {
		return errdefs.InvalidArgument("invalid stop signal %s: use a name like SIGTERM or a number", api.Echo(c.StopSignal))
	}
	if err := CheckDuration("stop grace period", c.StopGracePeriod, api.MaxStopGracePeriod); err != nil {
		return err
	}
	if c.Dir != "" && !path.IsAbs(c.Dir) {
		return errdefs.InvalidArgument("working directory %s must be an absolute path", api.Echo(c.Dir))
	}
	for _, m := range c.Mounts {
		if !path.IsAbs(m.Target) {
			return errdefs.InvalidArgument("mount target %s must be an absolute path", api.Echo(m.Target))
		}
		if m.Type == api.Mount_BIND && !path.IsAbs(m.Source) {
			return errdefs.InvalidArgument("bind mount source %s must be an absolute path on the node", api.Echo(m.Source))
		}
		if m.Type == api.Mount_TMPFS && m.Source != "" {
			return errdefs.InvalidArgument("a tmpfs mount takes no source (got %s)", api.Echo(m.Source))
		}
	}
	if h := c.Healthcheck; h != nil {
		for field, d := range map[string]*durationpb.Duration{"health interval": h.Interval, "health timeout": h.Timeout,
			"health start period": h.StartPeriod, "health start interval": h.StartInterval} {
			if err := CheckDuration(field, d, api.MaxHealthDuration); err != nil {
				return err
			}
			if d != nil && d.AsDuration() > 0 && d.AsDuration() < time.Millisecond && field != "health start period" {
				return errdefs.InvalidArgument("%s must be at least 1ms (got %v)", field, d.AsDuration())
			}
		}
		if h.Retries < 0 {
			return errdefs.InvalidArgument("health retries must not be negative")
		}
	}
	if err := validateResources(t.GetResources()); err != nil {
		return err
	}
	if err := validateLogDriver(t.GetLogDriver()); err != nil {
		return err
	}
	if r := t.GetRestart(); r != nil {
		if err := CheckDuration("restart delay", r.Delay, api.MaxRestartDelay); err != nil {
			return err
		}
		if err := CheckDuration("restart window", r.Window, api.MaxRestartWindow); err != nil {
			return err
		}
	}
	if p := t.GetPlacement(); p != nil {
		if _, err := scheduler.ParseConstraints(p.Constraints); err != nil {
			return err
		}
		if _, err := scheduler.ParsePreferences(p.Preferences); err != nil {
			return err
		}
		if global && p.MaxReplicas > 0 {
			return errdefs.InvalidArgument("max replicas per node cannot be used with a global service")
		}
	}
	return nil
}

// validateLogDriver checks the task template's log driver and options as
// the workers apply them (package logopt): json-file, local or none;
// max-size and max-file.
func validateLogDriver(d *api.Driver) error {
	if d == nil {
		return nil
	}
	if _, err := logopt.Parse(d.GetName(), d.GetOptions()); err != nil {
		return errdefs.InvalidArgument("%v", err)
	}
	return nil
}

func validateResources(r *api.ResourceRequirements) error {
	for _, x := range []struct {
		what string
		res  *api.Resources
	}{{"limit", r.GetLimits()}, {"reservation", r.GetReservations()}} {
		if x.res == nil {
			continue
		}
		if x.res.NanoCpus < 0 {
			return errdefs.InvalidArgument("CPU %s must not be negative", x.what)
		}
		if x.res.MemoryBytes < 0 {
			return errdefs.InvalidArgument("memory %s must not be negative", x.what)
		}
		if x.res.Pids < 0 {
			return errdefs.InvalidArgument("pids %s must not be negative", x.what)
		}
	}
	if m := r.GetLimits().GetMemoryBytes(); m > 0 && m < MinMemoryLimit {
		return errdefs.InvalidArgument("memory limit %d bytes is below the minimum of 6MB a container needs", m)
	}
	if l, res := r.GetLimits().GetMemoryBytes(), r.GetReservations().GetMemoryBytes(); l > 0 && res > l {
		return errdefs.InvalidArgument("memory reservation (%d bytes) is larger than the memory limit (%d bytes)", res, l)
	}
	return nil
}

func validateEndpoint(e *api.EndpointSpec) error {
	seen := map[string]bool{}
	for _, p := range e.GetPorts() {
		if p.TargetPort == 0 || p.TargetPort > 65535 {
			return errdefs.InvalidArgument("invalid target port %d: must be 1-65535", p.TargetPort)
		}
		if p.PublishedPort > 65535 {
			return errdefs.InvalidArgument("invalid published port %d: must be 1-65535", p.PublishedPort)
		}
		if p.PublishedPort == 0 {
			continue
		}
		key := fmt.Sprintf("%d/%s", p.PublishedPort, p.Protocol)
		if seen[key] {
			return errdefs.InvalidArgument("published port %s is used twice", strings.ToLower(key))
		}
		seen[key] = true
	}
	if e.GetMode() == api.EndpointSpec_DNSRR && len(e.GetPorts()) > 0 {
		for _, p := range e.GetPorts() {
			if p.PublishMode == api.PortConfig_INGRESS {
				return errdefs.InvalidArgument("port published with ingress mode can't be used with dnsrr mode")
			}
		}
	}
	return nil
}
