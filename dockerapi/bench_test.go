package dockerapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/shoal-project/shoal/dockerapi"
	"github.com/shoal-project/shoal/internal/testcluster"
	api "github.com/shoal-project/shoal/proto"
)

// benchServices is the number of services the gateway benchmarks list.
const benchServices = 1000

// gatewayBench is a one-manager in-process cluster (its agent runs tasks
// on the fake executor) with benchServices services of one replica each,
// and the gateway serving it on a real unix socket.
type gatewayBench struct {
	control api.ControlClient
	http    *http.Client
	svcID   string // a service whose tasks GET /tasks lists
}

func newGatewayBench(b *testing.B) *gatewayBench {
	b.Helper()
	c := testcluster.New(b, testcluster.Options{Managers: 1, WallClock: true, WallLimit: 5 * time.Minute})
	conn := c.ConnVia(c.Leader())
	control := api.NewControlClient(conn)
	ctx := context.Background()
	var first string
	for i := range benchServices {
		resp, err := control.CreateService(ctx, &api.CreateServiceRequest{Spec: benchSpec(fmt.Sprintf("svc-%04d", i), 1)})
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			first = resp.GetService().GetId()
		}
	}
	// Wait until every task runs: the scheduler is quiet while measuring.
	c.WaitFor("every service's task to run", 4*time.Minute, func() error {
		n, err := countTasks(ctx, control, &api.ListFilters{DesiredStates: []api.TaskState{api.TaskState_RUNNING}})
		if err != nil {
			return err
		}
		if n < benchServices {
			return fmt.Errorf("%d of %d tasks running", n, benchServices)
		}
		return nil
	})

	gw, err := dockerapi.New(dockerapi.Config{Conn: conn, Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "gwbench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: gw.Handler()}
	go func() { _ = hs.Serve(l) }()
	b.Cleanup(func() { _ = hs.Close() })
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 4,
	}}
	b.Cleanup(hc.CloseIdleConnections)
	return &gatewayBench{control: control, http: hc, svcID: first}
}

func benchSpec(name string, replicas uint64) *api.ServiceSpec {
	return &api.ServiceSpec{
		Annotations: &api.Annotations{Name: name, Labels: map[string]string{"bench": "gateway"}},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "busybox:latest", Command: []string{"sleep", "3600"}}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: replicas}},
	}
}

func countTasks(ctx context.Context, control api.ControlClient, f *api.ListFilters) (int, error) {
	n, token := 0, ""
	for {
		r, err := control.ListTasks(ctx, &api.ListTasksRequest{Filters: f, PageToken: token})
		if err != nil {
			return 0, err
		}
		for _, t := range r.GetTasks() {
			if t.GetStatus().GetState() == api.TaskState_RUNNING {
				n++
			}
		}
		if token = r.GetNextPageToken(); token == "" {
			return n, nil
		}
	}
}

// do sends one request and reads the whole answer (not decoding it: the
// client's JSON decoding is not the gateway's work).
func (g *gatewayBench) do(b *testing.B, method, path string, body []byte, want int) {
	req, err := http.NewRequest(method, "http://docker"+path, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.http.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want || n == 0 {
		b.Fatalf("%s %s: %d (%d bytes)", method, path, resp.StatusCode, n)
	}
}

// latencies collects one duration per call and reports percentiles.
type latencies []time.Duration

func (l latencies) pct(p float64) float64 {
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(p * float64(len(s)-1))
	return float64(s[i].Microseconds()) / 1000
}

// report adds p50 and p99 of both sides, in ms, and the gateway's added
// p50 (gateway p50 - gRPC p50).
func report(b *testing.B, gw, rpc latencies) {
	b.ReportMetric(gw.pct(0.5), "gw-p50-ms")
	b.ReportMetric(gw.pct(0.99), "gw-p99-ms")
	b.ReportMetric(rpc.pct(0.5), "grpc-p50-ms")
	b.ReportMetric(rpc.pct(0.99), "grpc-p99-ms")
	b.ReportMetric(gw.pct(0.5)-rpc.pct(0.5), "added-p50-ms")
}

// timed runs f and returns how long it took.
func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// BenchmarkEngineAPIGateway: each Engine API call through the gateway (HTTP
// over its unix socket, JSON, conversion, then the manager's gRPC) against
// the gRPC call(s) that fetch the same objects, with 1,000 services of one
// running task each. Every iteration makes the call both ways,
// alternately, so load on the machine falls on both alike.
func BenchmarkEngineAPIGateway(b *testing.B) {
	g := newGatewayBench(b)
	ctx := context.Background()
	listServices := func() int {
		n, token := 0, ""
		for {
			r, err := g.control.ListServices(ctx, &api.ListServicesRequest{PageToken: token})
			if err != nil {
				b.Fatal(err)
			}
			n += len(r.GetServices())
			if token = r.GetNextPageToken(); token == "" {
				return n
			}
		}
	}
	listTasks := func(f *api.ListFilters) {
		token := ""
		for {
			r, err := g.control.ListTasks(ctx, &api.ListTasksRequest{Filters: f, PageToken: token})
			if err != nil {
				b.Fatal(err)
			}
			if token = r.GetNextPageToken(); token == "" {
				return
			}
		}
	}

	b.Run("GET_services", func(b *testing.B) {
		var gw, rpc latencies
		for b.Loop() {
			gw = append(gw, timed(func() { g.do(b, "GET", "/v1.50/services", nil, 200) }))
			rpc = append(rpc, timed(func() {
				if n := listServices(); n < benchServices {
					b.Fatalf("%d services", n)
				}
			}))
		}
		report(b, gw, rpc)
	})

	// docker service ls asks ?status=true: the tasks and nodes too.
	b.Run("GET_services_status", func(b *testing.B) {
		var gw, rpc latencies
		for b.Loop() {
			gw = append(gw, timed(func() { g.do(b, "GET", "/v1.50/services?status=true", nil, 200) }))
			rpc = append(rpc, timed(func() {
				listServices()
				listTasks(nil)
				if _, err := g.control.ListNodes(ctx, &api.ListNodesRequest{}); err != nil {
					b.Fatal(err)
				}
			}))
		}
		report(b, gw, rpc)
	})

	b.Run("GET_tasks_filter_service", func(b *testing.B) {
		path := "/v1.50/tasks?filters=" + url.QueryEscape(`{"service":{"`+g.svcID+`":true}}`)
		var gw, rpc latencies
		for b.Loop() {
			gw = append(gw, timed(func() { g.do(b, "GET", path, nil, 200) }))
			rpc = append(rpc, timed(func() { listTasks(&api.ListFilters{ServiceIds: []string{g.svcID}}) }))
		}
		report(b, gw, rpc)
	})

	// Services of no replicas: the create is measured, not the scheduling.
	i := 0 // names stay unique over -count runs
	b.Run("POST_services_create", func(b *testing.B) {
		var gw, rpc latencies
		for b.Loop() {
			i++
			body := fmt.Appendf(nil, `{"Name":"gw-%d","Labels":{"bench":"gateway"},"TaskTemplate":{"ContainerSpec":{"Image":"busybox:latest","Command":["sleep","3600"]}},"Mode":{"Replicated":{"Replicas":0}}}`, i)
			gw = append(gw, timed(func() { g.do(b, "POST", "/v1.50/services/create", body, 201) }))
			rpc = append(rpc, timed(func() {
				if _, err := g.control.CreateService(ctx, &api.CreateServiceRequest{Spec: benchSpec(fmt.Sprintf("rpc-%d", i), 0)}); err != nil {
					b.Fatal(err)
				}
			}))
		}
		report(b, gw, rpc)
	})
}
