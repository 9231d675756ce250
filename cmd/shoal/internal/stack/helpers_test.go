package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// render prints a plan for golden files: every object as indented JSON with
// sorted keys, secret data replaced by its length.
func render(t testing.TB, p *Plan) string {
	t.Helper()
	var b strings.Builder
	obj := func(title string, m proto.Message) {
		fmt.Fprintf(&b, "## %s\n", title)
		if m == nil {
			b.WriteString("(external)\n")
			return
		}
		raw, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		out, _ := json.MarshalIndent(v, "", "  ")
		b.Write(out)
		b.WriteString("\n")
	}
	for _, n := range p.Networks {
		if n.External {
			obj("network "+n.Name, nil)
		} else {
			obj("network "+n.Name, n.Spec)
		}
	}
	for _, s := range p.Secrets {
		if s.External {
			obj("secret "+s.Name, nil)
			continue
		}
		c := proto.Clone(s.Spec).(interface{ proto.Message })
		spec := c.(interface{ GetData() []byte })
		title := fmt.Sprintf("secret %s (%d bytes", s.Name, len(spec.GetData()))
		if s.File != "" {
			title += " from " + filepath.Base(s.File)
		}
		title += ")"
		red := proto.Clone(s.Spec)
		red.ProtoReflect().Clear(red.ProtoReflect().Descriptor().Fields().ByName("data"))
		obj(title, red)
	}
	for _, c := range p.Configs {
		if c.External {
			obj("config "+c.Name, nil)
			continue
		}
		title := "config " + c.Name
		if c.File != "" {
			title += " (from " + filepath.Base(c.File) + ")"
		}
		obj(title, c.Spec)
	}
	for _, s := range p.Services {
		fmt.Fprintf(&b, "# depends on: %s; healthcheck: %v\n", strings.Join(s.DependsOn, ", "), s.Healthcheck)
		obj("service "+s.Name, s.Spec)
	}
	for _, w := range p.Warnings {
		b.WriteString("warning: " + w)
	}
	cwd, _ := os.Getwd()
	return strings.ReplaceAll(b.String(), cwd, "$CWD")
}

// writeFiles writes name/content pairs into a new directory and returns it.
func writeFiles(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadIn loads files of dir as stack s.
func loadIn(dir string, env []string, files ...string) (*Loaded, error) {
	return Load(context.Background(), LoadOptions{Files: files, Cwd: dir, Environ: env, Stack: "s", Stdin: bytes.NewReader(nil)})
}

// planIn loads and converts files of dir as stack s, reading sources.
func planIn(dir string, env []string, files ...string) (*Loaded, *Plan, error) {
	l, err := loadIn(dir, env, files...)
	if err != nil {
		return nil, nil, err
	}
	p, err := l.Convert()
	if err != nil {
		return l, nil, err
	}
	if err := p.ReadSources(ReadFileCapped); err != nil {
		return l, nil, err
	}
	return l, p, nil
}

// loadFiles loads files relative to the test's directory.
func loadFiles(t testing.TB, stack string, env []string, files ...string) (*Loaded, error) {
	t.Helper()
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return Load(context.Background(), LoadOptions{Files: files, Cwd: cwd, Environ: env, Stack: stack, Stdin: bytes.NewReader(nil)})
}

// mustPlan loads and converts, reading file sources.
func mustPlan(t testing.TB, stack string, env []string, files ...string) (*Loaded, *Plan) {
	t.Helper()
	l, err := loadFiles(t, stack, env, files...)
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Convert()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ReadSources(ReadFileCapped); err != nil {
		t.Fatal(err)
	}
	return l, p
}
