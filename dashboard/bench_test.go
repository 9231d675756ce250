package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/internal/testcluster"
	api "github.com/shoal-project/shoal/proto"
)

// BenchmarkDashboard measures, in headless chromium, on an in-process
// cluster (one manager, 50 simulated nodes, wall clock) with 1,000
// services of 10 running tasks each (10,000 tasks):
//   - first-render-ms: from navigation to the first drawing of the whole
//     state (the page's performance.now() when it drew after loading
//     /api/state: HTML, JS, the state's JSON and the tables);
//   - update-ms: from a UpdateService call (scale one service by one) to
//     the page showing the new desired count (the raft commit, the Watch
//     stream, the SSE fan-out, the page's apply and redraw; polled once
//     per animation frame);
//   - call-ms: the UpdateService call alone (its raft commit), within
//     update-ms;
//   - sse-ms: from the same call to the change reaching a Go client of
//     /api/events (no browser);
//   - state-ms, state-KiB: GET /api/state alone (median of 5) and its
//     size: the Control lists, the conversion and the JSON;
//   - draw-ms: the page's last redraw after the update (draw(): every
//     table from the model).
//
// One page per iteration; run with -benchtime Nx.
func BenchmarkDashboard(b *testing.B) {
	if _, err := os.Stat(chromiumBin); err != nil {
		b.Skipf("chromium is not installed: %v", err)
	}
	services, replicas, nodes := 1000, uint64(10), 50
	if n, err := strconv.Atoi(os.Getenv("SHOAL_DASH_BENCH_SERVICES")); err == nil && n > 0 {
		services = n // a smaller run
	}
	c := testcluster.New(b, testcluster.Options{Managers: 1, NoManagerAgents: true, WallClock: true, WallLimit: 10 * time.Minute})
	f := c.AddSimNodes(nodes)
	c.WaitNodesReady(f, 5*time.Minute)
	cl := c.Control()
	ctx := context.Background()
	for i := range services {
		spec := replicated(fmt.Sprintf("svc-%04d", i), "registry.local/whoami:1", replicas)
		if _, err := cl.CreateService(ctx, &api.CreateServiceRequest{Spec: spec}); err != nil {
			b.Fatal(err)
		}
	}
	c.WaitFor("10,000 running tasks", 10*time.Minute, func() error {
		var running uint64
		for tok := ""; ; {
			resp, err := cl.ListServices(ctx, &api.ListServicesRequest{PageToken: tok})
			if err != nil {
				return err
			}
			for _, n := range resp.GetCounts() {
				running += n.GetRunning()
			}
			if tok = resp.GetNextPageToken(); tok == "" {
				break
			}
		}
		if running != uint64(services)*replicas {
			return fmt.Errorf("%d running", running)
		}
		return nil
	})
	base := startDash(b, c, "")
	// The state's answer alone, as the page fetches it (median of 5).
	var stateTimes []time.Duration
	var stateBytes int
	for range 5 {
		start := time.Now()
		resp, err := http.Get(base + "/api/state")
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("GET /api/state: %d %v", resp.StatusCode, err)
		}
		stateTimes = append(stateTimes, time.Since(start))
		stateBytes = len(body)
	}
	slices.Sort(stateTimes)
	goSSE := (&client{t: b, base: base}).events()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumBin), chromedp.NoSandbox,
		chromedp.WindowSize(1500, 1100), chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(bctx); err != nil {
		b.Fatal(err)
	}
	run := func(what string, a chromedp.Action[chromedp.Void]) {
		ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
		defer cancel()
		if err := chromedp.Do(ctx, a); err != nil {
			b.Fatalf("%s: %v", what, err)
		}
	}
	var first, update, call, sse, draw time.Duration
	b.ResetTimer()
	for i := range b.N {
		run("navigate", chromedp.Navigate(fmt.Sprintf("%s/?run=%d", base, i)))
		run("the page", chromedp.WaitReady(chromedp.CSS("#services")))
		ctx, cancelPoll := context.WithTimeout(bctx, 2*time.Minute)
		ms, err := chromedp.Run(ctx, chromedp.Poll[float64](fmt.Sprintf(
			`window.dashboard && window.dashboard.firstRender && document.querySelectorAll('#services tbody tr').length === %d && window.dashboard.firstRender`, services),
			chromedp.WithPollingTimeout(110*time.Second)))
		cancelPoll()
		if err != nil {
			b.Fatalf("first render: %v", err)
		}
		first += time.Duration(ms * float64(time.Millisecond))

		name := fmt.Sprintf("svc-%04d", i%services)
		svc := c.Service(name)
		want := svc.Spec.GetReplicated().GetReplicas() + 1
		spec := proto.Clone(svc.Spec).(*api.ServiceSpec) // the store's object must not change
		spec.Mode = &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: want}}
		start := time.Now()
		uctx, cancelUpdate := context.WithTimeout(context.Background(), 30*time.Second)
		_, err = cl.UpdateService(uctx, &api.UpdateServiceRequest{ServiceId: svc.Id, ServiceVersion: svc.Meta.Version, Spec: spec})
		cancelUpdate()
		if err != nil {
			b.Fatal(err)
		}
		call += time.Since(start)
		ctx, cancelPoll = context.WithTimeout(bctx, 2*time.Minute)
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(
			`(document.querySelector('#services tr[data-name=%q] .replicas')?.textContent || "").endsWith("/%d")`, name, want),
			chromedp.WithPollingTimeout(110*time.Second)))
		cancelPoll()
		if err != nil {
			dctx, dcancel := context.WithTimeout(bctx, 10*time.Second)
			dump, _ := chromedp.Run(dctx, chromedp.Evaluate[string](fmt.Sprintf(
				`JSON.stringify({changes: window.dashboard.changes, loads: window.dashboard.loads, live: document.querySelector('#live').textContent, row: document.querySelector('#services tr[data-name=%q]')?.textContent})`, name)))
			dcancel()
			b.Fatalf("update: %v; page: %s", err, dump)
		}
		update += time.Since(start)
		// When the same change reached a Go events client.
		for seen := false; !seen; {
			select {
			case e := <-goSSE.events:
				if e.event == "change" && strings.Contains(e.data, fmt.Sprintf(`"name":%q`, name)) &&
					strings.Contains(e.data, fmt.Sprintf(`"replicas":%d,`, want)) {
					sse += e.at.Sub(start)
					seen = true
				}
			case <-time.After(30 * time.Second):
				b.Fatal("the Go events client did not get the change in 30 s")
			}
		}
		dctx, dcancel := context.WithTimeout(bctx, 10*time.Second)
		ms, err = chromedp.Run(dctx, chromedp.Evaluate[float64](`window.dashboard.drawMs`))
		dcancel()
		if err != nil {
			b.Fatal(err)
		}
		draw += time.Duration(ms * float64(time.Millisecond))
	}
	b.StopTimer()
	b.ReportMetric(float64(first.Milliseconds())/float64(b.N), "first-render-ms")
	b.ReportMetric(float64(update.Microseconds())/1000/float64(b.N), "update-ms")
	b.ReportMetric(float64(draw.Microseconds())/1000/float64(b.N), "draw-ms")
	b.ReportMetric(float64(call.Microseconds())/1000/float64(b.N), "call-ms")
	b.ReportMetric(float64(sse.Microseconds())/1000/float64(b.N), "sse-ms")
	b.ReportMetric(float64(stateTimes[2].Microseconds())/1000, "state-ms")
	b.ReportMetric(float64(stateBytes)/1024, "state-KiB")
}
