package containerd

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
)

// Unit tests of the pure parts of health checks and of the secret and
// config layout; no runtime, no sleeps.

func TestResolveHealth(t *testing.T) {
	ms := time.Millisecond
	img := &imageHealth{Test: []string{"CMD", "wget", "-q", "http://127.0.0.1/health"}, Interval: 5 * time.Second, Timeout: 2 * time.Second, StartPeriod: 10 * time.Second, Retries: 5}
	for _, tc := range []struct {
		name string
		spec *api.HealthConfig
		img  *imageHealth
		want *healthConfig
		err  string
	}{
		{name: "none anywhere"},
		{name: "spec timings without a test and no image test", spec: &api.HealthConfig{Interval: durationpb.New(time.Second)}},
		{name: "image only", img: img, want: &healthConfig{Args: []string{"wget", "-q", "http://127.0.0.1/health"}, Interval: 5 * time.Second, Timeout: 2 * time.Second, StartPeriod: 10 * time.Second, Retries: 5}},
		{name: "NONE in the spec disables the image's", spec: &api.HealthConfig{Test: []string{"NONE"}}, img: img},
		{name: "NONE in the image", img: &imageHealth{Test: []string{"NONE"}, Interval: time.Second}},
		{
			name: "spec defaults filled", spec: &api.HealthConfig{Test: []string{"CMD-SHELL", "test -f /tmp/ready"}},
			want: &healthConfig{Args: []string{"/bin/sh", "-c", "test -f /tmp/ready"}, Interval: api.DefaultHealthInterval, Timeout: api.DefaultHealthTimeout, Retries: api.DefaultHealthRetries},
		},
		{
			name: "spec fields over the image's, test inherited",
			spec: &api.HealthConfig{Interval: durationpb.New(200 * ms), Retries: 2, StartInterval: durationpb.New(50 * ms)},
			img:  img,
			want: &healthConfig{Args: []string{"wget", "-q", "http://127.0.0.1/health"}, Interval: 200 * ms, Timeout: 2 * time.Second, StartPeriod: 10 * time.Second, StartInterval: 50 * ms, Retries: 2},
		},
		{
			name: "spec test over the image's, timings inherited",
			spec: &api.HealthConfig{Test: []string{"CMD", "true"}}, img: img,
			want: &healthConfig{Args: []string{"true"}, Interval: 5 * time.Second, Timeout: 2 * time.Second, StartPeriod: 10 * time.Second, Retries: 5},
		},
		{name: "unknown type", spec: &api.HealthConfig{Test: []string{"SHELL", "x"}}, err: `unknown healthcheck type "SHELL"`},
		{name: "CMD without command", spec: &api.HealthConfig{Test: []string{"CMD"}}, err: "without a command"},
		{name: "CMD-SHELL without command", spec: &api.HealthConfig{Test: []string{"CMD-SHELL"}}, err: "without a command"},
		{name: "negative interval", spec: &api.HealthConfig{Test: []string{"CMD", "true"}, Interval: durationpb.New(-time.Second)}, err: "interval"},
		{name: "sub-millisecond timeout", spec: &api.HealthConfig{Test: []string{"CMD", "true"}, Timeout: durationpb.New(time.Microsecond)}, err: "timeout"},
		{name: "negative retries", spec: &api.HealthConfig{Test: []string{"CMD", "true"}, Retries: -1}, err: "retries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveHealth(tc.spec, tc.img)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestResolveSpecRejectsBadHealthcheck(t *testing.T) {
	task := &api.Task{Id: "x", Spec: &api.TaskSpec{Container: &api.ContainerSpec{Image: "i", Healthcheck: &api.HealthConfig{Test: []string{"BOGUS"}}}}}
	if _, err := resolveSpec(task, newTemplateContext(task, "", ""), imageDefaults{Cmd: []string{"x"}}, &Config{}); err == nil {
		t.Fatal("resolveSpec accepted an unknown healthcheck type")
	}
	task.Spec.Container.Healthcheck = nil
	rs, err := resolveSpec(task, newTemplateContext(task, "", ""), imageDefaults{Cmd: []string{"x"}, Healthcheck: &imageHealth{Test: []string{"CMD-SHELL", "true"}}}, &Config{})
	if err != nil || rs.Health == nil || rs.Health.Args[0] != "/bin/sh" {
		t.Fatalf("image health check not resolved: %+v, %v", rs, err)
	}
}

func TestParseImageConfig(t *testing.T) {
	blob := `{"architecture":"amd64","os":"linux","config":{"Cmd":["sleep","1"],"Env":["A=b"],
		"Healthcheck":{"Test":["CMD-SHELL","wget -q -O- http://127.0.0.1/health"],"Interval":200000000,"Timeout":1000000000,"StartPeriod":3000000000,"StartInterval":50000000,"Retries":2}},
		"rootfs":{"type":"layers","diff_ids":[]}}`
	img, h, err := parseImageConfig([]byte(blob))
	if err != nil {
		t.Fatal(err)
	}
	if img.Config.Cmd[1] != "1" || img.Config.Env[0] != "A=b" {
		t.Errorf("OCI config = %+v", img.Config)
	}
	want := &imageHealth{Test: []string{"CMD-SHELL", "wget -q -O- http://127.0.0.1/health"}, Interval: 200 * time.Millisecond, Timeout: time.Second, StartPeriod: 3 * time.Second, StartInterval: 50 * time.Millisecond, Retries: 2}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("health = %+v, want %+v", h, want)
	}
	if _, h, err := parseImageConfig([]byte(`{"config":{}}`)); err != nil || h != nil {
		t.Errorf("no healthcheck: %+v, %v", h, err)
	}
	if _, _, err := parseImageConfig([]byte(`{`)); err == nil {
		t.Error("bad JSON accepted")
	}
}

func TestHealthFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if hc, err := readHealth(dir); hc != nil || err != nil {
		t.Fatalf("no file: %v, %v", hc, err)
	}
	if err := writeHealth(dir, nil); err != nil {
		t.Fatal(err)
	}
	in := &healthConfig{Args: []string{"/bin/sh", "-c", "true"}, Interval: time.Second, Timeout: 2 * time.Second, StartPeriod: 3 * time.Second, StartInterval: 4 * time.Millisecond, Retries: 5}
	if err := writeHealth(dir, in); err != nil {
		t.Fatal(err)
	}
	out, err := readHealth(dir)
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("read back %+v, %v", out, err)
	}
}

func TestHealthTracker(t *testing.T) {
	s := time.Second
	hc := &healthConfig{Interval: s, Retries: 3, StartPeriod: 10 * s}
	type probe struct {
		ok    bool
		at    time.Duration
		want  healthStatus
		fails int
	}
	for _, tc := range []struct {
		name   string
		probes []probe
	}{
		{"failures in the start period do not count", []probe{
			{false, 1 * s, healthStarting, 0}, {false, 2 * s, healthStarting, 0}, {false, 3 * s, healthStarting, 0},
			{false, 9 * s, healthStarting, 0}, {true, 9500 * time.Millisecond, healthHealthy, 0},
		}},
		{"after the start period retries failures are unhealthy", []probe{
			{false, 9 * s, healthStarting, 0}, {false, 10 * s, healthStarting, 1}, {false, 11 * s, healthStarting, 2},
			{false, 12 * s, healthUnhealthy, 3},
		}},
		{"a pass resets the count", []probe{
			{false, 10 * s, healthStarting, 1}, {false, 11 * s, healthStarting, 2}, {true, 12 * s, healthHealthy, 0},
			{false, 13 * s, healthHealthy, 1}, {false, 14 * s, healthHealthy, 2}, {true, 15 * s, healthHealthy, 0},
		}},
		{"once healthy, the start period no longer excuses failures", []probe{
			{true, 1 * s, healthHealthy, 0}, {false, 2 * s, healthHealthy, 1}, {false, 3 * s, healthHealthy, 2},
			{false, 4 * s, healthUnhealthy, 3},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tr healthTracker
			for i, p := range tc.probes {
				if got := tr.observe(hc, p.ok, p.at); got != p.want || tr.failures != p.fails {
					t.Fatalf("probe %d (ok=%v at %s) = %v with %d failures, want %v with %d", i, p.ok, p.at, got, tr.failures, p.want, p.fails)
				}
			}
		})
	}
	// No start period, one retry: the first failure is fatal.
	var tr healthTracker
	if got := tr.observe(&healthConfig{Retries: 1}, false, 0); got != healthUnhealthy {
		t.Errorf("retries 1: %v", got)
	}
}

func TestNextInterval(t *testing.T) {
	s := time.Second
	hc := &healthConfig{Interval: 30 * s, StartPeriod: 10 * s, StartInterval: s}
	var tr healthTracker
	if got := tr.nextInterval(hc, 0); got != s {
		t.Errorf("in the start period: %s, want the start interval", got)
	}
	if got := tr.nextInterval(hc, 10*s); got != 30*s {
		t.Errorf("after the start period: %s, want the interval", got)
	}
	tr.observe(hc, true, 2*s)
	if got := tr.nextInterval(hc, 3*s); got != 30*s {
		t.Errorf("healthy in the start period: %s, want the interval", got)
	}
	var fresh healthTracker
	if got := fresh.nextInterval(&healthConfig{Interval: 30 * s, StartPeriod: 10 * s}, 0); got != 30*s {
		t.Errorf("no start interval: %s, want the interval", got)
	}
}

func TestBoundedBufferAndUnhealthyError(t *testing.T) {
	b := &boundedBuffer{max: 8}
	for _, s := range []string{"hello ", "world", "!!!"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if b.String() != "hello wo" {
		t.Errorf("kept %q", b.String())
	}
	err := unhealthyError(probeResult{ExitCode: 1, Output: "  not ready\n"})
	if !errors.Is(err, errUnhealthy) || err.Error() != "container unhealthy: not ready" {
		t.Errorf("unhealthyError = %v", err)
	}
	if err := unhealthyError(probeResult{ExitCode: 1}); err.Error() != "container unhealthy: health check exited with code 1 and no output" {
		t.Errorf("unhealthyError without output = %v", err)
	}
	ee := &worker.ExitError{Code: 137, Cause: err}
	if !strings.Contains(ee.Error(), "container unhealthy") {
		t.Errorf("ExitError = %v", ee)
	}
}

func TestPlanDeps(t *testing.T) {
	cs := &api.ContainerSpec{
		Secrets: []*api.SecretReference{
			{SecretId: "s1", SecretName: "db_pass"},
			{SecretId: "s2", SecretName: "tls", File: &api.FileTarget{Name: "certs/key.pem", Uid: "1000", Gid: "1001", Mode: 0o400}},
			{SecretId: "s3", SecretName: "abs", File: &api.FileTarget{Name: "/etc/app/secret"}},
			{SecretId: "s4", SecretName: "in-run", File: &api.FileTarget{Name: "/run/secrets/other"}},
		},
		Configs: []*api.ConfigReference{
			{ConfigId: "c1", ConfigName: "app.conf"},
			{ConfigId: "c2", ConfigName: "nginx", File: &api.FileTarget{Name: "/etc/nginx/nginx.conf", Mode: 0o640}},
		},
	}
	taken := map[string]bool{"/data": true}
	files, err := planDeps(cs, taken)
	if err != nil {
		t.Fatal(err)
	}
	want := []depFile{
		{Kind: kindSecret, ID: "s1", Name: "db_pass", Rel: "run/db_pass", Target: "/run/secrets/db_pass", Mode: 0o444},
		{Kind: kindSecret, ID: "s2", Name: "tls", Rel: "run/certs/key.pem", Target: "/run/secrets/certs/key.pem", UID: 1000, GID: 1001, Mode: 0o400},
		{Kind: kindSecret, ID: "s3", Name: "abs", Rel: "files/2", Target: "/etc/app/secret", Own: true, Mode: 0o444},
		{Kind: kindSecret, ID: "s4", Name: "in-run", Rel: "run/other", Target: "/run/secrets/other", Mode: 0o444},
		{Kind: kindConfig, ID: "c1", Name: "app.conf", Rel: "files/4", Target: "/app.conf", Own: true, Mode: 0o444},
		{Kind: kindConfig, ID: "c2", Name: "nginx", Rel: "files/5", Target: "/etc/nginx/nginx.conf", Own: true, Mode: 0o640},
	}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("planDeps =\n%+v\nwant\n%+v", files, want)
	}
	for _, p := range []string{"/run/secrets", "/etc/app/secret", "/app.conf", "/etc/nginx/nginx.conf", "/data"} {
		if !taken[p] {
			t.Errorf("%s not taken", p)
		}
	}
	mounts := depMounts("/d", files)
	if len(mounts) != 4 || mounts[0].Destination != "/run/secrets" || mounts[0].Source != "/d/run" || mounts[1].Source != "/d/files/2" || mounts[3].Destination != "/etc/nginx/nginx.conf" {
		t.Errorf("depMounts = %+v", mounts)
	}
	for _, m := range mounts {
		if m.Options[len(m.Options)-1] != "ro" {
			t.Errorf("mount %s not read-only", m.Destination)
		}
	}

	bad := map[string]*api.ContainerSpec{
		"escaping name":       {Secrets: []*api.SecretReference{{SecretId: "s", SecretName: "x", File: &api.FileTarget{Name: "../etc/passwd"}}}},
		"dot name":            {Configs: []*api.ConfigReference{{ConfigId: "c", ConfigName: "x", File: &api.FileTarget{Name: "."}}}},
		"no name":             {Secrets: []*api.SecretReference{{SecretId: "s"}}},
		"no ID":               {Secrets: []*api.SecretReference{{SecretName: "x"}}},
		"duplicate secret":    {Secrets: []*api.SecretReference{{SecretId: "a", SecretName: "x"}, {SecretId: "b", SecretName: "x"}}},
		"config on user":      {Configs: []*api.ConfigReference{{ConfigId: "c", ConfigName: "x", File: &api.FileTarget{Name: "/data"}}}},
		"bad uid":             {Secrets: []*api.SecretReference{{SecretId: "s", SecretName: "x", File: &api.FileTarget{Uid: "root"}}}},
		"file below a file":   {Configs: []*api.ConfigReference{{ConfigId: "a", ConfigName: "a", File: &api.FileTarget{Name: "/a"}}, {ConfigId: "b", ConfigName: "b", File: &api.FileTarget{Name: "/a/b"}}}},
		"config in /run/secr": {Secrets: []*api.SecretReference{{SecretId: "s", SecretName: "x"}}, Configs: []*api.ConfigReference{{ConfigId: "c", ConfigName: "y", File: &api.FileTarget{Name: "/run/secrets/y"}}}},
		"secret on root":      {Secrets: []*api.SecretReference{{SecretId: "s", SecretName: "x", File: &api.FileTarget{Name: "/"}}}},
	}
	for name, cs := range bad {
		if _, err := planDeps(cs, map[string]bool{"/data": true}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := planDeps(&api.ContainerSpec{Secrets: []*api.SecretReference{{SecretId: "s", SecretName: "x"}}}, map[string]bool{"/run/secrets": true}); err == nil {
		t.Error("a user mount at /run/secrets beside secrets accepted")
	}
}

type fakeDeps struct {
	secrets map[string]*api.Secret
	configs map[string]*api.Config
}

func (f *fakeDeps) Secret(id string) (*api.Secret, bool) { s, ok := f.secrets[id]; return s, ok }
func (f *fakeDeps) Config(id string) (*api.Config, bool) { c, ok := f.configs[id]; return c, ok }

func TestDepData(t *testing.T) {
	files := []depFile{{Kind: kindSecret, ID: "s1", Name: "db"}, {Kind: kindConfig, ID: "c1", Name: "conf"}}
	deps := &fakeDeps{
		secrets: map[string]*api.Secret{"s1": {Id: "s1", Spec: &api.SecretSpec{Data: []byte("pw")}}},
		configs: map[string]*api.Config{"c1": {Id: "c1", Spec: &api.ConfigSpec{Data: []byte("cfg")}}},
	}
	data, err := depData(deps, files)
	if err != nil || string(data[0]) != "pw" || string(data[1]) != "cfg" {
		t.Fatalf("depData = %q, %v", data, err)
	}
	_, err = depData(&fakeDeps{}, files)
	if err == nil || !strings.Contains(err.Error(), "secret db (s1) is not assigned to this node") ||
		!strings.Contains(err.Error(), "config conf (c1) is not assigned to this node") || worker.IsRejected(err) {
		t.Errorf("missing: %v", err)
	}
	if _, err := depData(nil, files[:1]); err == nil {
		t.Error("nil deps: no error")
	}
}

func TestTeardownDepsWithoutMount(t *testing.T) {
	testutil.RequiresRoot(t) // umount(2), even of a plain directory, needs CAP_SYS_ADMIN
	dir := t.TempDir()
	if err := teardownDeps(dir + "/none"); err != nil {
		t.Errorf("missing dir: %v", err)
	}
	if err := teardownDeps(dir); err != nil {
		t.Errorf("plain dir: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("plain dir gone: %v", err)
	}
}
