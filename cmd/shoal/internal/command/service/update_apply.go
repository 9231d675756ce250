package service

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

// apply changes spec by the flags given; flags not given leave it alone.
// Removals are applied before additions, as in Docker.
func (o *updateOptions) apply(flags *pflag.FlagSet, spec *api.ServiceSpec, getenv func(string) string) error {
	if spec.Task == nil {
		spec.Task = &api.TaskSpec{}
	}
	if spec.Task.Container == nil {
		spec.Task.Container = &api.ContainerSpec{}
	}
	if spec.Annotations == nil {
		spec.Annotations = &api.Annotations{}
	}
	if err := o.applyMode(flags, spec); err != nil {
		return err
	}
	task, c := spec.Task, spec.Task.Container
	if flags.Changed("image") {
		c.Image = o.image
	}
	if flags.Changed("args") {
		args, err := opts.SplitWords(o.args)
		if err != nil {
			return fmt.Errorf("invalid --args: %w", err)
		}
		c.Args = args
	}
	if flags.Changed(flagEntrypoint) {
		cmd, err := opts.SplitWords(o.entrypoint)
		if err != nil {
			return fmt.Errorf("invalid --entrypoint: %w", err)
		}
		c.Command = cmd
	}
	setString(flags, flagWorkdir, o.workdir, &c.Dir)
	setString(flags, flagUser, o.user, &c.User)
	setString(flags, flagHostname, o.hostname, &c.Hostname)
	setString(flags, flagStopSignal, o.stopSignal, &c.StopSignal)
	if flags.Changed(flagInit) {
		c.Init = o.init
	}
	if flags.Changed(flagReadOnly) {
		c.ReadOnly = o.readOnly
	}
	if flags.Changed(flagStopGracePeriod) {
		c.StopGracePeriod = durationpb.New(dur(o.stopGrace))
	}
	if flags.Changed("force") && o.force {
		task.ForceUpdate++
	}
	hc, err := o.healthConfig(flags, c.Healthcheck)
	if err != nil {
		return err
	}
	c.Healthcheck = hc
	task.Resources = o.resources(flags, task.Resources)
	task.Restart = o.restartPolicy(flags, task.Restart)
	spec.Update = o.update.config(flags, spec.Update)
	spec.Rollback = o.rollback.config(flags, spec.Rollback)
	if flags.Changed(flagEndpointMode) {
		if spec.Endpoint == nil {
			spec.Endpoint = &api.EndpointSpec{}
		}
		spec.Endpoint.Mode = endpointMode(o.endpointMode.Value)
	}
	if flags.Changed(flagMaxPerNode) {
		placement(task).MaxReplicas = o.maxPerNode
	}
	if flags.Changed(flagLogDriver) || flags.Changed(flagLogOpt) {
		// As Docker: the options given replace the service's; the driver
		// stays unless --log-driver names another.
		name := task.GetLogDriver().GetName()
		if flags.Changed(flagLogDriver) {
			name = o.logDriver
		}
		d, err := logDriverSpec(name, o.logOpts.GetAll())
		if err != nil {
			return err
		}
		task.LogDriver = d
	}
	return o.applyLists(spec, getenv)
}

func (o *updateOptions) applyMode(flags *pflag.FlagSet, spec *api.ServiceSpec) error {
	if flags.Changed(flagReplicas) {
		switch m := spec.GetMode().(type) {
		case *api.ServiceSpec_Replicated:
			m.Replicated.Replicas = o.replicas
		case *api.ServiceSpec_ReplicatedJob:
			m.ReplicatedJob.TotalCompletions = o.replicas
		default:
			return errors.New("replicas can only be used with replicated or replicated-job mode")
		}
	}
	if flags.Changed(flagMaxConcurrent) {
		m, ok := spec.GetMode().(*api.ServiceSpec_ReplicatedJob)
		if !ok {
			return errors.New("max-concurrent can only be used with replicated-job mode")
		}
		m.ReplicatedJob.MaxConcurrent = o.maxConcurrent
	}
	if flags.Changed(flagMaxPerNode) {
		if _, ok := spec.GetMode().(*api.ServiceSpec_Global); ok {
			return errors.New("replicas-max-per-node can only be used with replicated or replicated-job mode")
		}
	}
	return nil
}

func setString(flags *pflag.FlagSet, name, value string, dst *string) {
	if flags.Changed(name) {
		*dst = value
	}
}

func placement(task *api.TaskSpec) *api.Placement {
	if task.Placement == nil {
		task.Placement = &api.Placement{}
	}
	return task.Placement
}
