package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/images"
)

// TestDashboardInChromium drives the dashboard of a real shoald (a manager
// and a worker joined to it, tasks in containerd) with headless Debian
// chromium: it renders the cluster; scaling a service through the page's
// dialog shows the new tasks running without a reload; a container killed
// with SIGKILL shows its task Failed (exit 137) and its replacement
// Running; draining the worker through the page moves its tasks to the
// manager. Screenshots: dashboard/e2e-*.png under testutil.ArtifactDir
// ($SHOAL_ARTIFACT_DIR, default /tmp/shoal-artifacts-<uid>).
func TestDashboardInChromium(t *testing.T) {
	testutil.RequiresContainerd(t)
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		if testutil.Strict() {
			t.Fatalf("chromium is not installed (scripts/install-deps.sh): %v", err)
		}
		t.Skipf("chromium is not installed: %v", err)
	}
	reg := images.StartRegistry(t)
	whoami := images.PushTest(t, reg, images.Whoami)
	dashAddr := freeAddr(t)
	m := newDaemon(t, "--insecure-registry", reg, "--dashboard-addr", dashAddr)
	w := newDaemon(t, "--insecure-registry", reg, "--dashboard-addr", "")
	m.start()
	w.start()
	m.mustShoal("swarm", "init", "--advertise-addr", m.addr)
	token := strings.TrimSpace(m.mustShoal("swarm", "join-token", "-q", "worker"))
	w.mustShoal("swarm", "join", "--token", token, "--advertise-addr", w.addr, m.addr)
	m.mustShoal("service", "create", "-d", "--name", "web", "--replicas", "2", whoami)
	running := func() []string { return append(runningContainers(t, m.ns), runningContainers(t, w.ns)...) }
	waitFor(t, 90*time.Second, "2 web containers running", func() error {
		if n := len(running()); n != 2 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})

	dir := testutil.ArtifactDir(t, "dashboard")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.WindowSize(1500, 1100), chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(bctx); err != nil { // starts the browser: no timeout on this context
		t.Fatal(err)
	}
	shot := func(name string) {
		ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			return
		}
		path := filepath.Join(dir, "e2e-"+name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Error(err)
		}
		t.Logf("screenshot: %s", path)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			shot("failed")
			t.Fatalf("%s: %v", what, err)
		}
	}
	wait := func(what, expr string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 100*time.Second)
		defer cancel()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(90*time.Second),
			chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
			shot("failed")
			t.Fatalf("waiting for %s: %v\nservice ps:\n%s", what, err, m.mustShoal("service", "ps", "web"))
		}
	}
	confirm := func(value string) {
		t.Helper()
		do("the dialog", chromedp.WaitVisible(chromedp.CSS("#confirm-ok")))
		if value != "" {
			do("set "+value, chromedp.SetValue(chromedp.CSS("#confirm-input"), value))
		}
		do("confirm", chromedp.Click(chromedp.CSS("#confirm-ok")))
	}
	replicas := func(want string) string {
		return fmt.Sprintf(`document.querySelector('#services tr[data-name="web"] .replicas')?.textContent === %q`, want)
	}

	// Loopback too needs the token shoald keeps in its data directory:
	// any local user can reach loopback.
	resp, err := http.Get("http://" + dashAddr + "/api/state")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the loopback dashboard answered %d without its token, want 401", resp.StatusCode)
	}
	dashToken, err := os.ReadFile(filepath.Join(m.dir, "data", "dashboard-token"))
	if err != nil {
		t.Fatal(err)
	}
	do("open the dashboard with its token", chromedp.Navigate("http://"+dashAddr+"/?token="+strings.TrimSpace(string(dashToken))))
	wait("web 2/2", replicas("2/2"))
	wait("two Ready nodes, one Leader", `document.querySelectorAll('#nodes tbody tr').length === 2 &&
		[...document.querySelectorAll('#nodes td.status')].every(td => td.textContent === "Ready") &&
		[...document.querySelectorAll('#raft .member')].some(e => e.textContent.endsWith(": Leader"))`)
	do("mark the document", chromedp.Evaluate[chromedp.Void](`window.__sameDocument = "yes"`))
	shot("1-cluster")

	do("click Scale", chromedp.Click(chromedp.CSS(`#services tr[data-name="web"] button.scale`)))
	confirm("4")
	wait("web 4/4 and four running tasks", replicas("4/4")+` &&
		document.querySelectorAll('#tasks tr[data-state="Running"]:not(.history)').length === 4`)
	sameCtx, cancelSame := context.WithTimeout(bctx, 30*time.Second)
	same, err := chromedp.Run(sameCtx, chromedp.Evaluate[string](`window.__sameDocument || "reloaded"`))
	cancelSame()
	if err != nil || same != "yes" {
		t.Fatalf("the page reloaded while scaling: %q %v", same, err)
	}
	if n := len(running()); n != 4 {
		t.Fatalf("%d containers running after the page showed 4/4", n)
	}
	shot("2-scaled")

	victim, ns := "", m.ns
	if ids := runningContainers(t, w.ns); len(ids) > 0 {
		victim, ns = ids[0], w.ns
	} else {
		victim = runningContainers(t, m.ns)[0]
	}
	if out, err := exec.Command("ctr", "-n", ns, "tasks", "kill", "-s", "SIGKILL", victim).CombinedOutput(); err != nil {
		t.Fatalf("kill: %v\n%s", err, out)
	}
	wait("the killed task Failed with exit 137", fmt.Sprintf(`(() => { const tr = document.querySelector('#tasks tr[data-id=%q]');
		return !!tr && tr.dataset.state === "Failed" && tr.textContent.includes("137"); })()`, victim))
	wait("its replacement Running", fmt.Sprintf(`(() => { const name = document.querySelector('#tasks tr[data-id=%q]').dataset.name;
		return [...document.querySelectorAll('#tasks tr[data-state="Running"]')].some(tr => tr.dataset.name === name && tr.dataset.id !== %q); })()`, victim, victim))
	wait("web 4/4 again", replicas("4/4"))
	shot("3-task-failed")

	// Both nodes have this machine's hostname: the worker's row is found
	// by its node ID.
	worker := strings.TrimSpace(m.mustShoal("node", "ls", "-q", "--filter", "role=worker"))
	do("click Drain", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#nodes tr[data-id=%q] button.node-drain`, worker))))
	confirm("")
	wait("the worker Drain with no task", fmt.Sprintf(`document.querySelector('#nodes tr[data-id=%q] .availability')?.textContent === "Drain" &&
		document.querySelector('#nodes tr[data-id=%q] .tasks')?.textContent === "0"`, worker, worker)+" && "+replicas("4/4"))
	waitFor(t, 60*time.Second, "no container on the drained worker, 4 on the manager", func() error {
		if n, k := len(runningContainers(t, w.ns)), len(runningContainers(t, m.ns)); n != 0 || k != 4 {
			return fmt.Errorf("%d on the worker, %d on the manager", n, k)
		}
		return nil
	})
	shot("4-drained")
}
