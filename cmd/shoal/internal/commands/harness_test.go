package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/cmd/shoal/internal/clock"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	"github.com/shoal-project/shoal/cmd/shoal/internal/golden"
)

// env is one test's CLI environment: the test daemon (the real Control API) loaded with the fixture
// swarm, a fake clock at daemontest.Now, and the CLI's streams.
type env struct {
	t     *testing.T
	srv   *daemontest.Daemon
	clock *clock.Fake
	tty   bool
	width int
	stdin string
	vars  map[string]string
	ctx   context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := daemontest.Start(t)
	srv.LoadCluster()
	return &env{t: t, srv: srv, clock: clock.NewFake(daemontest.Now), vars: map[string]string{}, ctx: context.Background()}
}

// result is what one CLI run printed and returned.
type result struct {
	Out, Err string
	Code     int
}

// String renders a run for golden files.
func (r result) String() string {
	var b strings.Builder
	b.WriteString("-- stdout --\n")
	b.WriteString(r.Out)
	b.WriteString("-- stderr --\n")
	b.WriteString(r.Err)
	fmt.Fprintf(&b, "-- exit %d --\n", r.Code)
	return b.String()
}

// run executes the CLI against the test daemon.
func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.runRaw(append([]string{"-H", e.srv.Host()}, args...)...)
}

// runRaw executes the CLI with exactly args (no -H unless the socket is set).
func (e *env) runRaw(args ...string) result {
	e.t.Helper()
	var out, errb bytes.Buffer
	cli := &command.Cli{
		In:            strings.NewReader(e.stdin),
		Out:           &out,
		Err:           &errb,
		OutIsTerminal: e.tty,
		TermWidth:     e.width,
		Clock:         e.clock,
		Getenv:        func(k string) string { return e.vars[k] },
		Timeout:       10 * time.Second,
	}
	code := Run(e.ctx, cli, args)
	return result{Out: out.String(), Err: errb.String(), Code: code}
}

// golden runs args and compares the whole run with testdata/<name>.golden.
func (e *env) golden(name string, args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	text := "$ shoal " + strings.Join(args, " ") + "\n" + r.String()
	text = daemontest.Scrub(strings.ReplaceAll(text, "\x1b", "^["))
	text = strings.ReplaceAll(text, runtime.Version(), "GOVERSION")
	text = strings.ReplaceAll(text, runtime.GOOS+"/"+runtime.GOARCH, "OS/ARCH")
	golden.Assert(e.t, text, name+".golden")
	return r
}

// lastRequest returns the last request of method, failing when none came.
func (e *env) lastRequest(method string) proto.Message {
	e.t.Helper()
	reqs := e.srv.Requests(method)
	if len(reqs) == 0 {
		e.t.Fatalf("no %s request; calls: %v", method, e.srv.Methods())
	}
	return reqs[len(reqs)-1]
}

// requestGolden compares the last request of method, as indented JSON, with
// testdata/<name>.json.
func (e *env) requestGolden(method, name string) {
	e.t.Helper()
	golden.Assert(e.t, protoJSON(e.t, e.lastRequest(method)), name+".json")
}

func protoJSON(t *testing.T, m proto.Message) string {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	return buf.String() + "\n"
}

// noMutations fails when a request that changes state reached the daemon.
func (e *env) noMutations() {
	e.t.Helper()
	for _, m := range e.srv.Methods() {
		for _, prefix := range []string{"Create", "Update", "Remove", "Init", "Join", "Leave"} {
			if strings.HasPrefix(m, prefix) {
				e.t.Errorf("%s reached the daemon", m)
			}
		}
	}
}

// nothingSent fails when any request reached the daemon.
func (e *env) nothingSent() {
	e.t.Helper()
	if m := e.srv.Methods(); len(m) > 0 {
		e.t.Errorf("requests reached the daemon: %v", m)
	}
}

func durationOf(d time.Duration) *durationpb.Duration { return durationpb.New(d) }
