package specs

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func validSpec() *api.ServiceSpec {
	return &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "127.0.0.1:5000/shoal/whoami:latest"}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 3}},
	}
}

func TestValidateService(t *testing.T) {
	if err := ValidateService(validSpec()); err != nil {
		t.Fatalf("valid spec refused: %v", err)
	}
	cases := []struct {
		name   string
		change func(*api.ServiceSpec)
		want   string
	}{
		{"no name", func(s *api.ServiceSpec) { s.Annotations.Name = "" }, "name is required"},
		{"bad name", func(s *api.ServiceSpec) { s.Annotations.Name = "web server" }, "invalid service name"},
		{"long name", func(s *api.ServiceSpec) { s.Annotations.Name = strings.Repeat("a", 64) }, "longer than 63"},
		{"no mode", func(s *api.ServiceSpec) { s.Mode = nil }, "mode is missing"},
		{"no image", func(s *api.ServiceSpec) { s.Task.Container.Image = "" }, "an image is required"},
		{"bad image", func(s *api.ServiceSpec) { s.Task.Container.Image = "bad image:1" }, "invalid image reference"},
		{"bad env", func(s *api.ServiceSpec) { s.Task.Container.Env = []string{"=x"} }, "invalid environment variable"},
		{"bad signal", func(s *api.ServiceSpec) { s.Task.Container.StopSignal = "SIGFOO" }, "invalid stop signal"},
		{"relative dir", func(s *api.ServiceSpec) { s.Task.Container.Dir = "rel" }, "absolute path"},
		{"negative grace", func(s *api.ServiceSpec) { s.Task.Container.StopGracePeriod = durationpb.New(-time.Second) }, "must not be negative"},
		{"relative mount", func(s *api.ServiceSpec) {
			s.Task.Container.Mounts = []*api.Mount{{Type: api.Mount_TMPFS, Target: "tmp"}}
		}, "mount target"},
		{"tiny memory", func(s *api.ServiceSpec) {
			s.Task.Resources = &api.ResourceRequirements{Limits: &api.Resources{MemoryBytes: 1 << 20}}
		}, "below the minimum"},
		{"reservation over limit", func(s *api.ServiceSpec) {
			s.Task.Resources = &api.ResourceRequirements{Limits: &api.Resources{MemoryBytes: 64 << 20}, Reservations: &api.Resources{MemoryBytes: 128 << 20}}
		}, "larger than the memory limit"},
		{"bad constraint", func(s *api.ServiceSpec) {
			s.Task.Placement = &api.Placement{Constraints: []string{"node.colour==blue"}}
		}, "constraint"},
		{"max replicas on global", func(s *api.ServiceSpec) {
			s.Mode = &api.ServiceSpec_Global{Global: &api.GlobalService{}}
			s.Task.Placement = &api.Placement{MaxReplicas: 1}
		}, "global service"},
		{"bad ratio", func(s *api.ServiceSpec) { s.Update = &api.UpdateConfig{MaxFailureRatio: 2} }, "between 0 and 1"},
		{"duplicate port", func(s *api.ServiceSpec) {
			s.Endpoint = &api.EndpointSpec{Ports: []*api.PortConfig{{TargetPort: 80, PublishedPort: 8080}, {TargetPort: 81, PublishedPort: 8080}}}
		}, "used twice"},
		{"port range", func(s *api.ServiceSpec) {
			s.Endpoint = &api.EndpointSpec{Ports: []*api.PortConfig{{TargetPort: 70000}}}
		}, "invalid target port"},
		{"dnsrr with ingress", func(s *api.ServiceSpec) {
			s.Endpoint = &api.EndpointSpec{Mode: api.EndpointSpec_DNSRR, Ports: []*api.PortConfig{{TargetPort: 80, PublishedPort: 80}}}
		}, "dnsrr"},
		{"health interval under 1ms", func(s *api.ServiceSpec) {
			s.Task.Container.Healthcheck = &api.HealthConfig{Interval: durationpb.New(500 * time.Microsecond)}
		}, "at least 1ms"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := proto.Clone(validSpec()).(*api.ServiceSpec)
			c.change(s)
			err := ValidateService(s)
			if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an invalid-argument error containing %q", err, c.want)
			}
		})
	}
}
