package config_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/cmd/shoal/internal/clock"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/commands"
	"github.com/shoal-project/shoal/cmd/shoal/internal/golden"
	"github.com/shoal-project/shoal/cmd/shoal/internal/testserver"
)

// env is a CLI run against the fake daemon loaded with the fixture swarm;
// the fake clock stands an hour after testserver.Now.
type env struct {
	t     *testing.T
	srv   *testserver.Server
	stdin string
	dir   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := testserver.Start(t)
	srv.LoadCluster()
	return &env{t: t, srv: srv, dir: t.TempDir()}
}

type result struct {
	Out, Err string
	Code     int
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	var out, errb bytes.Buffer
	cli := &command.Cli{
		In:      strings.NewReader(e.stdin),
		Out:     &out,
		Err:     &errb,
		Clock:   clock.NewFake(testserver.Now.Add(time.Hour)),
		Getenv:  func(string) string { return "" },
		Timeout: 10 * time.Second,
	}
	code := commands.Run(context.Background(), cli, append([]string{"-H", e.srv.Host()}, args...))
	return result{Out: out.String(), Err: errb.String(), Code: code}
}

// golden runs args and compares the run with testdata/<name>.golden.
func (e *env) golden(name string, args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	text := fmt.Sprintf("$ shoal %s\n-- stdout --\n%s-- stderr --\n%s-- exit %d --\n", strings.Join(args, " "), r.Out, r.Err, r.Code)
	text = strings.ReplaceAll(text, e.dir, "$DIR")
	golden.Assert(e.t, text, name+".golden")
	return r
}
