package fakeexec

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
)

func task(id, image, service string) *api.Task {
	return &api.Task{
		Id: id, ServiceId: "svc-" + service,
		ServiceAnnotations: &api.Annotations{Name: service},
		Spec:               &api.TaskSpec{Container: &api.ContainerSpec{Image: image}},
	}
}

// run takes a task through Prepare and Start, failing the test on error.
func run(t *testing.T, e *Executor, tk *api.Task) worker.Controller {
	t.Helper()
	ctx := context.Background()
	c, err := e.Controller(tk, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Prepare(ctx); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	return c
}

// waitAsync runs Wait in a goroutine and returns its result channel.
func waitAsync(ctx context.Context, c worker.Controller) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- c.Wait(ctx) }()
	return ch
}

func recv(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return")
		return nil
	}
}

func TestTaskRunsUntilStopped(t *testing.T) {
	ctx := context.Background()
	e := New(Config{Hostname: "n1"})
	c := run(t, e, task("t1", "img", "web"))
	if got := e.Running(); len(got) != 1 || got[0] != "t1" {
		t.Fatalf("running = %v", got)
	}
	// Idempotent replays, as a restarted agent does them.
	c2, _ := e.Controller(task("t1", "img", "web"), nil)
	if err := c2.Prepare(ctx); !errors.Is(err, worker.ErrTaskPrepared) {
		t.Fatalf("second prepare: %v", err)
	}
	if err := c2.Start(ctx); !errors.Is(err, worker.ErrTaskStarted) {
		t.Fatalf("second start: %v", err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Pid == 0 {
		t.Fatalf("status of a running task: %v %v", st, err)
	}
	done := waitAsync(ctx, c)
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var ee *worker.ExitError
	if err := recv(t, done); !errors.As(err, &ee) || ee.Code != 143 {
		t.Fatalf("wait after shutdown: %v", err)
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if ids, _ := e.Tasks(ctx); len(ids) != 0 {
		t.Fatalf("containers after remove: %v", ids)
	}
	if _, err := c.Status(ctx); !errors.Is(err, worker.ErrTaskNotFound) {
		t.Fatalf("status after remove: %v", err)
	}
	want := Counts{Prepares: 1, Starts: 1, Stops: 1, Removes: 1}
	if got := e.Counts(); got != want {
		t.Fatalf("counts = %+v, want %+v", got, want)
	}
	if d, _ := e.Describe(ctx); d.Hostname != "n1" || d.Resources.NanoCpus == 0 {
		t.Fatalf("describe = %v", d)
	}
}

func TestRulesByImageServiceHostAndTimes(t *testing.T) {
	ctx := context.Background()
	rules := &Rules{}
	rejected := worker.Rejected(errors.New("no such image"))
	rules.Add(Rule{Image: "missing", PrepareErr: rejected})
	rules.Add(Rule{Service: "flaky", Times: 1, StartErr: errors.New("start failed")})
	rules.Add(Rule{Host: "bad", StartErr: errors.New("bad host")})
	e := New(Config{Hostname: "n1", Rules: rules})
	bad := New(Config{Hostname: "bad", Rules: rules})

	c, _ := e.Controller(task("t1", "missing", "web"), nil)
	if err := c.Prepare(ctx); !worker.IsRejected(err) {
		t.Fatalf("prepare of a missing image: %v", err)
	}
	c, _ = e.Controller(task("t2", "img", "flaky"), nil)
	_ = c.Prepare(ctx)
	if err := c.Start(ctx); err == nil || err.Error() != "start failed" {
		t.Fatalf("first flaky start: %v", err)
	}
	run(t, e, task("t3", "img", "flaky")) // Times: 1 is used up
	c, _ = bad.Controller(task("t4", "img", "web"), nil)
	_ = c.Prepare(ctx)
	if err := c.Start(ctx); err == nil {
		t.Fatal("start on the bad host succeeded")
	}
	if rules.Used() != 3 {
		t.Fatalf("rules used %d times, want 3", rules.Used())
	}
	rules.Clear()
	run(t, bad, task("t5", "img", "web"))
}

func TestExitAfterDelayOnTheClock(t *testing.T) {
	ctx := context.Background()
	clock := clockwork.NewFakeClock()
	e := New(Config{Clock: clock})
	remove := e.Rules().Add(Rule{Image: "crash", Exit: true, ExitCode: 3, After: 5 * time.Second})
	e.Rules().Add(Rule{Image: "job", Exit: true})
	defer remove()

	c := run(t, e, task("t1", "crash", "web"))
	done := waitAsync(ctx, c)
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(4 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("exited before its delay: %v", err)
	default:
	}
	clock.Advance(time.Second)
	var ee *worker.ExitError
	if err := recv(t, done); !errors.As(err, &ee) || ee.Code != 3 || ee.Cause != nil {
		t.Fatalf("wait: %v", err)
	}
	// A job's process exits 0 at once.
	c = run(t, e, task("t2", "job", "batch"))
	if err := c.Wait(ctx); err != nil {
		t.Fatalf("job wait: %v", err)
	}
	if got := e.Containers(); len(got) != 2 || got[1].State != Exited || got[1].ExitCode != 0 {
		t.Fatalf("containers = %+v", got)
	}
}

func TestUnhealthy(t *testing.T) {
	ctx := context.Background()
	clock := clockwork.NewFakeClock()
	e := New(Config{Clock: clock})
	e.Rules().Add(Rule{Image: "sick", Unhealthy: true})
	e.Rules().Add(Rule{Image: "sickly", Unhealthy: true, After: time.Minute})

	c, _ := e.Controller(task("t1", "sick", "web"), nil)
	_ = c.Prepare(ctx)
	var ee *worker.ExitError
	if err := c.Start(ctx); !errors.As(err, &ee) || ee.Code != 137 || ee.Cause == nil {
		t.Fatalf("start of an unhealthy task: %v", err)
	}
	c = run(t, e, task("t2", "sickly", "web"))
	done := waitAsync(ctx, c)
	_ = clock.BlockUntilContext(ctx, 1)
	clock.Advance(time.Minute)
	if err := recv(t, done); !errors.As(err, &ee) || ee.Code != 137 || ee.Cause == nil {
		t.Fatalf("wait on a task turning unhealthy: %v", err)
	}
	// On command: a healthy task turns unhealthy, another crashes.
	c = run(t, e, task("t3", "img", "web"))
	done = waitAsync(ctx, c)
	if !e.Unhealthy("t3") {
		t.Fatal("t3 was not running")
	}
	if err := recv(t, done); !errors.As(err, &ee) || ee.Cause == nil {
		t.Fatalf("wait: %v", err)
	}
	run(t, e, task("t4", "img", "web"))
	if !e.Exit("t4", 1) || e.Exit("t4", 1) {
		t.Fatal("Exit: want true once, then false")
	}
}

func TestOutcomeStaysWithTheContainer(t *testing.T) {
	ctx := context.Background()
	e := New(Config{})
	e.Rules().Add(Rule{Image: "crash", Exit: true, ExitCode: 1, Times: 1})
	run(t, e, task("t1", "crash", "web"))
	// A restarted agent makes a new controller: the container keeps its
	// fate, and no rule use is spent on it again.
	c, _ := e.Controller(task("t1", "crash", "web"), nil)
	var ee *worker.ExitError
	if err := c.Wait(ctx); !errors.As(err, &ee) || ee.Code != 1 {
		t.Fatalf("wait: %v", err)
	}
	// Reset forgets the containers.
	e.Reset()
	if err := c.Wait(ctx); !errors.Is(err, worker.ErrTaskNotFound) {
		t.Fatalf("wait after reset: %v", err)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	e := New(Config{})
	c := run(t, e, task("t1", "img", "web"))
	ctx, cancel := context.WithCancel(context.Background())
	done := waitAsync(ctx, c)
	cancel()
	if err := recv(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait: %v", err)
	}
	if err := c.Prepare(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("prepare with an ended context: %v", err)
	}
}

// Thousands of tasks on one executor, driven from many goroutines (run
// with -race).
func TestManyTasksConcurrently(t *testing.T) {
	ctx := context.Background()
	clock := clockwork.NewFakeClock()
	e := New(Config{Clock: clock})
	e.Rules().Add(Rule{Match: func(tk *api.Task) bool { return tk.GetId()[len(tk.GetId())-1] == '7' }, Exit: true, ExitCode: 7, After: time.Second})
	const n = 5000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := task(fmt.Sprintf("t%05d", i), "img", "web")
			c, _ := e.Controller(tk, nil)
			if err := c.Prepare(ctx); err != nil {
				errs <- err
				return
			}
			if err := c.Start(ctx); err != nil {
				errs <- err
				return
			}
			err := c.Wait(ctx)
			var ee *worker.ExitError
			switch {
			case i%10 == 7 && (!errors.As(err, &ee) || ee.Code != 7):
				errs <- fmt.Errorf("%s: %v, want exit 7", tk.Id, err)
			case i%10 != 7 && (!errors.As(err, &ee) || ee.Code != 143):
				errs <- fmt.Errorf("%s: %v, want exit 143", tk.Id, err)
			}
		}()
	}
	if err := clock.BlockUntilContext(ctx, n/10); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for e.Counts().Starts < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d tasks started", e.Counts().Starts, n)
		}
		time.Sleep(time.Millisecond) // polling with a deadline
	}
	// The tasks whose timer fired must have exited before the others are
	// shut down: a shutdown racing a fired timer would exit 143 (under
	// make test's load it did).
	for len(e.Running()) > n-n/10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d tasks still running, want %d", len(e.Running()), n-n/10)
		}
		time.Sleep(time.Millisecond) // polling with a deadline
	}
	for _, id := range e.Running() {
		c, _ := e.Controller(task(id, "img", "web"), nil)
		_ = c.Shutdown(ctx)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := e.Counts().Starts; got != n {
		t.Fatalf("%d starts, want %d", got, n)
	}
}
