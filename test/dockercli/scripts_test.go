package dockercli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/test/images"
	"github.com/shoal-project/shoal/test/lab"
)

// TestScriptsRunUnchanged runs the bash scripts under testdata/scripts,
// written the way people script docker (jq on inspect output, --format
// templates, polling ls and ps), twice against one shoald: with the real
// docker CLI (DOCKER_HOST is the Engine API's socket), then with `docker`
// on PATH being a shim that runs `shoal --host <control socket>`. Each
// script checks what it reads and ends with PASS.
func TestScriptsRunUnchanged(t *testing.T) {
	requireDocker28(t)
	if _, err := os.Stat("/usr/bin/jq"); err != nil {
		t.Fatalf("the scripts need jq: %v (scripts/install-deps.sh installs it)", err)
	}
	reg := images.StartRegistry(t)
	busybox := images.PushTest(t, reg, images.Busybox)
	d := startDaemon(t, docker28, "")
	d.mustDocker("swarm", "init", "--listen-addr", d.addr, "--advertise-addr", d.addr)
	shoal := lab.BuildShoal(t)

	// Two directories to put first on PATH: one with the real docker
	// CLI, one with the shim.
	dockerDir := filepath.Join(t.TempDir(), "docker")
	shimDir := filepath.Join(t.TempDir(), "shim")
	for _, dir := range []string{dockerDir, shimDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(docker28.path, filepath.Join(dockerDir, "docker")); err != nil {
		t.Fatal(err)
	}
	shim := fmt.Sprintf("#!/bin/sh\nexec %s --host unix://%s \"$@\"\n", shoal, filepath.Join(d.dir, "ctl.sock"))
	if err := os.WriteFile(filepath.Join(shimDir, "docker"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	path := os.Getenv("PATH")
	runs := []struct {
		name string
		env  []string
	}{
		{"docker", append(d.dockerEnv, "PATH="+dockerDir+":"+path, "DOCKER_HOST=unix://"+d.dockerSocket())},
		{"shoal", append(os.Environ(), "PATH="+shimDir+":"+path, "SHOAL_HOST=")},
	}
	scripts := []struct {
		file string
		args func(run string) []string
	}{
		{"nodes.sh", func(string) []string { return nil }},
		{"secrets.sh", func(run string) []string { return []string{"pw_" + run} }},
		{"service_replicas.sh", func(run string) []string {
			port := map[string]string{"docker": "18081", "shoal": "18082"}[run]
			return []string{"web-" + run, busybox, port}
		}},
	}
	for _, s := range scripts {
		for _, r := range runs {
			t.Run(strings.TrimSuffix(s.file, ".sh")+"/"+r.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
				defer cancel()
				script, err := filepath.Abs(filepath.Join("testdata", "scripts", s.file))
				if err != nil {
					t.Fatal(err)
				}
				cmd := exec.CommandContext(ctx, "/bin/bash", append([]string{script}, s.args(r.name)...)...)
				cmd.Env = r.env
				out, err := cmd.CombinedOutput()
				if err != nil || !strings.HasSuffix(string(out), "PASS\n") {
					t.Errorf("%s with %s: %v\n%s", s.file, r.name, err, out)
				}
			})
		}
	}
}
