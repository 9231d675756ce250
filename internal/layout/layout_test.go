package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

const module = "github.com/shoal-project/shoal/"

// mayImport is DESIGN.md's table: the layers each layer may import. A
// layer not listed here (cmd, test) may import any layer but cmd.
var mayImport = map[string][]string{
	"proto":     {},
	"pki":       {"proto"},
	"raftstore": {"proto", "pki"},
	"scheduler": {"proto"},
	"manager":   {"proto", "pki", "raftstore", "scheduler"},
	"worker":    {"proto", "pki", "overlay", "ingress"},
	"overlay":   {"proto"},
	"ingress":   {"proto"},
	"node":      {"proto", "pki", "raftstore", "manager", "worker", "overlay", "ingress", "metrics"},
	"dockerapi": {"proto"},
	"dashboard": {"proto"},
	// metrics serves a registry the node fills; it knows no project layer.
	"metrics": {},
}

// testOnly are packages for tests: no non-test code outside cmd and test
// may import them.
var testOnly = []string{"internal/testutil", "internal/testcluster", "worker/fakeexec", "test"}

// pkg is what `go list -json` says of one package.
type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Deps         []string
}

// rel is the path of a project package inside the module, or "" for
// another module's or the standard library's.
func rel(path string) string {
	if !strings.HasPrefix(path, module) {
		return ""
	}
	return strings.TrimPrefix(path, module)
}

// layer is the top-level directory of a project package, or "" for a
// support package (errdefs, version, internal/*).
func layer(p string) string {
	top, _, _ := strings.Cut(p, "/")
	switch top {
	case "errdefs", "version", "internal":
		return ""
	}
	return top
}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

func isTestOnly(p string) bool {
	return slices.ContainsFunc(testOnly, func(d string) bool { return under(p, d) })
}

// cmdBinary is "cmd/X" for a package under cmd/X, else "".
func cmdBinary(p string) string {
	parts := strings.SplitN(p, "/", 3)
	if parts[0] != "cmd" || len(parts) < 2 {
		return ""
	}
	return parts[0] + "/" + parts[1]
}

// edgeError says why from may not import to, or "" when it may.
func edgeError(from, to string, inTest bool) string {
	if b := cmdBinary(to); b != "" && cmdBinary(from) != b {
		return "nothing outside " + b + " imports it"
	}
	if isTestOnly(to) && !inTest && !under(from, "test") && !under(from, "cmd") && !isTestOnly(from) {
		return to + " is for tests only"
	}
	fl, tl := layer(from), layer(to)
	allowed, ruled := mayImport[fl]
	if !ruled || tl == "" || tl == fl || (inTest && isTestOnly(to)) {
		return ""
	}
	if !slices.Contains(allowed, tl) {
		if len(allowed) == 0 {
			return fmt.Sprintf("%s may import no other layer", fl)
		}
		return fmt.Sprintf("%s may import only %s", fl, strings.Join(allowed, ", "))
	}
	return ""
}

var (
	listOnce sync.Once
	listed   map[string]*pkg
	listErr  error
)

// listPackages runs `go list -json ./...` once per test binary.
func listPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	listOnce.Do(func() { listed, listErr = goList() })
	if listErr != nil {
		t.Fatal(listErr)
	}
	return listed
}

func goList() (map[string]*pkg, error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "list", "-e", "-json", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list output: %v", err)
		}
		if r := rel(p.ImportPath); r != "" {
			pkgs[r] = &p
		}
	}
	if len(pkgs) == 0 {
		return nil, errors.New("go list found no package of the module")
	}
	return pkgs, nil
}

// pathTo is the chain of imports from a to b (project packages), for the
// message: "scheduler -> internal/x -> raftstore".
func pathTo(pkgs map[string]*pkg, a, b string) []string {
	prev := map[string]string{a: ""}
	queue := []string{a}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == b {
			var chain []string
			for n := b; n != ""; n = prev[n] {
				chain = append([]string{n}, chain...)
			}
			return chain
		}
		p := pkgs[cur]
		if p == nil {
			continue
		}
		for _, imp := range p.Imports {
			if r := rel(imp); r != "" {
				if _, seen := prev[r]; !seen {
					prev[r] = cur
					queue = append(queue, r)
				}
			}
		}
	}
	return []string{a, "...", b}
}

// reachable is every project package that name imports directly or
// through a chain of support packages (errdefs, version, internal/*).
func reachable(pkgs map[string]*pkg, name string) []string {
	seen := map[string]bool{}
	var out []string
	queue := []string{name}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		p := pkgs[cur]
		if p == nil {
			continue
		}
		for _, imp := range p.Imports {
			d := rel(imp)
			if d == "" || d == name || seen[d] {
				continue
			}
			seen[d] = true
			out = append(out, d)
			if layer(d) == "" {
				queue = append(queue, d)
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestImportRules fails for every package that imports, directly or
// through support packages, one it must not.
func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	for _, name := range sortedKeys(pkgs) {
		p := pkgs[name]
		// Non-test code: its direct imports, and what it reaches through
		// support packages, so they cannot launder a forbidden edge. An
		// allowed layer's own imports are that layer's to answer for.
		for _, d := range reachable(pkgs, name) {
			if why := edgeError(name, d, false); why != "" {
				t.Errorf("%s imports %s: %s (via %s)", name, d, why, strings.Join(pathTo(pkgs, name, d), " -> "))
			}
		}
		// Test code: its direct imports.
		for _, imp := range append(slices.Clone(p.TestImports), p.XTestImports...) {
			d := rel(imp)
			if d == "" || d == name {
				continue
			}
			if why := edgeError(name, d, true); why != "" {
				t.Errorf("tests of %s import %s: %s", name, d, why)
			}
		}
	}
}

// TestContainerdClientOnlyInWorkerContainerd: DESIGN.md's worker row,
// "worker/containerd is the only importer of the containerd client".
func TestContainerdClientOnlyInWorkerContainerd(t *testing.T) {
	pkgs := listPackages(t)
	for _, name := range sortedKeys(pkgs) {
		if under(name, "worker/containerd") || under(name, "test") || under(name, "cmd") {
			continue
		}
		for _, imp := range pkgs[name].Imports {
			if strings.HasPrefix(imp, "github.com/containerd/containerd/") {
				t.Errorf("%s imports %s: only worker/containerd may use the containerd client", name, imp)
			}
		}
	}
}

// TestCLILinksNoRaftOrBolt: the shoal CLI talks gRPC to a daemon; it must
// not link the raft log or its storage.
func TestCLILinksNoRaftOrBolt(t *testing.T) {
	if _, err := os.Stat("../../cmd/shoal/internal/testserver"); err == nil {
		t.Skip("enabled once cmd/shoal/internal/testserver is gone and spec validation has left manager/controlapi (issue 9, helper \"cli\")")
	}
	pkgs := listPackages(t)
	p := pkgs["cmd/shoal"]
	if p == nil {
		t.Fatal("no package cmd/shoal")
	}
	for _, dep := range p.Deps {
		for _, banned := range []string{"go.etcd.io/raft", "go.etcd.io/bbolt", "github.com/google/btree"} {
			if strings.HasPrefix(dep, banned) {
				var via string
				for _, d := range p.Deps {
					if r := rel(d); r != "" && slices.Contains(pkgs[r].Imports, dep) {
						via = " (imported by " + r + ")"
						break
					}
				}
				t.Errorf("cmd/shoal links %s%s", dep, via)
			}
		}
	}
}

func sortedKeys(m map[string]*pkg) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
