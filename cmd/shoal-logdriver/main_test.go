package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the driver small: one copy runs per task, and
// every package it links costs memory in each. Only the standard library
// and package logdriver may be in its dependency graph.
func TestDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{
		"github.com/shoal-project/shoal/cmd/shoal-logdriver":         true,
		"github.com/shoal-project/shoal/worker/containerd/logdriver": true,
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("shoal-logdriver depends on %s: keep it to the standard library and package logdriver", p)
		}
	}
}
