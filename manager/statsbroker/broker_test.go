package statsbroker

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/manager/internal/storetest"
	api "github.com/shoal-project/shoal/proto"
)

type env struct {
	t     *testing.T
	clock *clockwork.FakeClock
	b     *Broker
}

// newEnv leads with a broker over nodes n1..n3 (hostnames h1..h3), service
// web with a running task on each, one shut down on n1, one pending.
func newEnv(t *testing.T) *env {
	clock := clockwork.NewFakeClock()
	store, _ := storetest.New(clock)
	running := func(id, node string) *api.Task {
		return &api.Task{Id: id, ServiceId: "web", NodeId: node, Spec: &api.TaskSpec{},
			DesiredState: api.TaskState_RUNNING, Status: &api.TaskStatus{State: api.TaskState_RUNNING}}
	}
	old := running("old", "n1")
	old.DesiredState = api.TaskState_SHUTDOWN
	pending := running("pend", "")
	pending.Status.State = api.TaskState_PENDING
	node := func(id, host string) *api.Node {
		return &api.Node{Id: id, Description: &api.NodeDescription{Hostname: host}}
	}
	storetest.Seed(t, store, node("n1", "h1"), node("n2", "h2"), node("n3", "h3"),
		&api.Service{Id: "web", Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: "web"}, Task: &api.TaskSpec{}}},
		running("t1", "n1"), running("t2", "n2"), running("t3", "n3"), old, pending)
	b := New(store, clock, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	storetest.Eventually(t, "the broker leads", func() bool { _, err := b.hub.Term(); return err == nil })
	return &env{t: t, clock: clock, b: b}
}

func (e *env) listen(id string) *storetest.SendStream[api.StatsRequest] {
	ctx, cancel := context.WithCancel(storetest.Agent(context.Background(), id))
	e.t.Cleanup(cancel)
	s := storetest.NewSendStream[api.StatsRequest](ctx, 4)
	go func() { _ = e.b.ListenStatsRequests(&api.ListenStatsRequestsRequest{}, s) }()
	storetest.Eventually(e.t, id+" listening", func() bool { return e.b.hub.Listening(id) })
	return s
}

// A round asks each node for its running tasks only, keeps what a node
// says about the tasks it was asked for, and names the nodes that have no
// stream or do not answer in time.
func TestRoundAsksNodesAndNamesTheSilentOnes(t *testing.T) {
	e := newEnv(t)
	s1, s2 := e.listen("n1"), e.listen("n2")
	type result struct {
		resp *api.TaskStatsResponse
		err  error
	}
	res := make(chan result, 1)
	go func() {
		r, err := e.b.TaskStats(context.Background(), &api.TaskStatsRequest{Services: []string{"web"}})
		res <- result{r, err}
	}()
	r1 := s1.Next(t)
	if strings.Join(r1.GetTaskIds(), ",") != "t1" {
		t.Fatalf("n1 asked for %v, want t1 only", r1.GetTaskIds())
	}
	if got := s2.Next(t).GetTaskIds(); strings.Join(got, ",") != "t2" {
		t.Fatalf("n2 asked for %v", got)
	}
	// n1 answers, also about a task it was not asked for (ignored).
	_, err := e.b.PublishStats(storetest.Agent(context.Background(), "n1"), &api.PublishStatsRequest{RequestId: r1.GetId(),
		Stats: []*api.TaskStats{{TaskId: "t1", ServiceName: "web", CpuNanos: 5}, {TaskId: "t2", CpuNanos: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	// n2 never answers: the round ends at its deadline.
	bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer bcancel()
	if err := e.clock.BlockUntilContext(bctx, 1); err != nil {
		t.Fatalf("the round does not wait on the clock: %v", err)
	}
	e.clock.Advance(RoundTimeout)
	var r result
	select {
	case r = <-res:
	case <-time.After(5 * time.Second):
		t.Fatal("TaskStats did not return after its deadline")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.resp.GetStats()) != 1 || r.resp.GetStats()[0].GetTaskId() != "t1" || r.resp.GetStats()[0].GetNodeId() != "n1" {
		t.Fatalf("stats %v, want t1 from n1 only", r.resp.GetStats())
	}
	w := strings.Join(r.resp.GetWarnings(), "\n")
	if !strings.Contains(w, "node h2 did not answer within 3s") || !strings.Contains(w, "node h3 has no stats stream open") {
		t.Fatalf("warnings:\n%s", w)
	}
	// A late answer changes nothing.
	if _, err := e.b.PublishStats(storetest.Agent(context.Background(), "n2"), &api.PublishStatsRequest{RequestId: r1.GetId()}); err != nil {
		t.Fatal(err)
	}
}

// When every node answers, the round ends at once; a node that could not
// read its tasks is named with its reason.
func TestRoundEndsWhenAllAnswered(t *testing.T) {
	e := newEnv(t)
	s1 := e.listen("n1")
	res := make(chan *api.TaskStatsResponse, 1)
	go func() {
		r, err := e.b.TaskStats(context.Background(), &api.TaskStatsRequest{Node: "h1"})
		if err != nil {
			t.Error(err)
		}
		res <- r
	}()
	req := s1.Next(t)
	if _, err := e.b.PublishStats(storetest.Agent(context.Background(), "n1"), &api.PublishStatsRequest{RequestId: req.GetId(), Error: "containerd is down"}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-res:
		if len(r.GetWarnings()) != 1 || !strings.Contains(r.GetWarnings()[0], "node n1 could not read its tasks: containerd is down") {
			t.Fatalf("warnings %q", r.GetWarnings())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the round did not end when every node had answered")
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t)
	if _, err := e.b.TaskStats(context.Background(), &api.TaskStatsRequest{Services: []string{"nosuch"}}); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("unknown service: %v", err)
	}
	if _, err := e.b.TaskStats(context.Background(), &api.TaskStatsRequest{Node: "nowhere"}); !errdefs.IsNotFound(err) {
		t.Errorf("unknown node: %v", err)
	}
	if _, err := e.b.PublishStats(context.Background(), &api.PublishStatsRequest{RequestId: "x"}); err == nil {
		t.Error("PublishStats without a node identity accepted")
	}
}
