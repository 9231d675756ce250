package stack

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

func billionLaughs(levels int) string {
	var b strings.Builder
	b.WriteString("x-a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "x-a%d: &a%d [", i, i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	b.WriteString("services:\n  web:\n    image: nginx\n")
	return b.String()
}

func TestAliasBomb(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"bomb.yml":      billionLaughs(9),
		"small.yml":     billionLaughs(2), // 1,000 nodes from aliases: fine
		"recursive.yml": "x-a: &a\n  b: *a\nservices:\n  web:\n    image: nginx\n",
	})
	if _, err := loadIn(dir, nil, "bomb.yml"); err == nil || !strings.Contains(err.Error(), "bomb.yml: YAML aliases expand to more than 100000 nodes") {
		t.Errorf("bomb: err = %v", err)
	}
	if _, err := loadIn(dir, nil, "small.yml"); err != nil {
		t.Errorf("small aliases refused: %v", err)
	}
	if _, err := loadIn(dir, nil, "recursive.yml"); err == nil || !strings.Contains(err.Error(), "recursive.yml:") {
		t.Errorf("recursive: err = %v", err)
	}
}

func TestSizeCap(t *testing.T) {
	big := "services:\n  web:\n    image: nginx\n" + "# " + strings.Repeat("x", MaxFileSize) + "\n"
	dir := writeFiles(t, map[string]string{"big.yml": big})
	_, err := loadIn(dir, nil, "big.yml")
	if err == nil || !strings.Contains(err.Error(), "is larger than 1 MiB: refusing to read it") {
		t.Errorf("file: err = %v", err)
	}
	_, err = Load(context.Background(), LoadOptions{Files: []string{"-"}, Cwd: dir, Stack: "s", Stdin: strings.NewReader(big)})
	if err == nil || !strings.Contains(err.Error(), "stdin is larger than 1 MiB") {
		t.Errorf("stdin: err = %v", err)
	}
	dir = writeFiles(t, map[string]string{"app.yml": "services:\n  web:\n    image: nginx\n    env_file: big.env\n", "big.env": "A=" + strings.Repeat("x", MaxFileSize)})
	if _, err = loadIn(dir, nil, "app.yml"); err == nil || !strings.Contains(err.Error(), `app.yml: service "web": env_file:`) {
		t.Errorf("env_file: err = %v", err)
	}
}

// TestStdinAndMerge reads "-c -" and merges files in order: later files
// override earlier ones, lists of ports and maps of labels merge.
func TestStdinAndMerge(t *testing.T) {
	dir := writeFiles(t, map[string]string{"override.yml": `
services:
  web:
    image: nginx:2
    deploy:
      replicas: 5
`})
	stdin := "services:\n  web:\n    image: nginx:1\n    deploy:\n      replicas: 2\n      labels: {a: b}\n"
	l, err := Load(context.Background(), LoadOptions{Files: []string{"-", "override.yml"}, Cwd: dir, Stack: "s", Stdin: strings.NewReader(stdin)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Convert()
	if err != nil {
		t.Fatal(err)
	}
	spec := p.Services[0].Spec
	if spec.Task.Container.Image != "nginx:2" || spec.GetReplicated().GetReplicas() != 5 || spec.Annotations.Labels["a"] != "b" {
		t.Errorf("merged spec %v", spec)
	}
	if strings.Join(l.Files, ",") != "stdin,override.yml" || l.WorkingDir != dir {
		t.Errorf("files %v, working dir %s", l.Files, l.WorkingDir)
	}
	_, err = Load(context.Background(), LoadOptions{Files: []string{"-", "-"}, Cwd: dir, Stack: "s", Stdin: strings.NewReader(stdin)})
	if err == nil || !strings.Contains(err.Error(), "only once") {
		t.Errorf("two stdins: %v", err)
	}
}

func TestStackName(t *testing.T) {
	for _, name := range []string{"", "_x", "a b", "a/b", "-x"} {
		if err := ValidateName(name); err == nil {
			t.Errorf("%q accepted", name)
		}
	}
	dir := writeFiles(t, map[string]string{"app.yml": "services:\n  web:\n    image: nginx\nnetworks: {}\n"})
	l, err := Load(context.Background(), LoadOptions{Files: []string{"app.yml"}, Cwd: dir, Stack: "My.App"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Convert()
	if err != nil {
		t.Fatal(err)
	}
	if p.Services[0].Name != "My.App_web" || p.Networks[0].Name != "My.App_default" {
		t.Errorf("names %s %s", p.Services[0].Name, p.Networks[0].Name)
	}
}

// TestRoundTrip: what stack config prints loads back to the same plan.
func TestRoundTrip(t *testing.T) {
	l, p := mustPlan(t, "s", fullEnv, "testdata/full/app.yml", "testdata/full/override.yml")
	out, err := l.MarshalYAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cr3t") || strings.Contains(string(out), "k3y") {
		t.Fatalf("secret data in the config output:\n%s", out)
	}
	p2 := reload(t, out, fullEnv)
	if err := p2.ReadSources(ReadFileCapped); err != nil {
		t.Fatal(err)
	}
	if a, b := render(t, p), render(t, p2); a != b {
		t.Errorf("round trip differs:\n%s\n----\n%s", a, b)
	}
}

func reload(t testing.TB, out []byte, env []string) *Plan {
	t.Helper()
	l, err := Load(context.Background(), LoadOptions{Files: []string{"-"}, Cwd: t.TempDir(), Stack: "s", Environ: env,
		Stdin: strings.NewReader(string(out)), SkipInterpolation: true})
	if err != nil {
		t.Fatalf("reloading:\n%s\n%v", out, err)
	}
	p, err := l.Convert()
	if err != nil {
		t.Fatalf("reconverting: %v", err)
	}
	return p
}

func TestOrder(t *testing.T) {
	svc := func(k string) *Service { return &Service{Key: k, Name: "s_" + k} }
	services := map[string]*Service{"a": svc("a"), "b": svc("b"), "c": svc("c"), "d": svc("d")}
	got, err := order(services, map[string][]string{"a": {"c"}, "c": {"d"}, "b": {"d"}})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range got {
		keys = append(keys, s.Key)
	}
	if strings.Join(keys, "") != "dbca" {
		t.Errorf("order %v", keys)
	}
	_, err = order(services, map[string][]string{"a": {"b"}, "b": {"c"}, "c": {"a"}})
	want := "depends_on: services a, b, c depend on each other in a cycle (a -> b -> c -> a); remove one of these dependencies"
	if err == nil || err.Error() != want {
		t.Errorf("cycle: %v", err)
	}
}
