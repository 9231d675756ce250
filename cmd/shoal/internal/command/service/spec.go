package service

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	units "github.com/docker/go-units"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

// toSpec builds the spec of `service create` from the flags, checking
// everything that can be checked without the daemon. Docker's CLI defaults
// are filled (one replica, update and rollback parallelism 1, restart
// condition "any" when other restart flags are given); the daemon fills the
// rest (restart delay 5s, update monitor 5s, stop grace 10s).
func (o *serviceOptions) toSpec(flags *pflag.FlagSet, image string, args []string, getenv func(string) string) (*api.ServiceSpec, error) {
	if err := o.checkFlagLimits(flags); err != nil {
		return nil, err
	}
	mode := o.mode.Value
	job := mode == "replicated-job" || mode == "global-job"
	if flags.Changed(flagReplicas) && (mode == "global" || mode == "global-job") {
		return nil, errors.New("replicas can only be used with replicated or replicated-job mode")
	}
	if flags.Changed(flagMaxConcurrent) && mode != "replicated-job" {
		return nil, errors.New("max-concurrent can only be used with replicated-job mode")
	}
	if flags.Changed(flagMaxPerNode) && mode != "replicated" && mode != "replicated-job" {
		return nil, errors.New("replicas-max-per-node can only be used with replicated or replicated-job mode")
	}
	if job && anyChanged(flags, append(o.update.names(), o.rollback.names()...)...) {
		return nil, errors.New("update and rollback options (--update-*, --rollback-*) cannot be used with jobs")
	}
	env, err := o.envList(getenv)
	if err != nil {
		return nil, err
	}
	container := &api.ContainerSpec{
		Image:      image,
		Labels:     opts.KVMap(o.containerLabels.GetAll()),
		Args:       args,
		Hostname:   o.hostname,
		Env:        env,
		Dir:        o.workdir,
		User:       o.user,
		Groups:     o.groups.GetAll(),
		ReadOnly:   o.readOnly,
		Init:       o.init,
		StopSignal: o.stopSignal,
		Mounts:     o.mounts.Value(),
		CapAdd:     o.capAdd.GetAll(),
		CapDrop:    o.capDrop.GetAll(),
		Sysctls:    opts.KVMap(o.sysctls.GetAll()),
		DnsConfig:  dnsConfig(o.dns.GetAll(), o.dnsSearch.GetAll(), o.dnsOptions.GetAll()),
	}
	if flags.Changed(flagEntrypoint) {
		if container.Command, err = opts.SplitWords(o.entrypoint); err != nil {
			return nil, fmt.Errorf("invalid --entrypoint: %w", err)
		}
	}
	if flags.Changed(flagStopGracePeriod) {
		container.StopGracePeriod = durationpb.New(dur(o.stopGrace))
	}
	for _, h := range o.hosts.GetAll() {
		container.Hosts = append(container.Hosts, opts.HostsEntry(h))
	}
	if container.Ulimits, err = ulimits(o.ulimits.GetAll()); err != nil {
		return nil, err
	}
	if container.Healthcheck, err = o.healthConfig(flags, nil); err != nil {
		return nil, err
	}
	if err := checkDuplicateTargets("secret", o.secrets.Value()); err != nil {
		return nil, err
	}
	if err := checkDuplicateTargets("config", o.configs.Value()); err != nil {
		return nil, err
	}
	task := &api.TaskSpec{
		Container: container,
		Networks:  o.networks.Value(),
	}
	task.Resources = o.resources(flags, nil)
	if len(o.genericResources.GetAll()) > 0 {
		if task.Resources == nil {
			task.Resources = &api.ResourceRequirements{}
		}
		if task.Resources.Reservations == nil {
			task.Resources.Reservations = &api.Resources{}
		}
		task.Resources.Reservations.Generic = genericResources(o.genericResources.GetAll())
	}
	task.Restart = o.restartPolicy(flags, nil)
	if task.LogDriver, err = logDriverSpec(o.logDriver, o.logOpts.GetAll()); err != nil {
		return nil, err
	}
	if len(o.constraints.GetAll()) > 0 || len(o.placementPrefs.GetAll()) > 0 || o.maxPerNode > 0 {
		task.Placement = &api.Placement{
			Constraints: o.constraints.GetAll(),
			Preferences: prefs(o.placementPrefs.GetAll()),
			MaxReplicas: o.maxPerNode,
		}
	}
	spec := &api.ServiceSpec{
		Annotations: &api.Annotations{Name: o.name, Labels: opts.KVMap(o.labels.GetAll())},
		Task:        task,
	}
	switch mode {
	case "global":
		spec.Mode = &api.ServiceSpec_Global{Global: &api.GlobalService{}}
	case "replicated-job":
		job := &api.ReplicatedJob{MaxConcurrent: o.maxConcurrent}
		if flags.Changed(flagReplicas) {
			job.TotalCompletions = o.replicas
		}
		spec.Mode = &api.ServiceSpec_ReplicatedJob{ReplicatedJob: job}
	case "global-job":
		spec.Mode = &api.ServiceSpec_GlobalJob{GlobalJob: &api.GlobalJob{}}
	default:
		replicas := uint64(1)
		if flags.Changed(flagReplicas) {
			replicas = o.replicas
		}
		spec.Mode = &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: replicas}}
	}
	if !job {
		spec.Update = o.update.config(flags, nil)
		spec.Rollback = o.rollback.config(flags, nil)
	}
	if len(o.publish.Value()) > 0 || flags.Changed(flagEndpointMode) {
		spec.Endpoint = &api.EndpointSpec{Mode: endpointMode(o.endpointMode.Value), Ports: o.publish.Value()}
	}
	return spec, nil
}

// envList merges --env-file files, then --env values; a bare NAME takes its
// value from the CLI's environment.
func (o *serviceOptions) envList(getenv func(string) string) ([]string, error) {
	lookup := func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	}
	var env []string
	for _, f := range o.envFile.GetAll() {
		lines, err := opts.ReadEnvFile(f, lookup)
		if err != nil {
			return nil, err
		}
		env = append(env, lines...)
	}
	for _, e := range o.env.GetAll() {
		env = append(env, expandEnv(e, lookup))
	}
	return env, nil
}

func expandEnv(e string, lookup func(string) (string, bool)) string {
	if strings.Contains(e, "=") {
		return e
	}
	if v, ok := lookup(e); ok {
		return e + "=" + v
	}
	return e
}

func dnsConfig(servers, search, options []string) *api.DNSConfig {
	if len(servers) == 0 && len(search) == 0 && len(options) == 0 {
		return nil
	}
	return &api.DNSConfig{Nameservers: servers, Search: search, Options: options}
}

func ulimits(values []string) ([]*api.Ulimit, error) {
	var out []*api.Ulimit
	for _, v := range values {
		u, err := units.ParseUlimit(v)
		if err != nil {
			return nil, err
		}
		out = append(out, &api.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	return out, nil
}

func genericResources(values []string) []*api.GenericResource {
	var out []*api.GenericResource
	for _, v := range values {
		kind, n, _ := strings.Cut(v, "=")
		value, _ := strconv.ParseInt(n, 10, 64)
		out = append(out, &api.GenericResource{Kind: kind, Value: value})
	}
	return out
}

func prefs(values []string) []*api.PlacementPreference {
	var out []*api.PlacementPreference
	for _, v := range values {
		out = append(out, &api.PlacementPreference{SpreadDescriptor: strings.TrimPrefix(v, "spread=")})
	}
	return out
}

func endpointMode(s string) api.EndpointSpec_ResolutionMode {
	if s == "dnsrr" {
		return api.EndpointSpec_DNSRR
	}
	return api.EndpointSpec_VIP
}

func checkDuplicateTargets(kind string, refs []opts.FileRef) error {
	seen := map[string]bool{}
	for _, r := range refs {
		if seen[r.Target] {
			return fmt.Errorf("duplicate %s target for %s not allowed", kind, r.Target)
		}
		seen[r.Target] = true
	}
	return nil
}
