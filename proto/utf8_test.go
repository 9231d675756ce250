package api_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	api "github.com/shoal-project/shoal/proto"
)

// rawSpec encodes a CreateServiceRequest by hand, as a client whose
// protobuf library does not check UTF-8 would send it: field 1 (spec) holds
// annotations (1) with a name (1) and a label (2: key 1, value 2), and a
// task (2) whose container (1) has two env entries (6).
func rawSpec(name, labelValue, env1 string) []byte {
	var label []byte
	label = protowire.AppendTag(label, 1, protowire.BytesType)
	label = protowire.AppendString(label, "k")
	label = protowire.AppendTag(label, 2, protowire.BytesType)
	label = protowire.AppendString(label, labelValue)
	var ann []byte
	ann = protowire.AppendTag(ann, 1, protowire.BytesType)
	ann = protowire.AppendString(ann, name)
	ann = protowire.AppendTag(ann, 2, protowire.BytesType)
	ann = protowire.AppendBytes(ann, label)
	var ctr []byte
	for _, e := range []string{"A=1", env1} {
		ctr = protowire.AppendTag(ctr, 6, protowire.BytesType)
		ctr = protowire.AppendString(ctr, e)
	}
	var task []byte
	task = protowire.AppendTag(task, 1, protowire.BytesType)
	task = protowire.AppendBytes(task, ctr)
	var spec []byte
	spec = protowire.AppendTag(spec, 1, protowire.BytesType)
	spec = protowire.AppendBytes(spec, ann)
	spec = protowire.AppendTag(spec, 2, protowire.BytesType)
	spec = protowire.AppendBytes(spec, task)
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	return protowire.AppendBytes(req, spec)
}

func TestInvalidUTF8NamesTheField(t *testing.T) {
	md := (&api.CreateServiceRequest{}).ProtoReflect().Descriptor()
	cases := []struct {
		name, label, env, want string
	}{
		{"web\xff", "v", "B=2", "spec.annotations.name"},
		{"web", "v\xfe", "B=2", `spec.annotations.labels["k"]`},
		{"web", "v", "B=\xc3", "spec.task.container.env[1]"},
	}
	for _, c := range cases {
		raw := rawSpec(c.name, c.label, c.env)
		path, _, ok := api.InvalidUTF8Wire(raw, md)
		if !ok || path != c.want {
			t.Errorf("wire: got %q (%v), want %q", path, ok, c.want)
		}
		req := &api.CreateServiceRequest{Spec: &api.ServiceSpec{
			Annotations: &api.Annotations{Name: c.name, Labels: map[string]string{"k": c.label}},
			Task:        &api.TaskSpec{Container: &api.ContainerSpec{Env: []string{"A=1", c.env}}},
		}}
		path, _, ok = api.InvalidUTF8(req)
		if !ok || path != c.want {
			t.Errorf("message: got %q (%v), want %q", path, ok, c.want)
		}
	}
	if _, _, ok := api.InvalidUTF8Wire(rawSpec("web", "v", "B=é"), md); ok {
		t.Error("valid UTF-8 reported as invalid")
	}
	bad := &api.ServiceSpec{Annotations: &api.Annotations{Labels: map[string]string{"\xff": "v"}}}
	if path, _, ok := api.InvalidUTF8(bad); !ok || path != "annotations.labels (a key)" {
		t.Errorf("map key: got %q", path)
	}
}

func TestEchoCutsLongValues(t *testing.T) {
	if got := api.Echo("web"); got != `"web"` {
		t.Errorf("short value: %s", got)
	}
	got := api.Echo(strings.Repeat("a", 100000))
	if want := `"` + strings.Repeat("a", 64) + `"…(100000 bytes)`; got != want {
		t.Errorf("long value: %s", got)
	}
	// Never cut inside a rune.
	if got := api.Echo(strings.Repeat("é", 40)); !strings.HasSuffix(got, `"…(80 bytes)`) || strings.Contains(got, `\x`) {
		t.Errorf("rune boundary: %s", got)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{512: "512 B", 256 << 10: "256 KiB", 1536 << 10: "1.5 MiB", 4 << 20: "4 MiB",
		256<<10 + 1: "256 KiB (262145 bytes)", 1500000: "1.4 MiB (1500000 bytes)"} {
		if got := api.FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
