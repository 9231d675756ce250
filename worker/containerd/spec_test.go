package containerd

import (
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	api "github.com/shoal-project/shoal/proto"
)

func specTask(cs *api.ContainerSpec) *api.Task {
	if cs.Image == "" {
		cs.Image = "img"
	}
	return &api.Task{
		Id: "abcdefghijklmnopqrstuvwxy", ServiceId: "svc1", Slot: 3, NodeId: "node9",
		ServiceAnnotations: &api.Annotations{Name: "web", Labels: map[string]string{"tier": "front"}},
		Spec:               &api.TaskSpec{Container: cs},
	}
}

func resolve(t *testing.T, cs *api.ContainerSpec, img imageDefaults) *runSpec {
	t.Helper()
	task := specTask(cs)
	rs, err := resolveSpec(task, newTemplateContext(task, "node9", "host9"), img, &Config{DataDir: "/d"})
	if err != nil {
		t.Fatalf("resolveSpec: %v", err)
	}
	return rs
}

// The table follows Docker's rules for combining a service's command and
// args with the image's ENTRYPOINT and CMD.
func TestArgsAsDocker(t *testing.T) {
	img := imageDefaults{Entrypoint: []string{"/entry", "-x"}, Cmd: []string{"default", "cmd"}}
	for _, tc := range []struct {
		name          string
		command, args []string
		img           imageDefaults
		want          []string
	}{
		{"image defaults", nil, nil, img, []string{"/entry", "-x", "default", "cmd"}},
		{"args replace cmd", nil, []string{"a"}, img, []string{"/entry", "-x", "a"}},
		{"command drops image cmd", []string{"/other"}, nil, img, []string{"/other"}},
		{"command and args", []string{"/other"}, []string{"a", "b"}, img, []string{"/other", "a", "b"}},
		{"cmd only image", nil, nil, imageDefaults{Cmd: []string{"sh"}}, []string{"sh"}},
		{"args over cmd only image", nil, []string{"ls", "/"}, imageDefaults{Cmd: []string{"sh"}}, []string{"ls", "/"}},
	} {
		rs := resolve(t, &api.ContainerSpec{Command: tc.command, Args: tc.args}, tc.img)
		if !slices.Equal(rs.Args, tc.want) {
			t.Errorf("%s: args = %q, want %q", tc.name, rs.Args, tc.want)
		}
	}
	task := specTask(&api.ContainerSpec{})
	if _, err := resolveSpec(task, newTemplateContext(task, "", ""), imageDefaults{}, &Config{}); err == nil || !strings.Contains(err.Error(), "no command") {
		t.Errorf("no command anywhere: %v", err)
	}
}

func TestEnvAndDefaults(t *testing.T) {
	rs := resolve(t, &api.ContainerSpec{
		Env: []string{"B=spec", "C=new", "UNSET", "T={{.Task.Name}}/{{.Node.Hostname}}/{{index .Service.Labels \"tier\"}}"},
	}, imageDefaults{Cmd: []string{"x"}, Env: []string{"PATH=/img/bin", "A=img", "B=img", "UNSET=x"}, WorkingDir: "/app", User: "app", StopSignal: "SIGQUIT"})
	want := []string{"PATH=/img/bin", "HOSTNAME=abcdefghijkl", "A=img", "B=spec", "C=new", "T=web.3.abcdefghijklmnopqrstuvwxy/host9/front"}
	if !slices.Equal(rs.Env, want) {
		t.Errorf("env = %q\nwant  %q", rs.Env, want)
	}
	if rs.Cwd != "/app" || rs.User != "app" || rs.StopSignal != syscall.SIGQUIT || rs.StopGrace != 10*time.Second {
		t.Errorf("cwd %q user %q signal %v grace %s", rs.Cwd, rs.User, rs.StopSignal, rs.StopGrace)
	}
	if rs.Hostname != "abcdefghijkl" {
		t.Errorf("default hostname = %q, want the first 12 characters of the task ID", rs.Hostname)
	}
	rs = resolve(t, &api.ContainerSpec{Dir: "/w", User: "1000:1000", StopSignal: "usr1", StopGracePeriod: durationpb.New(time.Second),
		Hostname: "{{.Service.Name}}-{{.Task.Slot}}-{{.Node.ID}}"}, imageDefaults{Cmd: []string{"x"}, WorkingDir: "/app", User: "app"})
	if rs.Cwd != "/w" || rs.User != "1000:1000" || rs.StopSignal != syscall.SIGUSR1 || rs.StopGrace != time.Second || rs.Hostname != "web-3-node9" {
		t.Errorf("overrides: cwd %q user %q signal %v grace %s hostname %q", rs.Cwd, rs.User, rs.StopSignal, rs.StopGrace, rs.Hostname)
	}
	if !slices.Contains(rs.Env, "PATH="+strings.TrimPrefix(defaultPathEnv, "PATH=")) {
		t.Errorf("no default PATH: %q", rs.Env)
	}
}

func TestLimitsAndLabels(t *testing.T) {
	cs := &api.ContainerSpec{Labels: map[string]string{"a": "b", LabelTaskID: "spoof"}}
	task := specTask(cs)
	task.Spec.Resources = &api.ResourceRequirements{Limits: &api.Resources{NanoCpus: 1_500_000_000, MemoryBytes: 32 << 20, Pids: 7}}
	rs, err := resolveSpec(task, newTemplateContext(task, "n", "h"), imageDefaults{Cmd: []string{"x"}}, &Config{})
	if err != nil {
		t.Fatal(err)
	}
	if rs.CPUQuota != 150000 || rs.Memory != 32<<20 || rs.Pids != 7 {
		t.Errorf("quota %d memory %d pids %d", rs.CPUQuota, rs.Memory, rs.Pids)
	}
	if rs.Labels[LabelTaskID] != task.Id || rs.Labels[LabelServiceID] != "svc1" || rs.Labels[LabelNodeID] != "node9" || rs.Labels["a"] != "b" {
		t.Errorf("labels = %v", rs.Labels)
	}
}

func TestMounts(t *testing.T) {
	dir := t.TempDir()
	rs := resolve(t, &api.ContainerSpec{Mounts: []*api.Mount{
		{Type: api.Mount_BIND, Source: dir, Target: "/b", ReadOnly: true},
		{Type: api.Mount_TMPFS, Target: "/t", TmpfsSizeBytes: 4096, TmpfsMode: 0o700},
		{Type: api.Mount_VOLUME, Source: "data-{{.Task.Slot}}", Target: "/v"},
		{Type: api.Mount_VOLUME, Target: "/anon"},
	}}, imageDefaults{Cmd: []string{"x"}})
	if len(rs.Mounts) != 4 {
		t.Fatalf("mounts = %v", rs.Mounts)
	}
	if m := rs.Mounts[0]; m.Source != dir || m.Destination != "/b" || !slices.Contains(m.Options, "ro") {
		t.Errorf("bind = %v", m)
	}
	if m := rs.Mounts[1]; m.Type != "tmpfs" || !slices.Contains(m.Options, "size=4096") || !slices.Contains(m.Options, "mode=700") {
		t.Errorf("tmpfs = %v", m)
	}
	if m := rs.Mounts[2]; m.Source != "/d/volumes/data-3/_data" {
		t.Errorf("named volume = %v", m)
	}
	if m := rs.Mounts[3]; !strings.HasPrefix(m.Source, "/d/tasks/abcdefghijklmnopqrstuvwxy/volumes/") {
		t.Errorf("anonymous volume = %v", m)
	}
	if len(rs.VolumeDirs) != 2 {
		t.Errorf("volume dirs = %v", rs.VolumeDirs)
	}
}

func TestInvalidSpecs(t *testing.T) {
	for name, cs := range map[string]*api.ContainerSpec{
		"relative target":   {Mounts: []*api.Mount{{Type: api.Mount_TMPFS, Target: "rel"}}},
		"root target":       {Mounts: []*api.Mount{{Type: api.Mount_TMPFS, Target: "/"}}},
		"duplicate target":  {Mounts: []*api.Mount{{Type: api.Mount_TMPFS, Target: "/a"}, {Type: api.Mount_TMPFS, Target: "/a/"}}},
		"relative bind":     {Mounts: []*api.Mount{{Type: api.Mount_BIND, Source: "rel", Target: "/a"}}},
		"tmpfs with source": {Mounts: []*api.Mount{{Type: api.Mount_TMPFS, Source: "/x", Target: "/a"}}},
		"bad volume name":   {Mounts: []*api.Mount{{Type: api.Mount_VOLUME, Source: "../x", Target: "/a"}}},
		"bad env":           {Env: []string{"=x"}},
		"bad signal":        {StopSignal: "SIGFOO"},
		"bad template":      {Env: []string{"A={{.Nope}}"}},
		"bad hostname":      {Hostname: "a b"},
		"negative grace":    {StopGracePeriod: durationpb.New(-time.Second)},
		"bad ulimit":        {Ulimits: []*api.Ulimit{{Name: "nofile", Soft: 10, Hard: 5}}},
	} {
		task := specTask(cs)
		if _, err := resolveSpec(task, newTemplateContext(task, "", ""), imageDefaults{Cmd: []string{"x"}}, &Config{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := resolveSpec(&api.Task{Id: "x"}, &templateContext{}, imageDefaults{}, &Config{}); err == nil {
		t.Error("task without a container spec accepted")
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"": syscall.SIGTERM, "SIGINT": syscall.SIGINT, "term": syscall.SIGTERM, "9": syscall.SIGKILL, "SIGRTMIN": 0} {
		got, err := parseSignal(in)
		if want == 0 {
			continue // platform-dependent spelling; only must not panic
		}
		if err != nil || got != want {
			t.Errorf("parseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"0", "99", "NOPE"} {
		if _, err := parseSignal(bad); err == nil {
			t.Errorf("parseSignal(%q) accepted", bad)
		}
	}
}

func TestTaskName(t *testing.T) {
	task := specTask(&api.ContainerSpec{})
	if n := TaskName(task); n != "web.3.abcdefghijklmnopqrstuvwxy" {
		t.Errorf("replicated name = %q", n)
	}
	task.Slot = 0
	if n := TaskName(task); n != "web.node9.abcdefghijklmnopqrstuvwxy" {
		t.Errorf("global name = %q", n)
	}
	tc := newTemplateContext(task, "", "")
	if tc.Task.Slot != "node9" {
		t.Errorf("global slot = %q", tc.Task.Slot)
	}
	task.Annotations = &api.Annotations{Name: "given"}
	if n := TaskName(task); n != "given" {
		t.Errorf("annotated name = %q", n)
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"A=1", "B=2", "A=3", "C", "C=4", "B"})
	if want := []string{"A=3", "C=4"}; !slices.Equal(got, want) {
		t.Errorf("mergeEnv = %q, want %q", got, want)
	}
}
