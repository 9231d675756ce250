// Package commandtest runs the shoal CLI against an in-process manager
// (daemontest: the real Control API on a store) for the command packages'
// golden tests:
//
//	e := commandtest.New(t, time.Hour)
//	e.Golden("secret_ls", "secret", "ls")
//
// compares the run of `shoal secret ls` with testdata/secret_ls.golden.
package commandtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/cmd/shoal/internal/clock"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/commands"
	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	"github.com/shoal-project/shoal/cmd/shoal/internal/golden"
)

// Env is a CLI run against the test daemon loaded with the fixture swarm.
type Env struct {
	T     *testing.T
	Srv   *daemontest.Daemon
	Clock *clock.Fake
	// Stdin is what the next runs read on standard input.
	Stdin string
	// Dir is the test's own directory, shown as $DIR in golden files.
	Dir string
}

// New starts the test daemon for t, loaded with the fixture swarm; the fake
// clock stands at daemontest.Now plus after.
func New(t *testing.T, after time.Duration) *Env {
	t.Helper()
	srv := daemontest.Start(t)
	srv.LoadCluster()
	return &Env{T: t, Srv: srv, Clock: clock.NewFake(daemontest.Now.Add(after)), Dir: t.TempDir()}
}

// Result is what one run printed and returned.
type Result struct {
	Out, Err string
	Code     int
}

// String renders a run for golden files.
func (r Result) String() string {
	return fmt.Sprintf("-- stdout --\n%s-- stderr --\n%s-- exit %d --\n", r.Out, r.Err, r.Code)
}

// Run executes `shoal args...` against the test daemon.
func (e *Env) Run(args ...string) Result {
	e.T.Helper()
	var out, errb bytes.Buffer
	cli := &command.Cli{
		In:      strings.NewReader(e.Stdin),
		Out:     &out,
		Err:     &errb,
		Clock:   e.Clock,
		Getenv:  func(string) string { return "" },
		Timeout: 10 * time.Second,
	}
	code := commands.Run(context.Background(), cli, append([]string{"-H", e.Srv.Host()}, args...))
	return Result{Out: out.String(), Err: errb.String(), Code: code}
}

// Golden runs args and compares the run with testdata/<name>.golden; the
// test directory is shown as $DIR.
func (e *Env) Golden(name string, args ...string) Result {
	e.T.Helper()
	r := e.Run(args...)
	text := "$ shoal " + strings.Join(args, " ") + "\n" + r.String()
	text = daemontest.Scrub(strings.ReplaceAll(text, e.Dir, "$DIR"))
	golden.Assert(e.T, text, name+".golden")
	return r
}

// MustRun runs args and fails the test unless the run succeeds.
func (e *Env) MustRun(args ...string) Result {
	e.T.Helper()
	r := e.Run(args...)
	if r.Code != 0 {
		e.T.Fatalf("shoal %s: exit %d\n%s", strings.Join(args, " "), r.Code, r)
	}
	return r
}

// File writes a file into the test's directory and returns its path.
func (e *Env) File(name, content string) string {
	e.T.Helper()
	path := filepath.Join(e.Dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		e.T.Fatal(err)
	}
	return path
}

// Mutations lists the calls that changed state, in order.
func (e *Env) Mutations() []string {
	var out []string
	for _, m := range e.Srv.Methods() {
		for _, p := range []string{"Create", "Update", "Remove"} {
			if strings.HasPrefix(m, p) {
				out = append(out, m)
			}
		}
	}
	return out
}
