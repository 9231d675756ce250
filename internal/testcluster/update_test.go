package testcluster

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
	"github.com/shoal-project/shoal/worker/fakeexec"
)

// image returns the image of a task.
func image(t *api.Task) string { return t.GetSpec().GetContainer().GetImage() }

// countImage counts the running tasks of a service that run img.
func countImage(c *Cluster, name, img string) int {
	n := 0
	for _, t := range c.Running(name) {
		if image(t) == img {
			n++
		}
	}
	return n
}

// waitUpdate waits for the service's update state.
func waitUpdate(c *Cluster, name string, want api.UpdateStatus_State, within time.Duration) *api.Service {
	c.tb.Helper()
	var svc *api.Service
	c.WaitFor(fmt.Sprintf("%s's update to be %v", name, want), within, func() error {
		svc = c.Service(name)
		if got := svc.GetUpdateStatus().GetState(); got != want {
			return fmt.Errorf("update is %v (%s): %s", got, svc.GetUpdateStatus().GetMessage(), c.Describe(name))
		}
		return nil
	})
	return svc
}

func rolling(name string, replicas uint64, action api.UpdateConfig_FailureAction) *api.ServiceSpec {
	s := replicated(name, "app:1", replicas)
	s.Update = &api.UpdateConfig{Parallelism: 1, FailureAction: action, Monitor: durationpb.New(5 * time.Second)}
	s.Rollback = &api.UpdateConfig{Parallelism: 2, Monitor: durationpb.New(5 * time.Second)}
	return s
}

// missingImage makes every task of img rejected at Prepare, as a pull of
// an image the registry does not have.
func missingImage(c *Cluster, img string) {
	c.Rules.Add(fakeexec.Rule{Image: img, PrepareErr: worker.Rejected(errors.New("pull " + img + ": not found"))})
}

// Lab: rolling update with a failing image, failure_action pause. The
// first updated task fails; the update pauses with the failure named; the
// slots not yet updated keep running the old image.
func TestRollingUpdateFailingImagePauses(t *testing.T) {
	c := New(t, Options{Managers: 1, Workers: 2, NoManagerAgents: true})
	missingImage(c, "app:bad")
	c.CreateService(rolling("web", 4, api.UpdateConfig_PAUSE))
	c.Converge("web", 4, time.Minute)
	c.UpdateService("web", func(s *api.ServiceSpec) { s.Task.Container.Image = "app:bad" })
	svc := waitUpdate(c, "web", api.UpdateStatus_PAUSED, 2*time.Minute)
	t.Logf("paused: %s", svc.GetUpdateStatus().GetMessage())
	c.Hold("three slots on the old image", 30*time.Second, func() error {
		if n := countImage(c, "web", "app:1"); n != 3 {
			return fmt.Errorf("%d tasks run app:1, want 3: %s", n, c.Describe("web"))
		}
		if got := c.Service("web").GetUpdateStatus().GetState(); got != api.UpdateStatus_PAUSED {
			return fmt.Errorf("update is %v", got)
		}
		return nil
	})
	// A new update with a good image resumes and completes.
	c.UpdateService("web", func(s *api.ServiceSpec) { s.Task.Container.Image = "app:2" })
	waitUpdate(c, "web", api.UpdateStatus_COMPLETED, 2*time.Minute)
	c.Converge("web", 4, time.Minute)
	if n := countImage(c, "web", "app:2"); n != 4 {
		t.Fatalf("%d tasks run app:2: %s", n, c.Describe("web"))
	}
}

// Lab: rolling update with a failing image, failure_action rollback. The
// service goes back to its previous spec and every slot runs the old image.
func TestRollingUpdateFailingImageRollsBack(t *testing.T) {
	c := New(t, Options{Managers: 1, Workers: 2, NoManagerAgents: true})
	c.Rules.Add(fakeexec.Rule{Image: "app:crash", Exit: true, ExitCode: 1, After: time.Second}) // starts, then crashes within the monitor period
	c.CreateService(rolling("web", 4, api.UpdateConfig_ROLLBACK))
	c.Converge("web", 4, time.Minute)
	c.UpdateService("web", func(s *api.ServiceSpec) { s.Task.Container.Image = "app:crash" })
	waitUpdate(c, "web", api.UpdateStatus_ROLLBACK_COMPLETED, 3*time.Minute)
	c.Converge("web", 4, time.Minute)
	if img := c.Service("web").Spec.Task.Container.Image; img != "app:1" {
		t.Fatalf("spec image after rollback = %s", img)
	}
	if n := countImage(c, "web", "app:1"); n != 4 {
		t.Fatalf("%d tasks run app:1 after rollback: %s", n, c.Describe("web"))
	}
}

// Lab: TestLeaderKillDuringRollingUpdate. The leader dies half-way through
// a rolling update; the next leader resumes it from the store and
// completes it, with each slot running once.
func TestUpdateResumesUnderNewLeader(t *testing.T) {
	c := New(t, Options{Managers: 3, Workers: 2, NoManagerAgents: true})
	spec := rolling("web", 4, api.UpdateConfig_PAUSE)
	spec.Update.Delay = durationpb.New(10 * time.Second)
	c.CreateService(spec)
	c.Converge("web", 4, time.Minute)
	c.UpdateService("web", func(s *api.ServiceSpec) { s.Task.Container.Image = "app:2" })
	c.WaitFor("the update to be half-way", 2*time.Minute, func() error {
		if n := countImage(c, "web", "app:2"); n < 1 || n > 2 {
			return fmt.Errorf("%d tasks run app:2: %s", n, c.Describe("web"))
		}
		return nil
	})
	old := c.KillLeader()
	if l := c.Leader(); l == old {
		t.Fatal("the killed manager still leads")
	}
	waitUpdate(c, "web", api.UpdateStatus_COMPLETED, 3*time.Minute)
	c.Converge("web", 4, time.Minute)
	if n := countImage(c, "web", "app:2"); n != 4 {
		t.Fatalf("%d tasks run app:2: %s", n, c.Describe("web"))
	}
	old.Start()
	c.Converged(time.Minute)
}
