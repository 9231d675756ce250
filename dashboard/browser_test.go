package dashboard_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shoal-project/shoal/internal/testcluster"
	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
)

// chromiumBin is Debian's chromium (scripts/install-deps.sh installs it).
const chromiumBin = "/usr/bin/chromium"

// requireChromium fails the test under SHOAL_TEST_ROOT=1 (make test) when
// chromium is not installed, and skips it otherwise.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumBin); err != nil {
		if testutil.Strict() {
			t.Fatalf("chromium is not installed (apt-get install chromium, or scripts/install-deps.sh): %v", err)
		}
		t.Skipf("chromium is not installed: %v", err)
	}
}

// artifactDir is where browser tests save screenshots
// (testutil.ArtifactDir: $SHOAL_ARTIFACT_DIR/dashboard by default in the
// temporary directory).
func artifactDir(t testing.TB) string { return testutil.ArtifactDir(t, "dashboard") }

// browser runs a headless chromium for the test; its context ends with
// the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumBin), chromedp.NoSandbox,
		chromedp.WindowSize(1500, 1100), chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser, which lives as long as this
	// context: no timeout here (steps take theirs).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromiumBin, err)
	}
	return ctx
}

// page drives one tab; every step has a deadline.
type page struct {
	t   *testing.T
	ctx context.Context
	dir string
}

func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// wait polls a JavaScript predicate for up to 90 s.
func (p *page) wait(what, expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 100*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(90*time.Second),
		chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		var body string
		_, _ = chromedp.Run(p.ctx, func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
			var err error
			body, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
			return chromedp.Void{}, err
		})
		p.shot("failed")
		p.t.Fatalf("waiting for %s (%s): %v\npage:\n%s", what, expr, err, body)
	}
}

func (p *page) eval(expr string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// shot saves a full-page screenshot as NAME.png in the artifacts.
func (p *page) shot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		p.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(p.dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Error(err)
	}
	p.t.Logf("screenshot: %s", path)
}

// confirm clicks the dialog's Confirm, after setting its field when value
// is not "".
func (p *page) confirm(value string) {
	p.t.Helper()
	p.do("the confirmation dialog", chromedp.WaitVisible(chromedp.CSS("#confirm-ok")))
	if value != "" {
		p.do("set "+value, chromedp.SetValue(chromedp.CSS("#confirm-input"), value))
	}
	p.do("confirm", chromedp.Click(chromedp.CSS("#confirm-ok")))
}

// The dashboard in headless chromium, on an in-process cluster (fake
// executor): it renders the cluster; scaling a service shows the new
// tasks running without a reload; a killed task goes Failed and its
// replacement starts; draining a node moves its tasks.
func TestBrowser(t *testing.T) {
	requireChromium(t)
	c := testcluster.New(t, testcluster.Options{Managers: 1, Workers: 2})
	c.WaitReady()
	c.CreateService(replicated("web", "registry.local/whoami:1", 2))
	c.Converge("web", 2, time.Minute)
	base := startDash(t, c, "")
	p := &page{t: t, ctx: browser(t), dir: artifactDir(t)}

	// It renders the cluster.
	p.do("open the dashboard", chromedp.Navigate(base))
	p.wait("web 2/2", `document.querySelector('#services tr[data-name="web"] .replicas')?.textContent === "2/2"`)
	p.wait("three Ready nodes", `document.querySelectorAll('#nodes tbody tr').length === 3 &&
		[...document.querySelectorAll('#nodes td.status')].every(td => td.textContent === "Ready")`)
	p.wait("the leader in the raft bar", `document.querySelector('#raft-summary')?.textContent.includes("1/1 managers reachable") &&
		document.querySelector('#nodes td.manager')?.textContent !== undefined &&
		[...document.querySelectorAll('#nodes td.manager')].some(td => td.textContent === "Leader")`)
	p.wait("the raft members", `[...document.querySelectorAll('#raft .member')].some(e => e.textContent.endsWith(": Leader")) &&
		!document.querySelector('header').textContent.includes("[object")`)
	p.wait("the task filters", `[...document.querySelectorAll('#task-service option')].some(o => o.textContent === "web") &&
		document.querySelectorAll('#task-node option').length === 4`)
	p.wait("the live badge", `document.querySelector('#live').textContent === "live"`)
	p.eval(`window.__sameDocument = "yes"`)
	p.shot("1-cluster")

	// Scale web to 4: the new tasks show up Running, without a reload.
	p.do("click Scale", chromedp.Click(chromedp.CSS(`#services tr[data-name="web"] button.scale`)))
	p.confirm("4")
	p.wait("web 4/4", `document.querySelector('#services tr[data-name="web"] .replicas')?.textContent === "4/4"`)
	p.wait("four running web tasks", `document.querySelectorAll('#tasks tr[data-state="Running"]:not(.history)').length === 4 &&
		!!document.querySelector('#tasks tr[data-name="web.4"][data-state="Running"]')`)
	if got := p.eval(`window.__sameDocument || "reloaded"`); got != "yes" {
		t.Fatalf("the page reloaded while scaling: %q", got)
	}
	if s := c.Service("web"); s.Spec.GetReplicated().GetReplicas() != 4 {
		t.Fatalf("the store has %d replicas of web, want 4", s.Spec.GetReplicated().GetReplicas())
	}
	p.shot("2-scaled")

	// Kill a task: it goes Failed, and its replacement in the slot runs.
	victim := c.Running("web")[0]
	a := c.AgentByNode(victim.NodeId)
	if a == nil || !a.Exec.Exit(victim.Id, 137) {
		t.Fatalf("could not kill task %s", victim.Id)
	}
	slot := "web." + strconv.FormatUint(victim.Slot, 10)
	p.wait("the killed task Failed", fmt.Sprintf(`document.querySelector('#tasks tr[data-id=%q]')?.dataset.state === "Failed"`, victim.Id))
	p.wait("its replacement Running", fmt.Sprintf(`[...document.querySelectorAll('#tasks tr[data-name=%q][data-state="Running"]')].some(tr => tr.dataset.id !== %q)`, slot, victim.Id))
	p.wait("web back to 4/4", `document.querySelector('#services tr[data-name="web"] .replicas')?.textContent === "4/4"`)
	p.wait("a failed task in the feed", fmt.Sprintf(`document.querySelector('#feed').textContent.includes(%q)`, slot+" ("+victim.Id[:12]+") Failed"))
	p.shot("3-task-failed")

	// Drain the node that runs the most web tasks.
	perNode := map[string]int{}
	for _, tk := range c.Running("web") {
		perNode[tk.NodeId]++
	}
	var drained string
	for id, n := range perNode {
		if drained == "" || n > perNode[drained] {
			drained = id
		}
	}
	host := c.Nodes()[drained].GetDescription().GetHostname()
	p.do("click Drain", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#nodes tr[data-hostname=%q] button.node-drain`, host))))
	p.confirm("")
	p.wait("the node Drain", fmt.Sprintf(`document.querySelector('#nodes tr[data-hostname=%q] .availability')?.textContent === "Drain"`, host))
	p.wait("no task left on it", fmt.Sprintf(`document.querySelector('#nodes tr[data-hostname=%q] .tasks')?.textContent === "0" &&
		document.querySelector('#services tr[data-name="web"] .replicas')?.textContent === "4/4"`, host))
	if got := c.Nodes()[drained].GetSpec().GetAvailability(); got != api.Availability_DRAIN {
		t.Fatalf("the store has node %s %v", host, got)
	}
	p.shot("4-drained")
}
