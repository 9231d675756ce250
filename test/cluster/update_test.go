package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/test/images"
	"github.com/shoal-project/shoal/test/lab"
)

// pushTag pushes a test image to the swarm's registry under another tag and
// returns its reference as the hosts pull it.
func (s *swarm) pushTag(name, tag string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := images.Build(ctx, name)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := images.Push(ctx, img, fmt.Sprintf("%s/shoal/%s:%s", s.pushHost, name, tag), true); err != nil {
		s.t.Fatal(err)
	}
	return fmt.Sprintf("%s/shoal/%s:%s", s.registry, name, tag)
}

// slotHistory groups a service's tasks by slot, oldest first.
func slotHistory(tasks []*api.Task) map[uint64][]*api.Task {
	out := map[uint64][]*api.Task{}
	for _, t := range tasks {
		out[t.GetSlot()] = append(out[t.GetSlot()], t)
	}
	for _, ts := range out {
		sort.Slice(ts, func(i, j int) bool {
			return ts[i].GetMeta().GetCreatedAt().AsTime().Before(ts[j].GetMeta().GetCreatedAt().AsTime())
		})
	}
	return out
}

func taskImage(t *api.Task) string { return t.GetSpec().GetContainer().GetImage() }

// describeTasks is one line per task, for failure messages.
func describeTasks(tasks []*api.Task) string {
	var b strings.Builder
	hist := slotHistory(tasks)
	var slots []uint64
	for sl := range hist {
		slots = append(slots, sl)
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i] < slots[j] })
	for _, sl := range slots {
		for _, t := range hist[sl] {
			fmt.Fprintf(&b, "  slot %d task %s node %.12s image %s state %v desired %v created %s err %q\n", sl, t.GetId(), t.GetNodeId(),
				taskImage(t), t.GetStatus().GetState(), t.GetDesiredState(),
				t.GetMeta().GetCreatedAt().AsTime().Format("15:04:05.000"), t.GetStatus().GetErr())
		}
	}
	return b.String()
}

// doneSlots counts the slots whose RUNNING task runs image.
func doneSlots(tasks []*api.Task, image string) int {
	n := 0
	for _, t := range tasks {
		if t.GetStatus().GetState() == api.TaskState_RUNNING && t.GetDesiredState() == api.TaskState_RUNNING && taskImage(t) == image {
			n++
		}
	}
	return n
}

// doubleRunning returns an error naming a slot with more than one task in
// state RUNNING.
func doubleRunning(tasks []*api.Task) error {
	running := map[uint64][]string{}
	for _, t := range tasks {
		if t.GetStatus().GetState() == api.TaskState_RUNNING {
			running[t.GetSlot()] = append(running[t.GetSlot()], t.GetId()+"("+taskImage(t)+")")
		}
	}
	for sl, ids := range running {
		if len(ids) > 1 {
			return fmt.Errorf("slot %d has %d RUNNING tasks: %v", sl, len(ids), ids)
		}
	}
	return nil
}

// TestLeaderKillDuringRollingUpdate: 3 managers + 2 workers, a service of 6
// whoami replicas on the workers, updated to another image tag one slot at a
// time (--update-parallelism 1 --update-delay 2s). The leader is killed with
// SIGKILL once 1 or 2 slots run the new image, preferably while the next
// slot's new task is on its way (so far always so). The new leader resumes the
// update: UpdateStatus reaches COMPLETED, the 6 slots run the new image with
// one RUNNING task each (never two at once in any sample taken through the
// whole update), containerd runs exactly those containers, and each slot's
// history holds exactly one task of each image: no slot was replaced twice.
// The killed manager is restarted and every manager reaches the same raft
// applied index.
func TestLeaderKillDuringRollingUpdate(t *testing.T) {
	const n = 6
	s := newSwarm(t, spec{managers: 3, workers: 2, registry: true})
	v1 := s.image(images.Whoami)
	v2 := s.pushTag(images.Whoami, "v2")
	h1 := s.managers[0]
	ids := s.nodeIDs(h1)
	// The tags are kept (--no-resolve-image): v1 and v2 are one image,
	// and the checks below tell the tasks apart by the reference.
	s.sh(h1, "service", "create", "-d", "--name", "web", "--replicas", fmt.Sprint(n), "--no-resolve-image",
		"--constraint", "node.role==worker", "--update-parallelism", "1", "--update-delay", "2s", v1)
	lab.WaitFor(t, 90*time.Second, func() error {
		tasks, err := s.tasks(h1, "web")
		if err != nil {
			return err
		}
		on, err := placement(tasks, n, "", "")
		if err != nil {
			return err
		}
		return s.containersMatch(on, ids, s.l.Hosts)
	})
	leader, err := s.leaderOf(h1)
	if err != nil {
		t.Fatal(err)
	}
	via := s.others(leader)[0]
	t.Logf("6 replicas of %s run on the workers; leader %s, watching through %s", v1, leader.Name, via.Name)

	// Sample the tasks through the whole update, through a manager that
	// survives: no slot may ever show two RUNNING tasks.
	var mu sync.Mutex
	var violations []string
	samples := 0
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			tasks, err := s.tasks(via, "web")
			if err != nil {
				continue // no leader for a moment
			}
			mu.Lock()
			samples++
			if err := doubleRunning(tasks); err != nil && len(violations) < 5 {
				violations = append(violations, time.Now().Format("15:04:05.000")+": "+err.Error())
			}
			mu.Unlock()
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-sampled
	}()

	s.sh(via, "service", "update", "-d", "--no-resolve-image", "--image", v2, "web")
	updated := time.Now()
	// Kill the leader with 1 or 2 slots done, preferably while the next
	// slot's new task is on its way (created, not RUNNING yet).
	var done, inflight int
	testutil.Eventually(t, 60*time.Second, 20*time.Millisecond, func() bool {
		tasks, err := s.tasks(via, "web")
		if err != nil {
			return false
		}
		done, inflight = doneSlots(tasks, v2), 0
		for _, tk := range tasks {
			if taskImage(tk) == v2 && tk.GetStatus().GetState() < api.TaskState_RUNNING && tk.GetDesiredState() <= api.TaskState_RUNNING {
				inflight++
			}
		}
		return done >= 2 || done == 1 && inflight > 0
	}, "a slot of 6 to run %s after the update", v2)
	if done > 2 {
		t.Fatalf("%d slots were already updated when the test looked (want to kill the leader after 1-2)", done)
	}
	killed := time.Now()
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed leader %s %v after the update began, with %d of %d slots on %s and %d new task(s) on their way", leader.Name,
		killed.Sub(updated).Round(time.Millisecond), done, n, v2, inflight)

	// The update resumes under the new leader and completes.
	var state string
	lab.WaitFor(t, 90*time.Second, func() error {
		out, err := try(via, 10*time.Second, "service", "inspect", "--format", "{{.UpdateStatus.State}}", "web")
		if err != nil {
			return err
		}
		if state = strings.TrimSpace(out); !strings.EqualFold(state, "completed") {
			tasks, _ := s.tasks(via, "web")
			return fmt.Errorf("update status %q, %d of %d slots on %s", state, doneSlots(tasks, v2), n, v2)
		}
		return nil
	})
	newLeader, err := s.leaderOf(via)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("update COMPLETED under the new leader %s, %v after the kill", newLeader.Name, time.Since(killed).Round(time.Millisecond))
	close(stop)
	<-sampled

	var tasks []*api.Task
	lab.WaitFor(t, 30*time.Second, func() error {
		var err error
		if tasks, err = s.tasks(via, "web"); err != nil {
			return err
		}
		on, err := placement(tasks, n, "", "")
		if err != nil {
			return err
		}
		for _, tk := range tasks {
			if tk.GetDesiredState() == api.TaskState_RUNNING && taskImage(tk) != v2 {
				return fmt.Errorf("task %s (slot %d) is desired RUNNING with image %s", tk.GetId(), tk.GetSlot(), taskImage(tk))
			}
		}
		return s.containersMatch(on, ids, s.l.Hosts)
	})
	mu.Lock()
	t.Logf("%d samples of the tasks during the update", samples)
	for _, v := range violations {
		t.Errorf("two RUNNING tasks in one slot: %s", v)
	}
	mu.Unlock()

	// History: each slot was replaced exactly once.
	hist := slotHistory(tasks)
	if len(hist) != n {
		t.Errorf("tasks in %d slots, want %d:\n%s", len(hist), n, describeTasks(tasks))
	}
	for sl, ts := range hist {
		var old, cur int
		for _, tk := range ts {
			switch taskImage(tk) {
			case v1:
				old++
			case v2:
				cur++
			}
		}
		if old != 1 || cur != 1 || len(ts) != 2 {
			t.Errorf("slot %d has %d tasks (%d of %s, %d of %s); want exactly one of each: a slot was replaced more than once", sl, len(ts), old, v1, cur, v2)
		}
	}
	if t.Failed() {
		t.Logf("tasks:\n%s", describeTasks(tasks))
	}
	if ps := s.sh(via, "service", "ps", "web"); !strings.Contains(ps, `\_ web.`) {
		t.Errorf("service ps shows no history rows:\n%s", ps)
	}

	// The killed manager comes back and every manager agrees.
	s.start(leader)
	restarted := time.Now()
	lab.WaitFor(t, 60*time.Second, func() error {
		rows, err := s.nodeLs(via)
		if err != nil {
			return err
		}
		if err := s.checkHealthy(rows); err != nil {
			return err
		}
		return s.sameAppliedIndex(s.managers)
	})
	t.Logf("%s back %v after its restart; all managers at the same applied index", leader.Name, time.Since(restarted).Round(time.Millisecond))
	for _, m := range s.managers {
		out, err := try(m, 10*time.Second, "service", "inspect", "--format", "{{.UpdateStatus.State}} {{.Spec.TaskTemplate.ContainerSpec.Image}}", "web")
		if err != nil {
			t.Errorf("service inspect on %s: %v", m.Name, err)
			continue
		}
		if f := strings.Fields(out); len(f) != 2 || !strings.EqualFold(f[0], "completed") || f[1] != v2 {
			t.Errorf("service inspect on %s after the restart: %q, want completed %s", m.Name, out, v2)
		}
	}
}
