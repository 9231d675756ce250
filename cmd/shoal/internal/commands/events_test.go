package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// streamRun is a CLI run that streams until stopped.
type streamRun struct {
	out, err testutil.LogBuffer
	cancel   context.CancelFunc
	done     chan struct{} // closed when Run returned
	code     int
}

// start runs the CLI in the background against the test daemon.
func (e *env) start(args ...string) *streamRun {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &streamRun{cancel: cancel, done: make(chan struct{})}
	cli := &command.Cli{In: strings.NewReader(""), Out: &r.out, Err: &r.err, Clock: e.clock,
		Getenv: func(k string) string { return e.vars[k] }, Timeout: 10 * time.Second}
	go func() {
		defer close(r.done)
		r.code = Run(ctx, cli, append([]string{"-H", e.srv.Host()}, args...))
	}()
	e.t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// waitOut waits, for up to 10 s, until the output matches re.
func (r *streamRun) waitOut(t *testing.T, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for !rx.MatchString(r.out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no output matching %q in 10 s; stdout:\n%s\nstderr:\n%s", re, r.out.String(), r.err.String())
		}
		time.Sleep(5 * time.Millisecond) // bounded poll of another goroutine's output
	}
}

// stop ends the run as Ctrl-C does and returns its exit status.
func (r *streamRun) stop() int {
	r.cancel()
	<-r.done
	return r.code
}

func (e *env) putService(name string, replicas uint64) *api.Service {
	e.t.Helper()
	svc := &api.Service{Id: "evt" + name + strings.Repeat("x", 22-len(name)), Spec: &api.ServiceSpec{
		Annotations: &api.Annotations{Name: name},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx:1"}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: replicas}},
	}}
	if err := e.srv.Update(func(tx *raftstore.Tx) error { return tx.Create(svc) }); err != nil {
		e.t.Fatal(err)
	}
	return svc
}

var probes atomic.Int64

// subscribed creates probe services until the run prints one: from then
// on, the run sees every change.
func (e *env) subscribed(r *streamRun) {
	e.t.Helper()
	for i := 0; ; i++ {
		name := fmt.Sprintf("probe%d", probes.Add(1))
		e.putService(name, 1)
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			if strings.Contains(r.out.String(), "name="+name) || strings.Contains(r.out.String(), `"name":"`+name) ||
				strings.Contains(r.out.String(), " "+name+"\n") {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		if i == 10 {
			e.t.Fatalf("the events run printed no probe; stdout:\n%s\nstderr:\n%s", r.out.String(), r.err.String())
		}
	}
}

// `shoal events` prints docker's lines for the swarm's changes, with
// --filter applied on the way.
func TestEvents(t *testing.T) {
	e := newEnv(t)
	r := e.start("events", "--filter", "type=service")
	e.subscribed(r)
	svc := e.putService("shop", 1)
	r.waitOut(t, `(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) service create `+svc.Id+` \(name=shop\)$`)
	err := e.srv.Update(func(tx *raftstore.Tx) error {
		cur := proto.Clone(tx.Service(svc.Id)).(*api.Service)
		cur.Spec.GetReplicated().Replicas = 3
		return tx.Update(cur)
	})
	if err != nil {
		t.Fatal(err)
	}
	r.waitOut(t, `service update `+svc.Id+` \(name=shop, replicas.new=3, replicas.old=1\)\n`)
	// A secret is not a service: filtered out. Then the service goes.
	err = e.srv.Update(func(tx *raftstore.Tx) error {
		if err := tx.Create(&api.Secret{Id: "sec1", Spec: &api.SecretSpec{Annotations: &api.Annotations{Name: "pw"}}}); err != nil {
			return err
		}
		return tx.Delete(&api.Service{Id: svc.Id})
	})
	if err != nil {
		t.Fatal(err)
	}
	r.waitOut(t, `service remove `+svc.Id+` \(name=shop\)\n`)
	if code := r.stop(); code != 130 {
		t.Errorf("Ctrl-C: exit %d, want 130", code)
	}
	if strings.Contains(r.out.String(), "secret") {
		t.Errorf("--filter type=service printed a secret:\n%s", r.out.String())
	}
}

// --format json and templates see moby's events.Message.
func TestEventsFormat(t *testing.T) {
	e := newEnv(t)
	js := e.start("events", "--format", "json", "--filter", "type=service")
	tmpl := e.start("events", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}", "--filter", "type=service")
	e.subscribed(js)
	e.subscribed(tmpl)
	e.putService("billing", 2)
	tmpl.waitOut(t, `(?m)^service create billing$`)
	js.waitOut(t, `"name":"billing"`)
	for _, line := range strings.Split(strings.TrimSpace(js.out.String()), "\n") {
		var m events.Message
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("--format json line %q: %v", line, err)
		}
		if m.Type != events.ServiceEventType || m.Scope != "swarm" || m.TimeNano == 0 || m.Actor.ID == "" {
			t.Errorf("--format json: %+v", m)
		}
	}
}

// Bad input is refused before anything is sent; a window that is over
// ends at once.
func TestEventsBadInput(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		args []string
		err  string
	}{
		{[]string{"events", "--filter", "colour=red"}, "invalid filter 'colour'"},
		{[]string{"events", "--filter", "type"}, "bad format of filter (expected name=value): type"},
		{[]string{"events", "--since", "yesterday"}, `invalid --since "yesterday"`},
		{[]string{"events", "--format", "{{.Nope"}, "template parsing error"},
	}
	for _, c := range cases {
		r := e.run(c.args...)
		if r.Code != 1 || !strings.Contains(r.Err, c.err) {
			t.Errorf("%v: exit %d, stderr %q; want %q", c.args, r.Code, r.Err, c.err)
		}
	}
	r := e.run("events", "--since", "10m", "--until", "5m")
	if r.Code != 0 || r.Out != "" || r.Err != "" {
		t.Errorf("a window in the past: %+v", r)
	}
	e.nothingSent()
}
