package formatter

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/cmd/shoal/internal/golden"
	api "github.com/shoal-project/shoal/proto"
)

func TestNaturalLess(t *testing.T) {
	sorted := []string{"node1", "node2", "node10", "node10a", "nodeb", "web.1", "web.2", "web.10", "web.010"}
	for i := 0; i < len(sorted); i++ {
		for j := 0; j < len(sorted); j++ {
			if got, want := NaturalLess(sorted[i], sorted[j]), i < j; got != want {
				t.Errorf("NaturalLess(%q, %q) = %v, want %v", sorted[i], sorted[j], got, want)
			}
		}
	}
}

func TestSmallHelpers(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Ellipsis("no suitable node (scheduling constraints)", 30), "no suitable node (scheduling …"},
		{Ellipsis("short", 30), "short"},
		{Title("replicated job"), "Replicated Job"},
		{PrettyState("ON_FAILURE"), "On-failure"},
		{PrettyState("RUNNING"), "Running"},
		{TruncateID("dxn1zf6l61qsb1josjja83ngz"), "dxn1zf6l61qs"},
		{DisplayImage("nginx:1.27@sha256:abc"), "nginx:1.27"},
		{DisplayImage("nginx@sha256:abc"), "nginx@sha256:abc"},
		{DisplayImage("registry:5000/app@sha256:abc"), "registry:5000/app@sha256:abc"},
		{DisplayImage("registry:5000/app:v1@sha256:abc"), "registry:5000/app:v1"},
		{DisplayImage("docker.io/library/nginx:1@sha256:" + strings.Repeat("a", 64)), "nginx:1"},
		{DisplayImage("reg:5000/app@sha256:" + strings.Repeat("a", 64)), "reg:5000/app@sha256:" + strings.Repeat("a", 64)},
		{HumanAgo(time.Unix(100, 0), time.Unix(92, 0)), "8 seconds ago"},
		{HumanAgo(time.Unix(100, 0), time.Unix(100, 0)), "less than a second ago"},
		{HumanAgo(time.Unix(1000, 0), time.Unix(900, 0)), "about a minute ago"},
		{pad("x", 1, 2), " x  "},
		{pad("", 1, 2), ""},
		{truncate("abcdef", 3), "abc"},
		{truncate("ab", 3), "ab"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestFormatPorts(t *testing.T) {
	p := func(pub, target uint32, proto api.PortConfig_Protocol) *api.PortConfig {
		return &api.PortConfig{PublishedPort: pub, TargetPort: target, Protocol: proto}
	}
	got := FormatPorts([]*api.PortConfig{
		p(8081, 81, api.PortConfig_TCP), p(8080, 80, api.PortConfig_TCP), p(8082, 82, api.PortConfig_TCP),
		p(9000, 90, api.PortConfig_TCP), p(53, 53, api.PortConfig_UDP), p(0, 443, api.PortConfig_TCP),
	})
	want := "*:0->443/tcp, *:8080-8082->80-82/tcp, *:9000->90/tcp, *:53->53/udp"
	if got != want {
		t.Errorf("FormatPorts = %q, want %q", got, want)
	}
}

func node(id, host string) *api.Node {
	return &api.Node{Id: id, Description: &api.NodeDescription{Hostname: host}, Spec: &api.NodeSpec{}, Status: &api.NodeStatus{State: api.NodeStatus_READY}}
}

func TestWriteFormats(t *testing.T) {
	rows := NodeRows([]*api.Node{node("b2", "node10"), node("a1", "node9")}, "a1")
	var out strings.Builder
	for _, f := range []string{"", "table", "table {{.Hostname}}\\t{{.ID}}", "json", "{{.Hostname}}={{.Self}}", "{{json .Hostname}}"} {
		var buf bytes.Buffer
		if err := Write(&buf, Resolve(f, false, DefaultNodeTable), NodeHeader, rows); err != nil {
			t.Fatal(err)
		}
		out.WriteString("== " + f + "\n" + buf.String())
	}
	var buf bytes.Buffer
	if err := Write(&buf, Resolve("ignored", true, DefaultNodeTable), NodeHeader, rows); err != nil {
		t.Fatal(err)
	}
	out.WriteString("== quiet\n" + buf.String())
	golden.Assert(t, out.String(), "write_formats.golden")
}

func TestTemplateData(t *testing.T) {
	svc := &api.Service{
		Id: "abc",
		Spec: &api.ServiceSpec{
			Annotations: &api.Annotations{Name: "web", Labels: map[string]string{"a": ""}},
			Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 3}},
			Update:      &api.UpdateConfig{Monitor: durationpb.New(5 * time.Second)},
			Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx"}},
		},
	}
	var buf bytes.Buffer
	tmpl := "{{.ID}} {{.id}} {{.Spec.Name}} {{.Spec.Annotations.Name}} {{.Spec.Mode.Replicated.Replicas}} {{.Spec.Update.Monitor}} {{.Spec.Task.Container.Image}} {{json .Spec.Labels}}"
	if err := WriteTemplate(&buf, tmpl, []proto.Message{svc}); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "abc abc web web 3 5s nginx {\"a\":\"\"}\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	buf.Reset()
	if err := WriteTemplate(&buf, "{{json .Spec.Annotations}}", []proto.Message{svc}); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "{\"labels\":{\"a\":\"\"},\"name\":\"web\"}\n"; got != want {
		t.Errorf("json shows aliases: %q", got)
	}
	if err := WriteTemplate(&buf, "{{.Nope}}", []proto.Message{svc}); err == nil || !strings.Contains(err.Error(), "Nope") {
		t.Errorf("a missing key is not an error: %v", err)
	}
}

func TestWriteDockerJSON(t *testing.T) {
	type obj struct {
		ID     string
		Labels map[string]string
		HTML   string
	}
	var buf bytes.Buffer
	if err := WriteDockerJSON(&buf, []obj{{ID: "a1", Labels: map[string]string{"z": "1", "a": ""}, HTML: "<&>"}}, true); err != nil {
		t.Fatal(err)
	}
	// Four spaces, sorted map keys, <&> escaped: json.MarshalIndent, as
	// the docker CLI prints inspect.
	want := "[\n    {\n        \"ID\": \"a1\",\n        \"Labels\": {\n            \"a\": \"\",\n            \"z\": \"1\"\n        },\n" +
		"        \"HTML\": \"\\u003c\\u0026\\u003e\"\n    }\n]\n"
	if buf.String() != want {
		t.Errorf("indented:\n%s\nwant:\n%s", buf.String(), want)
	}
	buf.Reset()
	if err := WriteDockerJSON(&buf, []obj{{ID: "a1"}}, false); err != nil || buf.String() != `[{"ID":"a1","Labels":null,"HTML":""}]`+"\n" {
		t.Errorf("compact: %q, %v", buf.String(), err)
	}
	buf.Reset()
	if err := WriteDockerJSON[obj](&buf, nil, true); err != nil || buf.String() != "[]\n" {
		t.Errorf("empty array: %q, %v", buf.String(), err)
	}
}

func TestExecuteDocker(t *testing.T) {
	type inner struct{ Mode string }
	type obj struct {
		ID   string `json:"Id"`
		Spec inner
		N    uint64
	}
	o := obj{ID: "x1", Spec: inner{Mode: "vip"}, N: 12345678901}
	for _, c := range []struct{ tmpl, want, err string }{
		{"{{.ID}} {{.Spec.Mode}}", "x1 vip", ""},
		{"{{.Id}} {{.N}}", "x1 12345678901", ""}, // the JSON's name, its number as written
		{"{{.Nope}}", "", `template parsing error: template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"`},
	} {
		tmpl, err := Parse(c.tmpl)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ExecuteDocker(tmpl, o)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%s: error %v, want %s", c.tmpl, err, c.err)
			}
			continue
		}
		if err != nil || string(got) != c.want {
			t.Errorf("%s: %q, %v; want %q", c.tmpl, got, err, c.want)
		}
	}
}

func TestTemplateFunctionsTakeNamedStrings(t *testing.T) {
	type order string
	var buf bytes.Buffer
	tmpl, err := Parse(`{{upper .O}} {{join .L "+"}} {{split .O "-"}} {{truncate .O 4}} {{title .O}}|{{pad .O 1 1}}|`)
	if err != nil {
		t.Fatal(err)
	}
	if err := tmpl.Execute(&buf, map[string]any{"O": order("stop-first"), "L": []order{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	if want := "STOP-FIRST a+b [stop first] stop Stop-First| stop-first |"; buf.String() != want {
		t.Errorf("%q, want %q", buf.String(), want)
	}
}

func TestDockerFieldNamesInTemplates(t *testing.T) {
	svc := &api.Service{Id: "s1", Spec: &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web"},
		Task: &api.TaskSpec{Container: &api.ContainerSpec{Image: "img:1"},
			Resources: &api.ResourceRequirements{Limits: &api.Resources{NanoCpus: 5e8}}},
		Mode:   &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 3}},
		Update: &api.UpdateConfig{Parallelism: 2},
	}}
	var b strings.Builder
	tmpl := "{{.ID}} {{.Spec.Name}} {{.Spec.TaskTemplate.ContainerSpec.Image}} {{.Spec.Mode.Replicated.Replicas}} " +
		"{{.Spec.UpdateConfig.Parallelism}} {{.Spec.TaskTemplate.Resources.Limits.NanoCPUs}}"
	if err := WriteTemplate(&b, tmpl, []proto.Message{svc}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(b.String()), "s1 web img:1 3 2 500000000"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestManagerStatusShowsDiskFault(t *testing.T) {
	for _, tc := range []struct {
		ms   *api.ManagerStatus
		want string
	}{
		{nil, ""},
		{&api.ManagerStatus{Leader: true, Reachability: api.Reachability_REACHABLE}, "Leader"},
		{&api.ManagerStatus{Reachability: api.Reachability_REACHABLE}, "Reachable"},
		{&api.ManagerStatus{Reachability: api.Reachability_UNREACHABLE}, "Unreachable"},
		{&api.ManagerStatus{Reachability: api.Reachability_UNREACHABLE, DiskFault: "disk full"}, "Unreachable (disk full)"},
		{&api.ManagerStatus{DiskFault: "disk I/O error"}, "Unknown (disk I/O error)"},
	} {
		if got := ManagerStatus(&api.Node{ManagerStatus: tc.ms}); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.ms, got, tc.want)
		}
	}
}
