package layout

import "testing"

// TestEdgeError pins the rules themselves, so a change to them is seen:
// each forbidden edge of DESIGN.md's "Never:" line is refused, and the
// table's allowed edges pass.
func TestEdgeError(t *testing.T) {
	for _, c := range []struct {
		from, to string
		test     bool
		ok       bool
	}{
		{"scheduler", "raftstore", false, false},
		{"scheduler", "manager/schedloop", false, false},
		{"scheduler", "proto", false, true},
		{"scheduler", "errdefs", false, true},
		{"worker", "manager", false, false},
		{"worker/containerd", "raftstore", false, false},
		{"worker", "scheduler", false, false},
		{"worker", "overlay", false, true},
		{"overlay", "worker", false, false},
		{"ingress", "manager", false, false},
		{"manager/controlapi", "cmd/shoal/internal/stack", false, false},
		{"test/e2e", "cmd/shoald/internal/daemon", true, false},
		{"cmd/shoal", "cmd/shoald/internal/daemon", false, false},
		{"cmd/shoal", "cmd/shoal/internal/commands", false, true},
		{"cmd/shoald", "node", false, true},
		{"node", "manager", false, true},
		{"node", "cmd/shoald", false, false},
		{"dockerapi", "manager", false, false},
		{"dockerapi", "proto", false, true},
		{"manager", "internal/testutil", false, false},
		{"manager", "internal/testutil", true, true},
		{"manager", "internal/testcluster", true, true},
		{"worker", "test/images", true, true},
		{"worker", "test/images", false, false},
		{"manager", "worker", true, false},
		{"proto", "pki", false, false},
		{"raftstore", "pki", false, true},
	} {
		why := edgeError(c.from, c.to, c.test)
		if (why == "") != c.ok {
			t.Errorf("edgeError(%s -> %s, test=%v) = %q, want allowed=%v", c.from, c.to, c.test, why, c.ok)
		}
	}
}

// TestReachableStopsAtLayers: a support package cannot launder an edge,
// but an allowed layer's own imports are not charged to its importer
// (node may import manager, which may import scheduler).
func TestReachableStopsAtLayers(t *testing.T) {
	m := func(imports ...string) *pkg {
		p := &pkg{}
		for _, i := range imports {
			p.Imports = append(p.Imports, module+i)
		}
		return p
	}
	pkgs := map[string]*pkg{
		"node":        m("manager", "internal/x"),
		"manager":     m("scheduler"),
		"internal/x":  m("internal/y"),
		"internal/y":  m("raftstore", "scheduler"),
		"scheduler":   m("proto"),
		"raftstore":   m("proto"),
		"proto":       m(),
		"internal/z":  m(),
		"cmd/shoald":  m("node"),
		"node/inside": m(),
	}
	got := reachable(pkgs, "node")
	want := []string{"internal/x", "internal/y", "manager", "raftstore", "scheduler"}
	if len(got) != len(want) {
		t.Fatalf("reachable(node) = %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("reachable(node) = %v, want %v", got, want)
		}
	}
	// scheduler is reached only through internal/y: refused for node.
	if edgeError("node", "scheduler", false) == "" {
		t.Error("node -> (support) -> scheduler passed")
	}
}
