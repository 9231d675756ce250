package stack

import (
	"fmt"
	"sort"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	"github.com/shoal-project/shoal/internal/logopt"
	api "github.com/shoal-project/shoal/proto"
)

// service converts one service of the file.
func (c *converter) service(key string, svc types.ServiceConfig) (*Service, error) {
	name := c.stack + "_" + key
	if svc.Image == "" {
		return nil, c.errorf(key, "image", "missing: shoal does not build images; build and push the image, then name it with image:")
	}
	if _, err := reference.ParseNormalizedNamed(svc.Image); err != nil {
		return nil, c.errorf(key, "image", "invalid image reference %q: %v", svc.Image, err)
	}
	container := &api.ContainerSpec{
		Image:      svc.Image,
		Labels:     c.labels(svc.Labels),
		Command:    []string(svc.Entrypoint),
		Args:       []string(svc.Command),
		Hostname:   svc.Hostname,
		Env:        envList(svc.Environment),
		Dir:        svc.WorkingDir,
		User:       svc.User,
		Groups:     svc.GroupAdd,
		Tty:        svc.Tty,
		OpenStdin:  svc.StdinOpen,
		ReadOnly:   svc.ReadOnly,
		StopSignal: svc.StopSignal,
		Init:       svc.Init != nil && *svc.Init,
		CapAdd:     svc.CapAdd,
		CapDrop:    svc.CapDrop,
		Ulimits:    ulimits(svc.Ulimits),
		Hosts:      hosts(svc.ExtraHosts),
	}
	if len(svc.Sysctls) > 0 {
		container.Sysctls = map[string]string(svc.Sysctls)
	}
	if len(svc.DNS) > 0 || len(svc.DNSSearch) > 0 || len(svc.DNSOpts) > 0 {
		container.DnsConfig = &api.DNSConfig{Nameservers: svc.DNS, Search: svc.DNSSearch, Options: svc.DNSOpts}
	}
	if svc.StopGracePeriod != nil {
		if *svc.StopGracePeriod < 0 {
			return nil, c.errorf(key, "stop_grace_period", "must not be negative")
		}
		container.StopGracePeriod = durationpb.New(time.Duration(*svc.StopGracePeriod))
	}
	var err error
	if container.Healthcheck, err = c.healthcheck(key, svc.HealthCheck); err != nil {
		return nil, err
	}
	if container.Mounts, err = c.mounts(key, svc); err != nil {
		return nil, err
	}
	if container.Secrets, err = c.secretRefs(key, svc.Secrets); err != nil {
		return nil, err
	}
	if container.Configs, err = c.configRefs(key, svc.Configs); err != nil {
		return nil, err
	}
	task := &api.TaskSpec{Container: container, Networks: c.attachments(key, svc)}
	if task.LogDriver, err = c.logging(key, svc.Logging); err != nil {
		return nil, err
	}
	spec := &api.ServiceSpec{Annotations: &api.Annotations{Name: name}, Task: task}
	deploy := svc.Deploy
	if deploy == nil {
		deploy = &types.DeployConfig{}
	}
	labels := c.labels(deploy.Labels)
	labels[LabelImage] = svc.Image
	spec.Annotations.Labels = labels
	if err := c.deploy(key, deploy, spec); err != nil {
		return nil, err
	}
	if spec.Endpoint, err = c.endpoint(key, svc, deploy.EndpointMode); err != nil {
		return nil, err
	}
	hc := container.Healthcheck
	return &Service{Key: key, Name: name, Spec: spec,
		Healthcheck: hc != nil && len(hc.Test) > 0 && hc.Test[0] != "NONE"}, nil
}

// logging converts the logging section into the task template's log
// driver, as docker stack deploy does, checked as the managers check it.
func (c *converter) logging(key string, l *types.LoggingConfig) (*api.Driver, error) {
	if l == nil {
		return nil, nil
	}
	opts := map[string]string(l.Options)
	if _, err := logopt.Parse(l.Driver, opts); err != nil {
		return nil, c.errorf(key, "logging", "%v", err)
	}
	if l.Driver == "" && len(opts) == 0 {
		return nil, nil
	}
	if len(opts) == 0 {
		opts = nil
	}
	return &api.Driver{Name: l.Driver, Options: opts}, nil
}

// deploy applies the deploy section: mode, update and rollback configs,
// restart policy, placement and resources.
func (c *converter) deploy(key string, d *types.DeployConfig, spec *api.ServiceSpec) error {
	replicas := uint64(1)
	if d.Replicas != nil {
		if *d.Replicas < 0 {
			return c.errorf(key, "deploy.replicas", "must not be negative (got %d)", *d.Replicas)
		}
		replicas = uint64(*d.Replicas)
	}
	job := false
	switch d.Mode {
	case "", "replicated":
		spec.Mode = &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: replicas}}
	case "global":
		if d.Replicas != nil {
			return c.errorf(key, "deploy.replicas", "replicas can only be used with replicated or replicated-job mode")
		}
		spec.Mode = &api.ServiceSpec_Global{Global: &api.GlobalService{}}
	case "replicated-job":
		job = true
		spec.Mode = &api.ServiceSpec_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: replicas, TotalCompletions: replicas}}
	case "global-job":
		if d.Replicas != nil {
			return c.errorf(key, "deploy.replicas", "replicas can only be used with replicated or replicated-job mode")
		}
		job = true
		spec.Mode = &api.ServiceSpec_GlobalJob{GlobalJob: &api.GlobalJob{}}
	default:
		return c.errorf(key, "deploy.mode", "unknown mode %q: use replicated, global, replicated-job or global-job", d.Mode)
	}
	if job && (d.UpdateConfig != nil || d.RollbackConfig != nil) {
		return c.errorf(key, "deploy.update_config", "update_config and rollback_config cannot be used with jobs; remove them")
	}
	var err error
	if spec.Update, err = c.updateConfig(key, "deploy.update_config", d.UpdateConfig); err != nil {
		return err
	}
	if spec.Rollback, err = c.updateConfig(key, "deploy.rollback_config", d.RollbackConfig); err != nil {
		return err
	}
	if spec.Task.Restart, err = c.restartPolicy(key, d.RestartPolicy); err != nil {
		return err
	}
	if spec.Task.Placement, err = c.placement(key, d.Placement, spec.GetGlobal() != nil || spec.GetGlobalJob() != nil); err != nil {
		return err
	}
	spec.Task.Resources, err = c.resources(key, d.Resources)
	return err
}

func (c *converter) updateConfig(key, field string, u *types.UpdateConfig) (*api.UpdateConfig, error) {
	if u == nil {
		return nil, nil
	}
	out := &api.UpdateConfig{Parallelism: 1, MaxFailureRatio: u.MaxFailureRatio}
	if u.Parallelism != nil {
		out.Parallelism = *u.Parallelism
	}
	if u.Delay < 0 || u.Monitor < 0 {
		return nil, c.errorf(key, field, "delay and monitor must not be negative")
	}
	if u.Delay > 0 {
		out.Delay = durationpb.New(time.Duration(u.Delay))
	}
	if u.Monitor > 0 {
		out.Monitor = durationpb.New(time.Duration(u.Monitor))
	}
	switch u.FailureAction {
	case "", "pause":
	case "continue":
		out.FailureAction = api.UpdateConfig_CONTINUE
	case "rollback":
		out.FailureAction = api.UpdateConfig_ROLLBACK
	default:
		return nil, c.errorf(key, field+".failure_action", "unknown action %q: use pause, continue or rollback", u.FailureAction)
	}
	switch u.Order {
	case "", "stop-first":
	case "start-first":
		out.Order = api.UpdateConfig_START_FIRST
	default:
		return nil, c.errorf(key, field+".order", "unknown order %q: use stop-first or start-first", u.Order)
	}
	if u.MaxFailureRatio < 0 || u.MaxFailureRatio > 1 {
		return nil, c.errorf(key, field+".max_failure_ratio", "must be between 0 and 1 (got %v)", u.MaxFailureRatio)
	}
	return out, nil
}

func (c *converter) restartPolicy(key string, r *types.RestartPolicy) (*api.RestartPolicy, error) {
	if r == nil {
		return nil, nil
	}
	out := &api.RestartPolicy{}
	switch r.Condition {
	case "", "any":
		out.Condition = api.RestartPolicy_ANY
	case "none":
		out.Condition = api.RestartPolicy_NONE
	case "on-failure":
		out.Condition = api.RestartPolicy_ON_FAILURE
	default:
		return nil, c.errorf(key, "deploy.restart_policy.condition", "unknown condition %q: use none, on-failure or any", r.Condition)
	}
	if r.Delay != nil {
		if *r.Delay < 0 {
			return nil, c.errorf(key, "deploy.restart_policy.delay", "must not be negative")
		}
		out.Delay = durationpb.New(time.Duration(*r.Delay))
	}
	if r.MaxAttempts != nil {
		out.MaxAttempts = *r.MaxAttempts
	}
	if r.Window != nil {
		if *r.Window < 0 {
			return nil, c.errorf(key, "deploy.restart_policy.window", "must not be negative")
		}
		out.Window = durationpb.New(time.Duration(*r.Window))
	}
	return out, nil
}

func (c *converter) placement(key string, p types.Placement, global bool) (*api.Placement, error) {
	if len(p.Constraints) == 0 && len(p.Preferences) == 0 && p.MaxReplicas == 0 {
		return nil, nil
	}
	out := &api.Placement{MaxReplicas: p.MaxReplicas}
	if global && p.MaxReplicas > 0 {
		return nil, c.errorf(key, "deploy.placement.max_replicas_per_node", "cannot be used with a global service")
	}
	for _, con := range p.Constraints {
		v, err := opts.ValidateConstraint(con)
		if err != nil {
			return nil, c.errorf(key, "deploy.placement.constraints", "%v", err)
		}
		out.Constraints = append(out.Constraints, v)
	}
	for _, pref := range p.Preferences {
		if _, err := opts.ValidatePlacementPref("spread=" + pref.Spread); err != nil {
			return nil, c.errorf(key, "deploy.placement.preferences", "spread %q: %v", pref.Spread, err)
		}
		out.Preferences = append(out.Preferences, &api.PlacementPreference{SpreadDescriptor: pref.Spread})
	}
	return out, nil
}

func (c *converter) healthcheck(key string, h *types.HealthCheckConfig) (*api.HealthConfig, error) {
	if h == nil {
		return nil, nil
	}
	if h.Disable {
		if len(h.Test) > 0 && !(len(h.Test) == 1 && h.Test[0] == "NONE") {
			return nil, c.errorf(key, "healthcheck", "test and disable can't be set at the same time; remove one")
		}
		return &api.HealthConfig{Test: []string{"NONE"}}, nil
	}
	out := &api.HealthConfig{Test: []string(h.Test)}
	for _, d := range []struct {
		name string
		in   *types.Duration
		out  **durationpb.Duration
	}{
		{"interval", h.Interval, &out.Interval},
		{"timeout", h.Timeout, &out.Timeout},
		{"start_period", h.StartPeriod, &out.StartPeriod},
		{"start_interval", h.StartInterval, &out.StartInterval},
	} {
		if d.in == nil {
			continue
		}
		if *d.in < 0 {
			return nil, c.errorf(key, "healthcheck."+d.name, "must not be negative")
		}
		*d.out = durationpb.New(time.Duration(*d.in))
	}
	if h.Retries != nil {
		if *h.Retries > 1<<31-1 {
			return nil, c.errorf(key, "healthcheck.retries", "%d is too large", *h.Retries)
		}
		out.Retries = int32(*h.Retries)
	}
	return out, nil
}

// attachments lists the networks of a service, sorted by network name.
// Every attachment carries the service's short name as an alias, so that
// "web" resolves as well as "<stack>_web".
func (c *converter) attachments(key string, svc types.ServiceConfig) []*api.NetworkAttachmentConfig {
	byKey := map[string]*Network{}
	for _, n := range c.plan.Networks {
		byKey[n.Key] = n
	}
	var out []*api.NetworkAttachmentConfig
	for _, nk := range sortedKeys(svc.Networks) {
		n := byKey[nk]
		if n == nil {
			continue // networks() refused undefined networks
		}
		att := &api.NetworkAttachmentConfig{Target: n.Name}
		if cfg := svc.Networks[nk]; cfg != nil {
			att.Aliases = append(att.Aliases, cfg.Aliases...)
			for _, a := range []string{cfg.Ipv4Address, cfg.Ipv6Address} {
				if a != "" {
					att.Addresses = append(att.Addresses, a)
				}
			}
		}
		has := false
		for _, a := range att.Aliases {
			has = has || a == key
		}
		if !has {
			att.Aliases = append(att.Aliases, key)
		}
		out = append(out, att)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Target < out[j].Target })
	return out
}

// envList is the environment as KEY=VALUE, sorted; a variable without a
// value is passed as KEY alone.
func envList(env types.MappingWithEquals) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		if v == nil {
			out = append(out, k)
		} else {
			out = append(out, k+"="+*v)
		}
	}
	sort.Strings(out)
	return out
}

func ulimits(in map[string]*types.UlimitsConfig) []*api.Ulimit {
	var out []*api.Ulimit
	for _, name := range sortedKeys(in) {
		u := in[name]
		if u == nil {
			continue
		}
		soft, hard := int64(u.Soft), int64(u.Hard)
		if u.Single != 0 {
			soft, hard = int64(u.Single), int64(u.Single)
		}
		out = append(out, &api.Ulimit{Name: name, Soft: soft, Hard: hard})
	}
	return out
}

// hosts turns extra_hosts into "IP HOST" lines, sorted by host.
func hosts(in types.HostsList) []string {
	var out []string
	for _, host := range sortedKeys(in) {
		for _, ip := range in[host] {
			out = append(out, fmt.Sprintf("%s %s", ip, host))
		}
	}
	return out
}
