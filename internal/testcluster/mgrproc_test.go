package testcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// Three managers in processes of their own bootstrap and join a swarm; a
// fleet process's nodes run a service's tasks; the leader is killed with
// SIGKILL, a survivor takes writes and the tasks stay where they ran; the
// killed manager restarts from its raft log and catches up.
func TestProcCluster(t *testing.T) {
	c := NewProc(t, ProcOptions{WallLimit: time.Minute})
	f := c.AddSimNodesProcess(20, FleetProcessOptions{})
	c.WaitNodesReady(f)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := c.Control().CreateService(ctx, &api.CreateServiceRequest{Spec: replicated("web", "img:1", 40)})
	if err != nil {
		t.Fatal(err)
	}
	svc := resp.Service.Id
	q := TaskQuery{ServiceIDs: []string{svc}, Image: "img:1"}
	running := func(want int) func() error {
		return func() error {
			n, err := c.CountTasks(q)
			if err == nil && (n.Running != want || n.RunningImage != want || n.Placed != want) {
				err = fmt.Errorf("%+v, want %d running", n, want)
			}
			return err
		}
	}
	c.waitFor("40 tasks RUNNING", running(40))
	before, err := c.RunningTasks([]string{svc})
	if err != nil || len(before) != 40 {
		t.Fatalf("running tasks: %d, %v", len(before), err)
	}
	leader := c.Leader()
	if cpu, rss := leader.Usage(); cpu <= 0 || rss == 0 {
		t.Fatalf("%s usage: cpu %v, rss %d", leader.Name, cpu, rss)
	}
	leader.Kill()
	if leader.Running() || leader.Pid() != 0 {
		t.Fatalf("%s still runs after Kill", leader.Name)
	}
	// A write through a survivor at once: it still follows the dead
	// leader (it forgets it after three heartbeats of silence) and its
	// forward is refused; the call goes again to the next leader
	// (manager.awaitNextLeader) instead of failing.
	for _, m := range c.Managers() {
		if m == leader {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.ControlVia(m).CreateSecret(ctx, &api.CreateSecretRequest{Spec: &api.SecretSpec{
			Annotations: &api.Annotations{Name: "right-after-kill"}, Data: []byte("x")}})
		cancel()
		if err != nil {
			t.Fatalf("a write through %s right after the leader's kill: %v", m.Name, err)
		}
		break
	}
	c.waitFor("a write through a survivor", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Control().CreateSecret(ctx, &api.CreateSecretRequest{Spec: &api.SecretSpec{
			Annotations: &api.Annotations{Name: "after-kill"}, Data: []byte("x")}})
		return err
	})
	if l := c.Leader(); l == leader {
		t.Fatalf("the killed %s leads", leader.Name)
	}
	leader.Start()
	c.waitFor(leader.Name+" to catch up", func() error {
		want, err := c.Leader().Status()
		if err != nil {
			return err
		}
		got, err := leader.Status()
		if err == nil && got.Applied < want.Applied {
			err = fmt.Errorf("%s applied %d of %d", leader.Name, got.Applied, want.Applied)
		}
		return err
	})
	after, err := c.RunningTasks([]string{svc})
	if err != nil {
		t.Fatal(err)
	}
	for id, node := range before {
		if after[id] != node {
			t.Errorf("task %s ran on %s before the kill, on %q after", id, node, after[id])
		}
	}
	if n, err := c.NotReady(f.NodeIDs()); err != nil || n != 0 {
		t.Fatalf("%d nodes not READY (%v)", n, err)
	}
	if err := c.Crashed(); err != nil {
		t.Fatal(err)
	}
}

// The memory directories of test processes that no longer run are swept;
// those of running ones, and others' files, stay.
func TestSweepMemDirs(t *testing.T) {
	root := t.TempDir()
	dead := filepath.Join(root, memDirPrefix+"4194305-123") // above Linux's largest PID
	live := filepath.Join(root, fmt.Sprintf("%s%d-456", memDirPrefix, os.Getpid()))
	other := filepath.Join(root, memDirPrefix+"789") // an older name, without a PID
	for _, d := range []string{dead, live, other} {
		if err := os.MkdirAll(filepath.Join(d, "m0"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	sweepMemDirs(root)
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatalf("%s not swept: %v", dead, err)
	}
	for _, d := range []string{live, other} {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("%s swept: %v", d, err)
		}
	}
}
