package dashboard_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/dashboard"
	"github.com/shoal-project/shoal/internal/testcluster"
	api "github.com/shoal-project/shoal/proto"
)

func replicated(name, image string, n uint64) *api.ServiceSpec {
	return &api.ServiceSpec{
		Annotations: &api.Annotations{Name: name},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: image}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: n}},
	}
}

// startDash serves a dashboard for c's leader on a loopback port until the
// test ends, and returns its base URL.
func startDash(t testing.TB, c *testcluster.Cluster, token string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var log *slog.Logger
	if os.Getenv("SHOAL_DASH_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := dashboard.New(dashboard.Config{Conn: c.ConnVia(c.Leader()), Listener: ln, Token: token, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Serve did not return in 20 s after its context ended")
		}
	})
	return "http://" + ln.Addr().String()
}

// client calls the dashboard's API.
type client struct {
	t     testing.TB
	base  string
	token string
}

// do sends a request with a JSON body (nil: none) and decodes the JSON
// answer into out (nil: ignored); it returns the status and the error
// message, if any.
func (c *client) do(method, path, ctype string, body any, out any) (int, string) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var e struct{ Message string }
		if err := json.Unmarshal(raw, &e); err != nil || e.Message == "" {
			c.t.Fatalf("%s %s: status %d without a JSON message: %q", method, path, resp.StatusCode, raw)
		}
		return resp.StatusCode, e.Message
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, ""
}

func (c *client) state() *dashboard.State {
	c.t.Helper()
	var st dashboard.State
	if code, msg := c.do("GET", "/api/state", "", nil, &st); code != 200 {
		c.t.Fatalf("GET /api/state: %d %s", code, msg)
	}
	return &st
}

// sse reads an events stream.
type sse struct {
	t      testing.TB
	cancel func()
	events chan sseEvent
}

// sseEvent is one server-sent event and when it was read.
type sseEvent struct {
	event, data string
	at          time.Time
}

func (c *client) events() *sse {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", c.base+"/api/events", nil)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		c.t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		c.t.Fatalf("GET /api/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sse{t: c.t, cancel: cancel, events: make(chan sseEvent, 100000)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(s.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev != "" {
					s.events <- sseEvent{ev, data, time.Now()}
				}
				ev, data = "", ""
			case strings.HasPrefix(line, "event: "):
				ev = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	c.t.Cleanup(func() { cancel(); <-done })
	return s
}

// await reads events until match accepts one, for up to 60 s.
func (s *sse) await(what string, match func(ev string, c dashboard.Change, raw string) bool) {
	s.t.Helper()
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				s.t.Fatalf("waiting for %s: the event stream ended", what)
			}
			var c dashboard.Change
			if e.event == "change" {
				if err := json.Unmarshal([]byte(e.data), &c); err != nil {
					s.t.Fatalf("change %q: %v", e.data, err)
				}
			}
			if match(e.event, c, e.data) {
				return
			}
		case <-timeout.C:
			s.t.Fatalf("no event %s in 60 s", what)
		}
	}
}

// field reads one field of a change's object.
func field(c dashboard.Change, name string) any {
	m, _ := c.Object.(map[string]any)
	return m[name]
}
