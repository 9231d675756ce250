package convert

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// unsupported is the error for a Docker field shoal cannot honour. field is
// the JSON path as the client sent it ("TaskTemplate.ContainerSpec.Isolation").
func unsupported(field, why string) error {
	return errdefs.Newf(errdefs.ErrInvalidArgument, "%s is not supported by shoal: %s", field, why)
}

// invalid is the error for a Docker field whose value is wrong.
func invalid(field, format string, a ...any) error {
	return errdefs.Newf(errdefs.ErrInvalidArgument, "invalid %s: %s", field, fmt.Sprintf(format, a...))
}

func idx(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// Meta returns Docker's Version/CreatedAt/UpdatedAt from shoal's Meta.
// Version.Index is the raft index of the object's last write, which the
// client sends back as ?version= on update.
func Meta(m *api.Meta) swarm.Meta {
	return swarm.Meta{
		Version:   swarm.Version{Index: m.GetVersion()},
		CreatedAt: Time(m.GetCreatedAt()),
		UpdatedAt: Time(m.GetUpdatedAt()),
	}
}

// Time returns ts in UTC; a missing timestamp is the zero time, which Docker
// also prints ("0001-01-01T00:00:00Z").
func Time(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime().UTC()
}

func timePtr(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := Time(ts)
	return &t
}

func durPtr(d *durationpb.Duration) *time.Duration {
	if d == nil {
		return nil
	}
	v := d.AsDuration()
	return &v
}

func dur(d *durationpb.Duration) time.Duration { return d.AsDuration() }

func durFromPtr(d *time.Duration) *durationpb.Duration {
	if d == nil {
		return nil
	}
	return durationpb.New(*d)
}

// durFrom maps Docker's zero ("use the default") to an unset duration.
func durFrom(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// labelsOut is never nil: Docker always prints "Labels": {}. Stack labels
// are shown under Docker's keys (StackLabelsToMoby).
func labelsOut(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	maps.Copy(out, StackLabelsToMoby(m))
	return out
}

// Stack labels: `docker stack deploy` marks what it creates with
// com.docker.stack.namespace (and com.docker.stack.image on services);
// shoal's stack commands use io.shoal.stack.namespace and .image. The
// gateway stores Docker's stack labels under shoal's keys and shows shoal's
// under Docker's, so that each CLI sees the other's stacks. A key is left
// as it is when the other form is also set.
const (
	dockerStackLabels = "com.docker.stack."
	shoalStackLabels  = "io.shoal.stack."
)

// StackLabelsToMoby returns m with io.shoal.stack.* keys renamed
// com.docker.stack.* (nil for nil).
func StackLabelsToMoby(m map[string]string) map[string]string {
	return relabel(m, shoalStackLabels, dockerStackLabels)
}

// StackLabelsFromMoby returns m with com.docker.stack.* keys renamed
// io.shoal.stack.* (nil for an empty m).
func StackLabelsFromMoby(m map[string]string) map[string]string {
	return copyMap(relabel(m, dockerStackLabels, shoalStackLabels))
}

// LabelFiltersFromMoby renames the com.docker.stack.* keys of label
// filters ("key" or "key=value") io.shoal.stack.*, for the manager's
// label filter.
func LabelFiltersFromMoby(vals []string) []string {
	var out []string
	for _, v := range vals {
		if rest, ok := strings.CutPrefix(v, dockerStackLabels); ok {
			v = shoalStackLabels + rest
		}
		out = append(out, v)
	}
	return out
}

func relabel(m map[string]string, from, to string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if rest, ok := strings.CutPrefix(k, from); ok {
			if _, taken := m[to+rest]; !taken {
				k = to + rest
			}
		}
		out[k] = v
	}
	return out
}

func annotationsToMoby(a *api.Annotations) swarm.Annotations {
	return swarm.Annotations{Name: a.GetName(), Labels: labelsOut(a.GetLabels())}
}

func annotationsFromMoby(a swarm.Annotations) *api.Annotations {
	return &api.Annotations{Name: a.Name, Labels: StackLabelsFromMoby(a.Labels)}
}

func driverToMoby(d *api.Driver) *swarm.Driver {
	if d == nil {
		return nil
	}
	return &swarm.Driver{Name: d.GetName(), Options: copyMap(d.GetOptions())}
}

func driverFromMoby(d *swarm.Driver) *api.Driver {
	if d == nil {
		return nil
	}
	return &api.Driver{Name: d.Name, Options: copyMap(d.Options)}
}

func u64(v uint64) *uint64 { return &v }

func cloneStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}
