package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestServerEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Add(3)
	var notReady atomic.Pointer[error]
	s, err := Listen(Config{Addr: "127.0.0.1:0", Gatherer: reg, Ready: func(ctx context.Context) error {
		if e := notReady.Load(); e != nil {
			return *e
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	base := "http://" + s.Addr()

	code, body := get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, "shoal_test_total 3") {
		t.Fatalf("/metrics: %d %q", code, body)
	}
	if code, body = get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body = get(t, base+"/readyz"); code != 200 || body != "ok\n" {
		t.Fatalf("/readyz ready: %d %q", code, body)
	}
	e := errors.New("the swarm does not have a leader")
	notReady.Store(&e)
	if code, body = get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "not ready: the swarm does not have a leader") {
		t.Fatalf("/readyz not ready: %d %q", code, body)
	}
	if code, _ = get(t, base+"/nothing"); code != 404 {
		t.Fatalf("/nothing: %d", code)
	}
}

// A readiness check that hangs is cut off at ReadyTimeout: /readyz
// answers 503, never hangs.
func TestReadyzHasADeadline(t *testing.T) {
	s, err := Listen(Config{Addr: "127.0.0.1:0", Gatherer: prometheus.NewRegistry(), ReadyTimeout: 100 * time.Millisecond,
		Ready: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	code, body := get(t, "http://"+s.Addr()+"/readyz")
	if code != 503 || !strings.Contains(body, "deadline exceeded") {
		t.Fatalf("/readyz: %d %q", code, body)
	}
}

func TestConfigErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	ready := func(context.Context) error { return nil }
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Gatherer: reg, Ready: ready}, "no address"},
		{Config{Addr: "9323", Gatherer: reg, Ready: ready}, "want host:port"},
		{Config{Addr: "127.0.0.1:0", Ready: ready}, "no registry"},
		{Config{Addr: "127.0.0.1:0", Gatherer: reg}, "no readiness"},
	} {
		if _, err := Listen(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	if _, err := Listen(Config{Addr: lis.Addr().String(), Gatherer: reg, Ready: ready}); err == nil || !strings.Contains(err.Error(), lis.Addr().String()) {
		t.Fatalf("address in use: %v", err)
	}
}
