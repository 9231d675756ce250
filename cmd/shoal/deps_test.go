package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCLILinksNoManager: the shoal binary links no raft, bbolt or B-trees
// (the manager's storage). The CLI validates specs with internal/specs,
// the same code the Control API runs, without the manager behind it.
func TestCLILinksNoManager(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"go.etcd.io/raft", "go.etcd.io/bbolt", "github.com/google/btree", "/shoal/manager", "/shoal/raftstore"} {
			if strings.Contains(dep, banned) {
				t.Errorf("shoal links %s", dep)
			}
		}
	}
}
