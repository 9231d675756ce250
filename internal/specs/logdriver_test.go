package specs

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// The managers check log drivers as the workers apply them, whatever
// client sent the spec.
func TestValidateLogDriver(t *testing.T) {
	for _, d := range []*api.Driver{
		{Name: "json-file", Options: map[string]string{"max-size": "10m", "max-file": "3"}},
		{Name: "local"},
		{Name: "none"},
		{Options: map[string]string{"max-file": "2"}},
	} {
		s := proto.Clone(validSpec()).(*api.ServiceSpec)
		s.Task.LogDriver = d
		if err := ValidateService(s); err != nil {
			t.Errorf("%v refused: %v", d, err)
		}
	}
	for _, c := range []struct {
		d    *api.Driver
		want string
	}{
		{&api.Driver{Name: "syslog"}, `log driver "syslog" is not supported: use "json-file", "local" or "none"`},
		{&api.Driver{Name: "json-file", Options: map[string]string{"max-size": "0"}}, `invalid max-size "0"`},
		{&api.Driver{Name: "json-file", Options: map[string]string{"max-file": "-1"}}, `invalid max-file "-1"`},
		{&api.Driver{Name: "local", Options: map[string]string{"mode": "non-blocking"}}, `unknown log opt "mode" for local log driver`},
		{&api.Driver{Name: "none", Options: map[string]string{"max-file": "1"}}, `takes no options`},
	} {
		s := proto.Clone(validSpec()).(*api.ServiceSpec)
		s.Task.LogDriver = c.d
		err := ValidateService(s)
		if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an invalid-argument error containing %q", c.d, err, c.want)
		}
	}
}
