package service

import (
	"fmt"
	"math"
	"time"

	"github.com/spf13/pflag"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

// The daemon's limits (proto/limits.go) on values given by flags, checked
// before anything is sent so that the error names the flag.

// durationLimits are the maxima of the duration flags.
var durationLimits = map[string]time.Duration{
	flagStopGracePeriod:   api.MaxStopGracePeriod,
	flagRestartDelay:      api.MaxRestartDelay,
	flagRestartWindow:     api.MaxRestartWindow,
	"update-delay":        api.MaxUpdateDelay,
	"rollback-delay":      api.MaxUpdateDelay,
	"update-monitor":      api.MaxUpdateMonitor,
	"rollback-monitor":    api.MaxUpdateMonitor,
	flagHealthInterval:    api.MaxHealthDuration,
	flagHealthTimeout:     api.MaxHealthDuration,
	flagHealthStartPeriod: api.MaxHealthDuration,
	flagHealthStartIntv:   api.MaxHealthDuration,
}

// annotateLimits records the maxima on the flags, for the wording of
// values too large for the flag's type (command.MaxAnnotation).
func annotateLimits(flags *pflag.FlagSet) {
	for name, limit := range durationLimits {
		_ = flags.SetAnnotation(name, command.MaxAnnotation, []string{limit.String()})
	}
	for _, name := range []string{flagReplicas, flagMaxConcurrent} {
		_ = flags.SetAnnotation(name, command.MaxAnnotation, []string{fmt.Sprint(api.MaxReplicas)})
	}
	_ = flags.SetAnnotation(flagHealthRetries, command.MaxAnnotation, []string{fmt.Sprint(math.MaxInt32)})
}

// checkFlagLimits refuses flag values beyond the daemon's limits.
func (o *serviceOptions) checkFlagLimits(flags *pflag.FlagSet) error {
	var err error
	flags.Visit(func(f *pflag.Flag) {
		if err != nil {
			return
		}
		if limit, ok := durationLimits[f.Name]; ok {
			if d, perr := time.ParseDuration(f.Value.String()); perr == nil && d > limit {
				err = fmt.Errorf("--%s %v is too large: the maximum is %v", f.Name, d, limit)
			}
		}
	})
	if err != nil {
		return err
	}
	for _, c := range []struct {
		flag string
		v    uint64
	}{{flagReplicas, o.replicas}, {flagMaxConcurrent, o.maxConcurrent}} {
		if flags.Changed(c.flag) && c.v > api.MaxReplicas {
			return fmt.Errorf("--%s %d is too large: the maximum is %d", c.flag, c.v, api.MaxReplicas)
		}
	}
	if o.healthRetries < 0 {
		return fmt.Errorf("--%s cannot be negative", flagHealthRetries)
	}
	if o.healthRetries > math.MaxInt32 {
		return fmt.Errorf("--%s %d is too large: the maximum is %d", flagHealthRetries, o.healthRetries, math.MaxInt32)
	}
	return nil
}
