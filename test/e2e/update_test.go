package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/test/images"
)

// pushTag pushes a test image under another tag, so an update has a new
// image to roll to.
func pushTag(t *testing.T, reg, name, tag string) string {
	t.Helper()
	img, err := images.Build(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	ref := fmt.Sprintf("%s/shoal/%s:%s", reg, name, tag)
	if err := images.Push(context.Background(), img, ref, true); err != nil {
		t.Fatal(err)
	}
	return ref
}

// sampleRunning polls containerd's running count until stop is closed and
// returns the smallest and largest counts seen.
func sampleRunning(t *testing.T, ns string, stop <-chan struct{}) func() (lo, hi int) {
	var mu sync.Mutex
	var samples []int
	lo, hi := 1<<30, 0
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if ids, ok := runningIDsOK(ns); ok {
				n := len(ids)
				mu.Lock()
				lo, hi = min(lo, n), max(hi, n)
				samples = append(samples, n)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
		}
	}()
	return func() (int, int) {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		t.Logf("%d samples of running containers, within [%d, %d]", len(samples), lo, hi)
		return lo, hi
	}
}

func TestRollingUpdateKeepsTheFloorAndTheCeiling(t *testing.T) {
	testutil.RequiresContainerd(t)
	reg := images.StartRegistry(t)
	v1 := pushTag(t, reg, images.Whoami, "v1")
	v2 := pushTag(t, reg, images.Whoami, "v2")
	v3 := pushTag(t, reg, images.Whoami, "v3")
	d := newDaemon(t, "--insecure-registry", reg)
	d.start()
	d.mustShoal("swarm", "init", "--advertise-addr", d.addr)
	d.mustShoal("service", "create", "-d", "--name", "web", "--replicas", "6",
		"--update-parallelism", "2", "--update-delay", "1s", v1)
	waitRunning(t, d, 6, 60*time.Second)

	for _, c := range []struct {
		image, order string
		check        func(lo, hi int) error
	}{
		{v2, "stop-first", func(lo, hi int) error {
			if lo < 4 {
				return fmt.Errorf("running dropped to %d (stop-first, parallelism 2: at least 4)", lo)
			}
			return nil
		}},
		{v3, "start-first", func(lo, hi int) error {
			if hi > 8 {
				return fmt.Errorf("running rose to %d (start-first, parallelism 2: at most 8)", hi)
			}
			if lo < 6 {
				return fmt.Errorf("running dropped to %d during a start-first update", lo)
			}
			return nil
		}},
	} {
		stop := make(chan struct{})
		result := sampleRunning(t, d.ns, stop)
		out, err := d.shoal("service", "update", "--image", c.image, "--update-order", c.order, "web")
		close(stop)
		lo, hi := result()
		if err != nil {
			t.Fatalf("update to %s (%s): %v\n%s", c.image, c.order, err, out)
		}
		if err := c.check(lo, hi); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: running stayed within [%d, %d]", c.order, lo, hi)
		ps := d.mustShoal("service", "ps", "-f", "desired-state=running", "--format", "{{.Image}}", "web")
		if n := strings.Count(ps, c.image); n != 6 {
			t.Fatalf("%d tasks run %s after the update, want 6:\n%s", n, c.image, ps)
		}
		waitRunning(t, d, 6, 30*time.Second)
	}
	if hist := d.mustShoal("service", "ps", "web"); !strings.Contains(hist, `\_ web.1`) || !strings.Contains(hist, "Shutdown") {
		t.Fatalf("service ps shows no history:\n%s", hist)
	}
}

func TestFailingUpdatePausesOrRollsBack(t *testing.T) {
	testutil.RequiresContainerd(t)
	d, whoami := swarmWithImages(t)
	d.mustShoal("service", "create", "-d", "--name", "web", "--replicas", "3", "--restart-delay", "1s", whoami)
	waitRunning(t, d, 3, 60*time.Second)

	// An image whose process exits at once: whoami asked to probe a port
	// nothing listens on exits 1.
	out, _ := d.shoal("service", "update", "--args", "-probe http://127.0.0.1:1/", "--update-failure-action", "pause", "web")
	if !strings.Contains(out, "update paused") {
		t.Fatalf("the display did not report the pause:\n%s", out)
	}
	state := d.mustShoal("service", "inspect", "--format", "{{.UpdateStatus.State}}|{{.UpdateStatus.Message}}", "web")
	if !strings.HasPrefix(state, "paused|") || !strings.Contains(state, "non-zero exit (1)") {
		t.Fatalf("update status %q, want paused with the task's error", state)
	}
	// By hand: back to the previous spec.
	d.mustShoal("service", "rollback", "web")
	waitFor(t, 60*time.Second, "the manual rollback to complete", func() error {
		s := d.mustShoal("service", "inspect", "--format", "{{.UpdateStatus.State}}", "web")
		if !strings.Contains(s, "rollback_completed") {
			return fmt.Errorf("state %s", s)
		}
		return nil
	})
	waitRunning(t, d, 3, 30*time.Second)

	// failure_action rollback: every task returns to the previous spec.
	out, _ = d.shoal("service", "update", "--args", "-probe http://127.0.0.1:1/", "--update-failure-action", "rollback",
		"--update-parallelism", "1", "web")
	waitFor(t, 60*time.Second, "the automatic rollback to complete", func() error {
		s := d.mustShoal("service", "inspect", "--format", "{{.UpdateStatus.State}}", "web")
		if !strings.Contains(s, "rollback_completed") {
			return fmt.Errorf("state %s", s)
		}
		return nil
	})
	args := d.mustShoal("service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Args}}", "web")
	if strings.Contains(args, "probe") {
		t.Fatalf("the spec was not rolled back: args %s\n%s", args, out)
	}
	waitRunning(t, d, 3, 30*time.Second)
}
