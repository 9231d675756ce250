package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BuildShoald builds ./cmd/shoald of this module once per test process and returns the binary's path.
// The log driver shoald runs, ./cmd/shoal-logdriver, is built beside it (see Build).
func BuildShoald(t testing.TB) string { t.Helper(); return Build(t, "./cmd/shoald") }

// logDriverName is the name shoald looks for next to its executable.
const logDriverName = "shoal-logdriver"

// BuildShoal builds the CLI, ./cmd/shoal, once per test process and returns the binary's path.
func BuildShoal(t testing.TB) string { t.Helper(); return Build(t, "./cmd/shoal") }

// Build runs `go build [flags] -o <dir>/<name> pkg` from the module root once per test process for each
// distinct pkg and flags (e.g. "-tags", "gofail"), and returns the binary's path. A failed build fails
// t. The binaries live until the process ends; the next Sweep after that removes them.
func Build(t testing.TB, pkg string, flags ...string) string {
	t.Helper()
	key := pkg + "\x00" + strings.Join(flags, "\x00")
	builds.mu.Lock()
	if builds.m == nil {
		builds.m = map[string]*buildResult{}
	}
	r := builds.m[key]
	if r == nil {
		r = &buildResult{}
		builds.m[key] = r
	}
	n := len(builds.m)
	builds.mu.Unlock()
	r.once.Do(func() { r.path, r.err = build(pkg, flags, n) })
	if r.err != nil {
		t.Fatalf("lab: %v", r.err)
	}
	if pkg == "./cmd/shoald" {
		// Every shoald of this process finds its log driver next to it.
		d := Build(t, "./cmd/"+logDriverName)
		builds.mu.Lock()
		defer builds.mu.Unlock()
		if builds.driverErr == nil && !builds.driver {
			builds.driverErr = os.Link(d, filepath.Join(filepath.Dir(d), logDriverName))
			builds.driver = builds.driverErr == nil
		}
		if builds.driverErr != nil {
			t.Fatalf("lab: log driver next to shoald: %v", builds.driverErr)
		}
	}
	return r.path
}

type buildResult struct {
	once sync.Once
	path string
	err  error
}

var builds struct {
	mu        sync.Mutex
	m         map[string]*buildResult
	dir       string
	dirErr    error
	driver    bool // binDir holds logDriverName
	driverErr error
}

func build(pkg string, flags []string, n int) (string, error) {
	mod, err := moduleRoot()
	if err != nil {
		return "", err
	}
	dir, err := binDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, path.Base(pkg)+"-"+strconv.Itoa(n))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := append(append([]string{"build"}, flags...), "-o", out, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = mod
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), mod, err, b)
	}
	return out, nil
}

// binDir is this process's directory for built binaries, owned like a lab's so Sweep removes it later.
func binDir() (string, error) {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir == "" && builds.dirErr == nil {
		builds.dir, builds.dirErr = makeOwned(fmt.Sprintf("bin-%d-%d", os.Getpid(), time.Now().UnixNano()), "bin")
	}
	return builds.dir, builds.dirErr
}

// moduleRoot is the nearest directory above the working directory (a test's package directory) that holds
// go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if exists(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
