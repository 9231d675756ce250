package stack_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/cmd/shoal/internal/clock"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/commands"
	"github.com/shoal-project/shoal/cmd/shoal/internal/golden"
	"github.com/shoal-project/shoal/cmd/shoal/internal/testserver"
	api "github.com/shoal-project/shoal/proto"
)

// env is a CLI run against the fake daemon loaded with the fixture swarm.
type env struct {
	t     *testing.T
	srv   *testserver.Server
	clock *clock.Fake
	stdin string
	dir   string // where the test's stack files are
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := testserver.Start(t)
	srv.LoadCluster()
	return &env{t: t, srv: srv, clock: clock.NewFake(testserver.Now), dir: t.TempDir()}
}

type result struct {
	Out, Err string
	Code     int
}

func (r result) String() string {
	return fmt.Sprintf("-- stdout --\n%s-- stderr --\n%s-- exit %d --\n", r.Out, r.Err, r.Code)
}

// file writes a stack file (or any file) into the test's directory and
// returns its path.
func (e *env) file(name, content string) string {
	e.t.Helper()
	path := filepath.Join(e.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return path
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	var out, errb bytes.Buffer
	cli := &command.Cli{
		In:      strings.NewReader(e.stdin),
		Out:     &out,
		Err:     &errb,
		Clock:   e.clock,
		Getenv:  func(string) string { return "" },
		Timeout: 10 * time.Second,
	}
	code := commands.Run(context.Background(), cli, append([]string{"-H", e.srv.Host()}, args...))
	return result{Out: out.String(), Err: errb.String(), Code: code}
}

// golden runs args and compares the run with testdata/<name>.golden; the
// test directory is shown as $DIR.
func (e *env) golden(name string, args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	text := "$ shoal " + strings.Join(args, " ") + "\n" + r.String()
	text = strings.ReplaceAll(text, e.dir, "$DIR")
	golden.Assert(e.t, text, name+".golden")
	return r
}

func (e *env) mustRun(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.Code != 0 {
		e.t.Fatalf("shoal %s: exit %d\n%s", strings.Join(args, " "), r.Code, r)
	}
	return r
}

// mutations lists the calls that change state.
func (e *env) mutations() []string {
	var out []string
	for _, m := range e.srv.Methods() {
		for _, p := range []string{"Create", "Update", "Remove"} {
			if strings.HasPrefix(m, p) {
				out = append(out, m)
			}
		}
	}
	return out
}

// running makes every service's current tasks run, so that the converge
// display ends.
func (e *env) running() {
	srv := e.srv
	srv.Mu.Lock()
	defer srv.Mu.Unlock()
	srv.ListTasksHook = func(_ int, _ *api.ListTasksRequest) []*api.Task {
		var tasks []*api.Task
		for _, s := range srv.Services { // the server holds Mu
			n := s.GetSpec().GetReplicated().GetReplicas()
			if s.GetSpec().GetGlobal() != nil {
				n = 1
			}
			for slot := uint64(1); slot <= n; slot++ {
				t := testserver.Task(fmt.Sprintf("%s-task-%d", s.GetId()[:8], slot), s.GetId(), s.GetSpec().GetAnnotations().GetName(),
					slot, testserver.Node1, api.TaskState_RUNNING, api.TaskState_RUNNING, 3*time.Second)
				t.SpecVersion = s.GetSpecVersion()
				tasks = append(tasks, t)
			}
		}
		return tasks
	}
}

var errorInUse = status.Error(codes.FailedPrecondition, "network tools_default is in use by service x")

var errorConflict = status.Error(codes.Aborted, "update out of sequence")
