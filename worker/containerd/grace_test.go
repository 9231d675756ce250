package containerd

import (
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	api "github.com/shoal-project/shoal/proto"
)

// TestStopGraceClampsHugeValues: stop grace periods from the spec are
// used as given, and those beyond time.Duration are clamped to its
// longest, never wrapped into a short or negative wait.
func TestStopGraceClampsHugeValues(t *testing.T) {
	for _, tc := range []struct {
		grace *durationpb.Duration
		want  time.Duration
	}{
		{nil, defaultStopGrace},
		{durationpb.New(0), 0},
		{durationpb.New(1000 * time.Hour), 1000 * time.Hour},
		{&durationpb.Duration{Seconds: math.MaxInt64}, math.MaxInt64},
		{&durationpb.Duration{Seconds: math.MaxInt64 / int64(time.Second), Nanos: 999_999_999}, math.MaxInt64},
		{&durationpb.Duration{Seconds: 1 << 40}, math.MaxInt64},
		{&durationpb.Duration{Seconds: -5}, defaultStopGrace},
		{&durationpb.Duration{Seconds: math.MinInt64}, defaultStopGrace},
	} {
		tk := &api.Task{Spec: &api.TaskSpec{Container: &api.ContainerSpec{StopGracePeriod: tc.grace}}}
		if got := stopGrace(tk); got != tc.want {
			t.Errorf("stopGrace(%v) = %v, want %v", tc.grace, got, tc.want)
		}
	}
}
