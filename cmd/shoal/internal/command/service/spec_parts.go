package service

import (
	"errors"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/durationpb"

	api "github.com/shoal-project/shoal/proto"
)

// healthConfig applies the --health-* flags to cur (nil on create) and
// returns the result; nil means "use the image's health check".
func (o *serviceOptions) healthConfig(flags *pflag.FlagSet, cur *api.HealthConfig) (*api.HealthConfig, error) {
	changed := anyChanged(flags, healthFlags...)
	if flags.Changed(flagNoHealthcheck) && o.noHealthcheck {
		if changed {
			return nil, errors.New("--no-healthcheck conflicts with --health-* options")
		}
		return &api.HealthConfig{Test: []string{"NONE"}}, nil
	}
	if !changed {
		return cur, nil
	}
	hc := &api.HealthConfig{}
	if cur != nil && !(len(cur.GetTest()) == 1 && cur.GetTest()[0] == "NONE") {
		hc = cur
	}
	if flags.Changed(flagHealthCmd) {
		hc.Test = nil
		if o.healthCmd != "" {
			hc.Test = []string{"CMD-SHELL", o.healthCmd}
		}
	}
	setDur := func(name string, v *durationpb.Duration, dst **durationpb.Duration) {
		if flags.Changed(name) {
			*dst = v
		}
	}
	setDur(flagHealthInterval, durationpb.New(dur(o.healthInterval)), &hc.Interval)
	setDur(flagHealthTimeout, durationpb.New(dur(o.healthTimeout)), &hc.Timeout)
	setDur(flagHealthStartPeriod, durationpb.New(dur(o.healthStartPeriod)), &hc.StartPeriod)
	setDur(flagHealthStartIntv, durationpb.New(dur(o.healthStartInterval)), &hc.StartInterval)
	if flags.Changed(flagHealthRetries) {
		hc.Retries = int32(o.healthRetries)
	}
	return hc, nil
}

// resources applies --limit-* and --reserve-* to cur (nil on create).
func (o *serviceOptions) resources(flags *pflag.FlagSet, cur *api.ResourceRequirements) *api.ResourceRequirements {
	if !anyChanged(flags, flagLimitCPU, flagLimitMemory, flagLimitPids, flagReserveCPU, flagReserveMemory) {
		return cur
	}
	r := cur
	if r == nil {
		r = &api.ResourceRequirements{}
	}
	if anyChanged(flags, flagLimitCPU, flagLimitMemory, flagLimitPids) && r.Limits == nil {
		r.Limits = &api.Resources{}
	}
	if anyChanged(flags, flagReserveCPU, flagReserveMemory) && r.Reservations == nil {
		r.Reservations = &api.Resources{}
	}
	if flags.Changed(flagLimitCPU) {
		r.Limits.NanoCpus = int64(o.limitCPU)
	}
	if flags.Changed(flagLimitMemory) {
		r.Limits.MemoryBytes = int64(o.limitMem)
	}
	if flags.Changed(flagLimitPids) {
		r.Limits.Pids = o.limitPids
	}
	if flags.Changed(flagReserveCPU) {
		r.Reservations.NanoCpus = int64(o.reserveCPU)
	}
	if flags.Changed(flagReserveMemory) {
		r.Reservations.MemoryBytes = int64(o.reserveMem)
	}
	return r
}

// restartPolicy applies --restart-* to cur (nil on create). A new policy
// gets the condition "any", Docker's default, unless one is given.
func (o *serviceOptions) restartPolicy(flags *pflag.FlagSet, cur *api.RestartPolicy) *api.RestartPolicy {
	if !anyChanged(flags, flagRestartCondition, flagRestartDelay, flagRestartMaxAttempts, flagRestartWindow) {
		return cur
	}
	p := cur
	if p == nil {
		p = &api.RestartPolicy{Condition: api.RestartPolicy_ANY}
	}
	if flags.Changed(flagRestartCondition) {
		p.Condition = restartCondition(o.restartCondition.Value)
	}
	if flags.Changed(flagRestartDelay) {
		p.Delay = durationpb.New(dur(o.restartDelay))
	}
	if flags.Changed(flagRestartMaxAttempts) {
		p.MaxAttempts = o.restartMaxAttempts
	}
	if flags.Changed(flagRestartWindow) {
		p.Window = durationpb.New(dur(o.restartWindow))
	}
	return p
}

func restartCondition(s string) api.RestartPolicy_Condition {
	switch s {
	case "none":
		return api.RestartPolicy_NONE
	case "on-failure":
		return api.RestartPolicy_ON_FAILURE
	}
	return api.RestartPolicy_ANY
}

// config applies --update-* (or --rollback-*) to cur. On create (cur nil)
// the config is always sent, with parallelism 1 unless given, as Docker's
// CLI does; on update a missing config is created only when a flag is given.
func (u *updateFlags) config(flags *pflag.FlagSet, cur *api.UpdateConfig) *api.UpdateConfig {
	creating := cur == nil
	if !creating && !anyChanged(flags, u.names()...) {
		return cur
	}
	c := cur
	if c == nil {
		c = &api.UpdateConfig{Parallelism: 1}
	}
	if creating || flags.Changed(u.flag("parallelism")) {
		c.Parallelism = u.parallelism
	}
	if flags.Changed(u.flag("delay")) {
		c.Delay = durationpb.New(dur(u.delay))
	}
	if flags.Changed(u.flag("monitor")) {
		c.Monitor = durationpb.New(dur(u.monitor))
	}
	if flags.Changed(u.flag("failure-action")) {
		switch u.failureAction.Value {
		case "continue":
			c.FailureAction = api.UpdateConfig_CONTINUE
		case "rollback":
			c.FailureAction = api.UpdateConfig_ROLLBACK
		default:
			c.FailureAction = api.UpdateConfig_PAUSE
		}
	}
	if flags.Changed(u.flag("max-failure-ratio")) {
		c.MaxFailureRatio = float32(u.maxFailureRatio)
	}
	if flags.Changed(u.flag("order")) {
		if u.order.Value == "start-first" {
			c.Order = api.UpdateConfig_START_FIRST
		} else {
			c.Order = api.UpdateConfig_STOP_FIRST
		}
	}
	return c
}
