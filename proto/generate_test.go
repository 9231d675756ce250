package api_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestGeneratedCodeIsCurrent regenerates the Go code from the .proto files
// with the pinned plugins and fails if the committed code differs: run
// `make proto` and commit the result.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Fatal("protoc is not installed: run `make deps` (Debian package protobuf-compiler)")
	}
	for _, f := range []string{"duration.proto", "timestamp.proto"} {
		if _, err := os.Stat(filepath.Join("/usr/include/google/protobuf", f)); err != nil {
			t.Fatalf("protoc's well-known type %s is missing: run `make deps` (Debian package libprotobuf-dev)", f)
		}
	}
	_, here, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(here))
	tools := t.TempDir()
	build := exec.Command("go", "build", "-o", tools+"/", "google.golang.org/protobuf/cmd/protoc-gen-go", "google.golang.org/grpc/cmd/protoc-gen-go-grpc")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build plugins: %v\n%s", err, out)
	}
	out := t.TempDir()
	protos, _ := filepath.Glob(filepath.Join(root, "proto", "*.proto"))
	args := []string{"-I", root, "-I", "/usr/include", "--go_out=" + out, "--go_opt=paths=source_relative",
		"--go-grpc_out=" + out, "--go-grpc_opt=paths=source_relative"}
	for _, p := range protos {
		rel, _ := filepath.Rel(root, p)
		args = append(args, rel)
	}
	gen := exec.Command("protoc", args...)
	gen.Dir = root
	gen.Env = append(os.Environ(), "PATH="+tools+string(os.PathListSeparator)+os.Getenv("PATH"))
	if b, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
	generated, _ := filepath.Glob(filepath.Join(out, "proto", "*.go"))
	if len(generated) == 0 {
		t.Fatal("protoc generated nothing")
	}
	for _, g := range generated {
		want, _ := os.ReadFile(g)
		have, err := os.ReadFile(filepath.Join(root, "proto", filepath.Base(g)))
		if err != nil || !bytes.Equal(want, have) {
			t.Errorf("proto/%s is stale: run `make proto` and commit the result", filepath.Base(g))
		}
	}
}
