package controlapi

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

func labelsOf(n, size int) map[string]string {
	m := map[string]string{}
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("l%04d", i)
		m[k] = strings.Repeat("v", max(0, size-len(k)))
	}
	return m
}

func listOf(n int, s string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// TestEachLimitIsRefusedWithItsMessage: every documented limit of a service
// spec is refused, with a message that names the limit and the value.
func TestEachLimitIsRefusedWithItsMessage(t *testing.T) {
	hugeEnv := listOf(12, "A="+strings.Repeat("x", 128<<10))
	hugeSize := func() int {
		s := validSpec()
		s.Task.Container.Env = hugeEnv
		return proto.Size(s)
	}()
	longName := strings.Repeat("a", 100000)
	cases := []struct {
		name   string
		change func(*api.ServiceSpec)
		want   string
	}{
		{"spec size", func(s *api.ServiceSpec) { s.Task.Container.Env = hugeEnv },
			fmt.Sprintf("service spec is %s; the limit is 256 KiB: move large data (environment, labels, files) into a config or secret", api.FormatBytes(int64(hugeSize)))},
		{"label count", func(s *api.ServiceSpec) { s.Annotations.Labels = labelsOf(1001, 6) },
			"1001 service labels; the limit is 1000"},
		{"label size", func(s *api.ServiceSpec) { s.Annotations.Labels = labelsOf(1, 65<<10) },
			"service label \"l0000\" is 65 KiB; the limit is 64 KiB per label"},
		{"labels total", func(s *api.ServiceSpec) { s.Annotations.Labels = labelsOf(3, 60<<10) },
			"service labels are 180 KiB together; the limit is 128 KiB"},
		{"container labels total", func(s *api.ServiceSpec) { s.Task.Container.Labels = labelsOf(3, 60<<10) },
			"container labels are 180 KiB together; the limit is 128 KiB"},
		{"env count", func(s *api.ServiceSpec) { s.Task.Container.Env = listOf(4097, "A=1") },
			"4097 environment variables; the limit is 4096"},
		{"env entry", func(s *api.ServiceSpec) { s.Task.Container.Env = []string{"A=" + strings.Repeat("x", 128<<10)} },
			`environment variable "A=` + strings.Repeat("x", 62) + `"…(131074 bytes) is 131074 bytes; the limit is 131071 bytes per variable (Linux's)`},
		{"arg count", func(s *api.ServiceSpec) { s.Task.Container.Args = listOf(4097, "x") },
			"command and arguments have 4097 entries; the limit is 4096"},
		{"secrets", func(s *api.ServiceSpec) {
			for i := 0; i < 101; i++ {
				s.Task.Container.Secrets = append(s.Task.Container.Secrets, &api.SecretReference{SecretName: fmt.Sprint("s", i)})
			}
		}, "service uses 101 secrets; the limit is 100 per service"},
		{"configs", func(s *api.ServiceSpec) {
			for i := 0; i < 101; i++ {
				s.Task.Container.Configs = append(s.Task.Container.Configs, &api.ConfigReference{ConfigName: fmt.Sprint("c", i)})
			}
		}, "service uses 101 configs; the limit is 100 per service"},
		{"replicas", func(s *api.ServiceSpec) { s.GetReplicated().Replicas = math.MaxUint64 },
			"replicas 18446744073709551615 is too large: the maximum is 1000000"},
		{"job completions", func(s *api.ServiceSpec) {
			s.Mode = &api.ServiceSpec_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{TotalCompletions: 2_000_000}}
		}, "total completions 2000000 is too large: the maximum is 1000000"},
		{"name not UTF-8", func(s *api.ServiceSpec) { s.Annotations.Name = "web\xff" },
			`service spec field annotations.name is not valid UTF-8 ("web\xff"): text fields must be UTF-8`},
		{"env not UTF-8", func(s *api.ServiceSpec) { s.Task.Container.Env = []string{"A=1", "B=\xc3"} },
			`service spec field task.container.env[1] is not valid UTF-8 ("B=\xc3"): text fields must be UTF-8`},
		{"label not UTF-8", func(s *api.ServiceSpec) { s.Annotations.Labels = map[string]string{"k": "\xfe"} },
			`service spec field annotations.labels["k"] is not valid UTF-8 ("\xfe"): text fields must be UTF-8`},
		{"image not UTF-8", func(s *api.ServiceSpec) { s.Task.Container.Image = "nginx\xff" },
			`service spec field task.container.image is not valid UTF-8 ("nginx\xff"): text fields must be UTF-8`},
		{"long name echo is cut", func(s *api.ServiceSpec) { s.Annotations.Name = longName },
			`service name "` + strings.Repeat("a", 64) + `"…(100000 bytes) is longer than 63 characters`},
		{"ratio NaN", func(s *api.ServiceSpec) { s.Update = &api.UpdateConfig{MaxFailureRatio: float32(math.NaN())} },
			"update max failure ratio must be a number between 0 and 1 (got NaN)"},
		{"ratio +Inf", func(s *api.ServiceSpec) { s.Rollback = &api.UpdateConfig{MaxFailureRatio: float32(math.Inf(1))} },
			"rollback max failure ratio must be a number between 0 and 1 (got +Inf)"},
		{"ratio -Inf", func(s *api.ServiceSpec) { s.Update = &api.UpdateConfig{MaxFailureRatio: float32(math.Inf(-1))} },
			"update max failure ratio must be a number between 0 and 1 (got -Inf)"},
		{"stop grace period", func(s *api.ServiceSpec) { s.Task.Container.StopGracePeriod = durationpb.New(2 * time.Hour) },
			"stop grace period 2h0m0s is too large: the maximum is 1h0m0s"},
		{"stop grace period of 292 years", func(s *api.ServiceSpec) { s.Task.Container.StopGracePeriod = durationpb.New(math.MaxInt64) },
			"stop grace period 2562047h47m16.854775807s is too large: the maximum is 1h0m0s"},
		{"stop grace period beyond int64 nanoseconds", func(s *api.ServiceSpec) {
			s.Task.Container.StopGracePeriod = &durationpb.Duration{Seconds: 1 << 40}
		}, "stop grace period 1099511627776s is too large: the maximum is 1h0m0s"},
		{"negative grace", func(s *api.ServiceSpec) { s.Task.Container.StopGracePeriod = durationpb.New(-time.Second) },
			"stop grace period must not be negative (got -1s)"},
		{"restart delay", func(s *api.ServiceSpec) { s.Task.Restart = &api.RestartPolicy{Delay: durationpb.New(25 * time.Hour)} },
			"restart delay 25h0m0s is too large: the maximum is 1h0m0s"},
		{"restart window", func(s *api.ServiceSpec) {
			s.Task.Restart = &api.RestartPolicy{Window: durationpb.New(8 * 24 * time.Hour)}
		},
			"restart window 192h0m0s is too large: the maximum is 168h0m0s"},
		{"update delay", func(s *api.ServiceSpec) { s.Update = &api.UpdateConfig{Delay: durationpb.New(90 * time.Minute)} },
			"update delay 1h30m0s is too large: the maximum is 1h0m0s"},
		{"rollback monitor", func(s *api.ServiceSpec) { s.Rollback = &api.UpdateConfig{Monitor: durationpb.New(2 * time.Hour)} },
			"rollback monitor 2h0m0s is too large: the maximum is 1h0m0s"},
		{"health interval", func(s *api.ServiceSpec) {
			s.Task.Container.Healthcheck = &api.HealthConfig{Interval: durationpb.New(61 * time.Minute)}
		}, "health interval 1h1m0s is too large: the maximum is 1h0m0s"},
		{"health start period", func(s *api.ServiceSpec) {
			s.Task.Container.Healthcheck = &api.HealthConfig{StartPeriod: &durationpb.Duration{Seconds: 1 << 50}}
		}, "health start period 1125899906842624s is too large: the maximum is 1h0m0s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := proto.Clone(validSpec()).(*api.ServiceSpec)
			c.change(s)
			wantError(t, ValidateServiceSpec(s), errdefs.ErrInvalidArgument, c.want)
		})
	}
	// At the limits, everything is accepted.
	s := validSpec()
	s.Annotations.Labels = labelsOf(2, 64<<10)
	s.GetReplicated().Replicas = api.MaxReplicas
	s.Task.Container.StopGracePeriod = durationpb.New(api.MaxStopGracePeriod)
	s.Update = &api.UpdateConfig{MaxFailureRatio: 1, Delay: durationpb.New(time.Hour), Monitor: durationpb.New(time.Hour)}
	if err := ValidateServiceSpec(s); err != nil {
		t.Errorf("a spec at the limits is refused: %v", err)
	}
}

// TestDataAndClusterLimits: configs, secrets, networks, nodes and the
// cluster spec are held to their limits too.
func TestDataAndClusterLimits(t *testing.T) {
	srv, _ := newTestServer(t)
	ctx := context.Background()
	_, err := srv.CreateConfig(ctx, &api.CreateConfigRequest{Spec: &api.ConfigSpec{
		Annotations: &api.Annotations{Name: "big"}, Data: make([]byte, api.MaxConfigDataBytes+1)}})
	wantError(t, err, errdefs.ErrInvalidArgument, "config big is 500 KiB (512001 bytes); the limit is 500 KiB")
	_, err = srv.CreateSecret(ctx, &api.CreateSecretRequest{Spec: &api.SecretSpec{
		Annotations: &api.Annotations{Name: "big"}, Data: make([]byte, 600<<10)}})
	wantError(t, err, errdefs.ErrInvalidArgument, "secret big is 600 KiB; the limit is 500 KiB")
	_, err = srv.CreateSecret(ctx, &api.CreateSecretRequest{Spec: &api.SecretSpec{
		Annotations: &api.Annotations{Name: "pw", Labels: map[string]string{"k\xff": "v"}}, Data: []byte("x")}})
	wantError(t, err, errdefs.ErrInvalidArgument, `secret field labels (a key) is not valid UTF-8 ("k\xff"): text fields must be UTF-8`)
	_, err = srv.CreateNetwork(ctx, &api.CreateNetworkRequest{Spec: &api.NetworkSpec{
		Annotations: &api.Annotations{Name: "net", Labels: labelsOf(1001, 6)}}})
	wantError(t, err, errdefs.ErrInvalidArgument, "1001 network labels; the limit is 1000")
	_, err = srv.CreateConfig(ctx, &api.CreateConfigRequest{Spec: &api.ConfigSpec{
		Annotations: &api.Annotations{Name: strings.Repeat("c", 65)}, Data: []byte("x")}})
	wantError(t, err, errdefs.ErrInvalidArgument, `config name "`+strings.Repeat("c", 64)+`"…(65 bytes) is longer than 64 characters`)
	// At the limit: accepted.
	if _, err := srv.CreateConfig(ctx, &api.CreateConfigRequest{Spec: &api.ConfigSpec{
		Annotations: &api.Annotations{Name: strings.Repeat("c", 64)}, Data: make([]byte, api.MaxConfigDataBytes)}}); err != nil {
		t.Errorf("a config at the limits is refused: %v", err)
	}

	for _, c := range []struct {
		spec *api.ClusterSpec
		want string
	}{
		{&api.ClusterSpec{Dispatcher: &api.DispatcherSettings{HeartbeatPeriod: durationpb.New(10 * time.Minute)}},
			"dispatcher heartbeat period 10m0s is too large: the maximum is 5m0s"},
		{&api.ClusterSpec{Dispatcher: &api.DispatcherSettings{HeartbeatPeriod: &durationpb.Duration{Seconds: math.MaxInt64}}},
			"dispatcher heartbeat period 9223372036854775807s is too large: the maximum is 5m0s"},
		{&api.ClusterSpec{CaConfig: &api.CASettings{NodeCertExpiry: durationpb.New(math.MaxInt64)}},
			"node certificate expiry 2562047h47m16.854775807s is too large: the maximum is 87600h0m0s"},
	} {
		_, err := srv.UpdateCluster(ctx, &api.UpdateClusterRequest{Spec: c.spec})
		wantError(t, err, errdefs.ErrInvalidArgument, c.want)
	}
	err = srv.store.Update(ctx, func(tx *raftstore.Tx) error {
		return tx.Create(&api.Node{Id: "node1", Spec: &api.NodeSpec{}, Description: &api.NodeDescription{Hostname: "h1"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = srv.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: "node1", Spec: &api.NodeSpec{Annotations: &api.Annotations{Labels: labelsOf(1, 70<<10)}}})
	wantError(t, err, errdefs.ErrInvalidArgument, `node label "l0000" is 70 KiB; the limit is 64 KiB per label`)
}
