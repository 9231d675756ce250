package specs

import (
	"fmt"
	"math"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// The checks of the documented limits (proto/limits.go, docs/limits.md).
// Each error names the limit and the value that broke it.

// CheckUTF8 refuses a message with text that is not UTF-8, naming the field
// (protobuf would refuse to store it with an error that names nothing).
func CheckUTF8(what string, m proto.Message) error {
	if path, v, bad := api.InvalidUTF8(m); bad {
		return errdefs.InvalidArgument("%s field %s is not valid UTF-8 (%s): text fields must be UTF-8", what, path, api.Echo(v))
	}
	return nil
}

// validateSpecLimits checks a service spec against the limits on its size
// and on the parts users fill with data.
func validateSpecLimits(s *api.ServiceSpec) error {
	if err := CheckUTF8("service spec", s); err != nil {
		return err
	}
	if n := proto.Size(s); n > api.MaxServiceSpecBytes {
		return errdefs.InvalidArgument("service spec is %s; the limit is %s: move large data (environment, labels, files) into a config or secret",
			api.FormatBytes(int64(n)), api.FormatBytes(api.MaxServiceSpecBytes))
	}
	if err := CheckLabels("service label", s.GetAnnotations().GetLabels()); err != nil {
		return err
	}
	c := s.GetTask().GetContainer()
	if err := CheckLabels("container label", c.GetLabels()); err != nil {
		return err
	}
	if len(c.GetEnv()) > api.MaxEnv {
		return errdefs.InvalidArgument("%d environment variables; the limit is %d", len(c.GetEnv()), api.MaxEnv)
	}
	for _, e := range c.GetEnv() {
		if len(e) > api.MaxArgBytes {
			return errdefs.InvalidArgument("environment variable %s is %d bytes; the limit is %d bytes per variable (Linux's)",
				api.Echo(e), len(e), api.MaxArgBytes)
		}
	}
	if n := len(c.GetCommand()) + len(c.GetArgs()); n > api.MaxArgs {
		return errdefs.InvalidArgument("command and arguments have %d entries; the limit is %d", n, api.MaxArgs)
	}
	for _, a := range append(append([]string(nil), c.GetCommand()...), c.GetArgs()...) {
		if len(a) > api.MaxArgBytes {
			return errdefs.InvalidArgument("command argument %s is %d bytes; the limit is %d bytes per argument (Linux's)",
				api.Echo(a), len(a), api.MaxArgBytes)
		}
	}
	if n := len(c.GetSecrets()); n > api.MaxSecretsPerService {
		return errdefs.InvalidArgument("service uses %d secrets; the limit is %d per service", n, api.MaxSecretsPerService)
	}
	if n := len(c.GetConfigs()); n > api.MaxConfigsPerService {
		return errdefs.InvalidArgument("service uses %d configs; the limit is %d per service", n, api.MaxConfigsPerService)
	}
	if r := s.GetReplicated(); r != nil && r.Replicas > api.MaxReplicas {
		return tooLarge("replicas", r.Replicas, api.MaxReplicas)
	}
	if j := s.GetReplicatedJob(); j != nil {
		if j.TotalCompletions > api.MaxReplicas {
			return tooLarge("total completions", j.TotalCompletions, api.MaxReplicas)
		}
		if j.MaxConcurrent > api.MaxReplicas {
			return tooLarge("max concurrent", j.MaxConcurrent, api.MaxReplicas)
		}
	}
	return nil
}

func tooLarge(field string, v, limit uint64) error {
	return errdefs.InvalidArgument("%s %d is too large: the maximum is %d", field, v, limit)
}

// CheckLabels applies the limits on one map of labels.
func CheckLabels(what string, labels map[string]string) error {
	if len(labels) > api.MaxLabels {
		return errdefs.InvalidArgument("%d %ss; the limit is %d", len(labels), what, api.MaxLabels)
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	total := 0
	for _, k := range keys {
		n := len(k) + len(labels[k])
		total += n
		if k == "" {
			return errdefs.InvalidArgument("%s with an empty name", what)
		}
		if n > api.MaxLabelBytes {
			return errdefs.InvalidArgument("%s %s is %s; the limit is %s per label", what, api.Echo(k),
				api.FormatBytes(int64(n)), api.FormatBytes(api.MaxLabelBytes))
		}
	}
	if total > api.MaxLabelsBytes {
		return errdefs.InvalidArgument("%ss are %s together; the limit is %s", what,
			api.FormatBytes(int64(total)), api.FormatBytes(api.MaxLabelsBytes))
	}
	return nil
}

// CheckAnnotations checks the name and labels of a network, secret or
// config (services check theirs with the whole spec).
func CheckAnnotations(kind string, a *api.Annotations) error {
	if err := CheckUTF8(kind, a); err != nil {
		return err
	}
	if err := ValidateName(kind, a.GetName()); err != nil {
		return err
	}
	return CheckLabels(kind+" label", a.GetLabels())
}

// CheckDuration refuses a duration that is negative, malformed or longer
// than max. It reads seconds and nanos itself: a value beyond what
// time.Duration holds (292 years) is too large, not negative.
func CheckDuration(field string, d *durationpb.Duration, max time.Duration) error {
	if d == nil {
		return nil
	}
	secs, nanos := d.GetSeconds(), d.GetNanos()
	if secs < 0 || nanos < 0 {
		return errdefs.InvalidArgument("%s must not be negative (got %s)", field, formatDuration(d))
	}
	if nanos >= 1e9 {
		return errdefs.InvalidArgument("%s is malformed: %d nanoseconds is more than a second", field, nanos)
	}
	maxSecs, maxNanos := int64(max/time.Second), int32(max%time.Second)
	if secs > maxSecs || secs == maxSecs && nanos > maxNanos {
		return errdefs.InvalidArgument("%s %s is too large: the maximum is %v", field, formatDuration(d), max)
	}
	return nil
}

// formatDuration prints a duration as Go does when it fits time.Duration,
// in seconds otherwise.
func formatDuration(d *durationpb.Duration) string {
	secs := d.GetSeconds()
	if secs > math.MaxInt64/int64(time.Second) || secs < math.MinInt64/int64(time.Second) {
		return fmt.Sprintf("%ds", secs)
	}
	return d.AsDuration().String()
}

// checkRatio refuses NaN, infinities and values outside [0, 1].
func checkRatio(field string, v float32) error {
	f := float64(v)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return errdefs.InvalidArgument("%s must be a number between 0 and 1 (got %v)", field, v)
	}
	if f < 0 || f > 1 {
		return errdefs.InvalidArgument("%s must be between 0 and 1 (got %v)", field, v)
	}
	return nil
}
