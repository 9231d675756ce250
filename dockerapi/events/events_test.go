package events

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func newSource(t *testing.T, ring, buf int) *Source {
	t.Helper()
	s, err := New(Config{Watch: nilWatcher{}, RingSize: ring, ClientBuffer: buf})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// nilWatcher satisfies Config for tests that publish by hand.
type nilWatcher struct{ Watcher }

func ev(typ events.Type, action events.Action, name string, at time.Time) Event {
	return Event{Msg: events.Message{Type: typ, Action: action, Scope: Scope, Actor: events.Actor{ID: "id-" + name, Attributes: map[string]string{"name": name}},
		Time: at.Unix(), TimeNano: at.UnixNano()}}
}

func names(ms []events.Message) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Actor.Attributes["name"])
	}
	return strings.Join(out, ",")
}

// The ring keeps the last RingSize events; since and until select from it.
func TestRingSinceUntil(t *testing.T) {
	s := newSource(t, 3, 8)
	t0 := time.Unix(1_800_000_000, 0)
	for i, n := range []string{"a", "b", "c", "d", "e"} {
		s.Publish(ev(events.ServiceEventType, events.ActionCreate, n, t0.Add(time.Duration(i)*time.Second)))
	}
	cases := []struct {
		since, until time.Time
		want         string
	}{
		{time.Time{}, time.Time{}, ""}, // live only, as dockerd
		{t0, time.Time{}, "c,d,e"},     // a and b fell out of the ring
		{t0.Add(3 * time.Second), time.Time{}, "d,e"},
		{time.Time{}, t0.Add(3 * time.Second), "c,d"}, // until alone: all up to it
		{t0.Add(3 * time.Second), t0.Add(3 * time.Second), "d"},
	}
	for _, c := range cases {
		sub, replay := s.Subscribe(nil, c.since, c.until)
		sub.Close()
		if got := names(replay); got != c.want {
			t.Errorf("since %v until %v: %q, want %q", c.since, c.until, got, c.want)
		}
	}
}

// A subscriber that does not read is cut off once its buffer is full; the
// others are not held back.
func TestSlowSubscriberIsCutOff(t *testing.T) {
	s := newSource(t, 16, 4)
	slow, _ := s.Subscribe(nil, time.Time{}, time.Time{})
	fast, _ := s.Subscribe(nil, time.Time{}, time.Time{})
	now := time.Now()
	for i := 0; i < 5; i++ {
		s.Publish(ev(events.ServiceEventType, events.ActionUpdate, "web", now))
		<-fast.C
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("a subscriber 5 events behind with a buffer of 4 was not cut off")
	}
	if err := slow.Err(); !errors.Is(err, ErrCutOff) || !strings.Contains(err.Error(), "read too slowly: 4 events") {
		t.Fatalf("cut-off error: %v", err)
	}
	if fast.Err() != nil {
		t.Fatalf("the reading subscriber ended: %v", fast.Err())
	}
	s.mu.Lock()
	n := len(s.subs)
	s.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d subscribers registered, want the reading one only", n)
	}
	fast.Close()
	fast.Close() // twice is fine
	if fast.Err() != nil {
		t.Fatalf("Close made an error: %v", fast.Err())
	}
}

// Over HTTP: a client that reads too slowly gets a final "daemon error"
// message and then a broken stream, never an unbounded buffer.
func TestServeEventsCutsOffSlowClient(t *testing.T) {
	s := newSource(t, 16, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := ServeEvents(r.Context(), w, r, s, nil, time.Time{}, time.Time{}); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	// The client reads nothing while 64 events of 256 KiB arrive: far
	// more than the socket buffers and the 4-event buffer hold.
	big := strings.Repeat("x", 256<<10)
	now := time.Now()
	for i := 0; i < 64; i++ {
		e := ev(events.ServiceEventType, events.ActionUpdate, "web", now.Add(time.Duration(i)))
		e.Msg.Actor.Attributes["pad"] = big
		s.Publish(e)
	}
	dec := json.NewDecoder(bufio.NewReaderSize(resp.Body, 1<<20))
	var msgs []events.Message
	for {
		var m events.Message
		if err = dec.Decode(&m); err != nil {
			break
		}
		msgs = append(msgs, m)
	}
	if errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("the stream ended cleanly (%v); want a broken one", err)
	}
	if len(msgs) == 0 || len(msgs) >= 64 {
		t.Fatalf("%d messages before the end; want some, not all", len(msgs))
	}
	last := msgs[len(msgs)-1]
	if last.Type != events.DaemonEventType || last.Action != "error" || !strings.Contains(last.Actor.Attributes["error"], "read too slowly") ||
		!strings.Contains(last.Actor.Attributes["error"], "reconnect with since=") {
		t.Fatalf("last message: %+v", last)
	}
}

// Live events stream until `until`; filters apply; bad keys are refused
// before anything is written.
func TestServeEventsUntilAndFilters(t *testing.T) {
	s := newSource(t, 16, 16)
	past := time.Now().Add(-time.Minute)
	s.Publish(ev(events.ServiceEventType, events.ActionCreate, "web", past))
	s.Publish(ev(events.NodeEventType, events.ActionUpdate, "n1", past))

	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/events", nil)
	err := ServeEvents(context.Background(), rec, req, s, map[string][]string{"type": {"service"}}, past.Add(-time.Second), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(rec.Body.String(), "\n"); got != 1 || !strings.Contains(rec.Body.String(), `"Type":"service"`) {
		t.Fatalf("replay with type=service, until now: %q", rec.Body.String())
	}

	err = ServeEvents(context.Background(), httptest.NewRecorder(), req, s, map[string][]string{"colour": {"red"}}, time.Time{}, time.Time{})
	if !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), "invalid filter 'colour'") {
		t.Fatalf("bad key: %v", err)
	}

	// until a little ahead: a live event arrives, then the stream ends.
	rec = httptest.NewRecorder()
	done := make(chan error, 1)
	go func() {
		done <- ServeEvents(context.Background(), rec, req, s, nil, time.Time{}, time.Now().Add(500*time.Millisecond))
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.subs)
		s.mu.Unlock()
		if n == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond) // wait for the subscription: no other signal from outside
	}
	s.Publish(ev(events.SecretEventType, events.ActionCreate, "pw", time.Now()))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end at until")
	}
	if !strings.Contains(rec.Body.String(), `"name":"pw"`) {
		t.Fatalf("live event missing: %q", rec.Body.String())
	}
}

func TestFilter(t *testing.T) {
	task := Event{Msg: events.Message{Type: TaskEventType, Action: "running", Scope: Scope, Actor: events.Actor{ID: "t1",
		Attributes: map[string]string{"name": "web.1", "service.id": "svc123", "service.name": "web", "node.id": "node9"}}},
		Labels: map[string]string{"com.docker.stack.namespace": "app"}}
	svc := ev(events.ServiceEventType, events.ActionUpdate, "web", time.Now())
	svc.Msg.Actor.ID = "svc123"
	node := ev(events.NodeEventType, events.ActionUpdate, "node-a", time.Now())
	cases := []struct {
		f    Filter
		e    Event
		want bool
	}{
		{nil, task, true},
		{Filter{"type": {"task"}}, task, true},
		{Filter{"type": {"service", "node"}}, task, false},
		{Filter{"event": {"running"}}, task, true},
		{Filter{"action": {"failed"}}, task, false},
		{Filter{"service": {"web"}}, task, true},
		{Filter{"service": {"svc1"}}, task, true}, // ID prefix
		{Filter{"service": {"web"}}, svc, true},
		{Filter{"service": {"we"}}, svc, true}, // dockerd's fuzzy match: a prefix of the name
		{Filter{"service": {"db"}}, svc, false},
		{Filter{"service": {"web"}}, node, false},
		{Filter{"node": {"node9"}}, task, true},
		{Filter{"node": {"node-a"}}, node, true},
		{Filter{"node": {"node-a"}}, svc, false},
		{Filter{"label": {"com.docker.stack.namespace=app"}}, task, true},
		{Filter{"label": {"com.docker.stack.namespace"}}, task, true},
		{Filter{"label": {"com.docker.stack.namespace=other"}}, task, false},
		{Filter{"label": {"com.docker.stack.namespace", "missing"}}, task, false},
		{Filter{"scope": {"swarm"}}, task, true},
		{Filter{"scope": {"local"}}, task, false},
		{Filter{"container": {"x"}}, task, false},
		{Filter{"id": {"svc"}}, svc, true},
		{Filter{"name": {"web"}}, svc, true},
		{Filter{"type": {"service"}, "service": {"web"}}, svc, true},
		{Filter{"type": {"service"}, "service": {"db"}}, svc, false},
	}
	for _, c := range cases {
		if got := c.f.Match(c.e); got != c.want {
			t.Errorf("%v on %s %s: %v, want %v", c.f, c.e.Msg.Type, c.e.Msg.Actor.Attributes["name"], got, c.want)
		}
	}
	if _, err := NewFilter(map[string][]string{"type": {"x"}, "event": {"y"}, "label": {"a=b"}}); err != nil {
		t.Errorf("docker's keys: %v", err)
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"1796191401", time.Unix(1796191401, 0)},
		{"1796191401.5", time.Unix(1796191401, 500_000_000)},
		{"1796191401.000000001", time.Unix(1796191401, 1)},
		{"10m", now.Add(-10 * time.Minute)},
		{"1h30m", now.Add(-90 * time.Minute)},
		{"2026-12-02T17:00:00Z", time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)},
		{"2026-12-02T17:00:00.25+01:00", time.Date(2026, 12, 2, 16, 0, 0, 250_000_000, time.UTC)},
		{"2026-12-02", time.Date(2026, 12, 2, 0, 0, 0, 0, time.Local)},
	}
	for _, c := range cases {
		got, err := ParseTime("since", c.in, now)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("%q: %v %v, want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"yesterday", "12.", "1.1234567890", "-5"} {
		if _, err := ParseTime("until", bad, now); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "invalid until") {
			t.Errorf("%q: %v, want an invalid argument", bad, err)
		}
	}
	if got := FormatUnix(time.Unix(1796191401, 5)); got != "1796191401.000000005" {
		t.Errorf("FormatUnix: %s", got)
	}
}

// dockerd's attributes for node and service updates, and task events.
func TestConvert(t *testing.T) {
	ts := timestamppb.New(time.Unix(1_800_000_000, 42))
	oldNode := &api.Node{Id: "n1", Meta: &api.Meta{UpdatedAt: ts}, Description: &api.NodeDescription{Hostname: "host1"},
		Spec: &api.NodeSpec{}, Role: api.NodeRole_WORKER, Status: &api.NodeStatus{State: api.NodeStatus_READY}}
	newNode := &api.Node{Id: "n1", Meta: &api.Meta{UpdatedAt: ts}, Description: &api.NodeDescription{Hostname: "host1"},
		Spec: &api.NodeSpec{Availability: api.Availability_DRAIN}, Role: api.NodeRole_MANAGER, Status: &api.NodeStatus{State: api.NodeStatus_DOWN}}
	e, ok := Convert(&api.WatchEvent{Action: api.WatchAction_WATCH_ACTION_UPDATE,
		Object: &api.StoreObject{Object: &api.StoreObject_Node{Node: newNode}}, OldObject: &api.StoreObject{Object: &api.StoreObject_Node{Node: oldNode}}}, time.Now())
	want := map[string]string{"name": "host1", "availability.old": "active", "availability.new": "drain", "role.old": "worker", "role.new": "manager",
		"state.old": "ready", "state.new": "down"}
	if !ok || e.Msg.Type != "node" || e.Msg.Action != "update" || e.Msg.TimeNano != 1_800_000_000*1e9+42 || !sameMap(e.Msg.Actor.Attributes, want) {
		t.Errorf("node update: %+v", e.Msg)
	}

	task := func(st api.TaskState) *api.Task {
		return &api.Task{Id: "t1", ServiceId: "s1", Slot: 0, NodeId: "n1", ServiceAnnotations: &api.Annotations{Name: "agent"},
			DesiredState: api.TaskState_RUNNING, Status: &api.TaskStatus{State: st, Err: map[bool]string{true: "exit 1"}[st == api.TaskState_FAILED]}}
	}
	wrap := func(t *api.Task) *api.StoreObject { return &api.StoreObject{Object: &api.StoreObject_Task{Task: t}} }
	e, ok = Convert(&api.WatchEvent{Action: api.WatchAction_WATCH_ACTION_UPDATE, Object: wrap(task(api.TaskState_FAILED)), OldObject: wrap(task(api.TaskState_RUNNING))}, time.Now())
	if !ok || e.Msg.Type != "task" || e.Msg.Action != "failed" || e.Msg.Actor.Attributes["name"] != "agent.n1" ||
		e.Msg.Actor.Attributes["error"] != "exit 1" || e.Msg.Actor.Attributes["state.old"] != "running" {
		t.Errorf("task failed: %+v", e.Msg)
	}
	if _, ok := Convert(&api.WatchEvent{Action: api.WatchAction_WATCH_ACTION_UPDATE, Object: wrap(task(api.TaskState_RUNNING)), OldObject: wrap(task(api.TaskState_RUNNING))}, time.Now()); ok {
		t.Error("a task write that keeps the state made an event")
	}
	if _, ok := Convert(&api.WatchEvent{Action: api.WatchAction_WATCH_ACTION_UPDATE, Object: &api.StoreObject{Object: &api.StoreObject_Cluster{Cluster: &api.Cluster{}}}}, time.Now()); ok {
		t.Error("the cluster object made an event (dockerd makes none)")
	}
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
