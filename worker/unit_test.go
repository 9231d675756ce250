package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

func TestReporterCoalescesAndBatches(t *testing.T) {
	r := newReporter(100)
	for _, s := range []api.TaskState{api.TaskState_ACCEPTED, api.TaskState_PREPARING, api.TaskState_READY,
		api.TaskState_STARTING, api.TaskState_RUNNING} {
		r.enqueue("t0", &api.TaskStatus{State: s})
	}
	r.enqueue("t0", &api.TaskStatus{State: api.TaskState_PREPARING}) // late and lower: dropped
	for i := 1; i <= 150; i++ {
		r.enqueue(fmt.Sprintf("t%d", i), &api.TaskStatus{State: api.TaskState_ACCEPTED})
	}
	select {
	case <-r.full:
	default:
		t.Error("a whole pending batch did not signal full")
	}
	if n := r.len(); n != 151 {
		t.Fatalf("%d pending, want one per task (151)", n)
	}
	var sizes []int
	got := map[string]api.TaskState{}
	err := r.flush(context.Background(), func(_ context.Context, u []*api.TaskStatusUpdate) error {
		sizes = append(sizes, len(u))
		for _, x := range u {
			got[x.GetTaskId()] = x.GetStatus().GetState()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 2 || sizes[0] != 100 || sizes[1] != 51 {
		t.Errorf("batches %v, want [100 51]", sizes)
	}
	if got["t0"] != api.TaskState_RUNNING || len(got) != 151 {
		t.Errorf("t0 sent as %v; %d tasks", got["t0"], len(got))
	}
}

func TestReporterKeepsUpdatesAFailedCallDidNotDeliver(t *testing.T) {
	r := newReporter(10)
	r.enqueue("a", &api.TaskStatus{State: api.TaskState_PREPARING})
	r.enqueue("b", &api.TaskStatus{State: api.TaskState_RUNNING})
	fail := errors.New("unavailable")
	err := r.flush(context.Background(), func(context.Context, []*api.TaskStatusUpdate) error {
		// A newer status arrives while the call is in flight.
		r.enqueue("a", &api.TaskStatus{State: api.TaskState_READY})
		return fail
	})
	if !errors.Is(err, fail) {
		t.Fatalf("flush: %v", err)
	}
	got := map[string]api.TaskState{}
	_ = r.flush(context.Background(), func(_ context.Context, u []*api.TaskStatusUpdate) error {
		for _, x := range u {
			got[x.GetTaskId()] = x.GetStatus().GetState()
		}
		return nil
	})
	if got["a"] != api.TaskState_READY || got["b"] != api.TaskState_RUNNING {
		t.Errorf("after a failed call: %v", got)
	}
}

func TestBackoffGrowsWithJitterAndCaps(t *testing.T) {
	b := newBackoff(100*time.Millisecond, 8*time.Second, 1)
	want := 100 * time.Millisecond
	for range 12 {
		d := b.next()
		if d < want/2 || d > want {
			t.Fatalf("delay %v outside [%v, %v]", d, want/2, want)
		}
		want = min(2*want, 8*time.Second)
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Errorf("after reset: %v", d)
	}
}

func TestConfigValidate(t *testing.T) {
	var c Config
	err := c.validate()
	for _, want := range []string{"NodeID", "manager", "Dial", "Executor", "DataDir"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate of an empty config: %v (want %q named)", err, want)
		}
	}
	c = Config{NodeID: "n", Managers: []string{"m:1", "", "m:1"}, Dial: newHarness(t, 0).dial,
		Executor: newFakeExec(), DataDir: t.TempDir()}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if c.HeartbeatPeriod != 5*time.Second || c.BackoffMax != 8*time.Second || c.StatusBatchSize != 100 ||
		c.Clock == nil || c.Logger == nil || len(c.Managers) != 1 {
		t.Errorf("defaults not filled: %+v", c)
	}
	c.BackoffMin = time.Minute
	if err := c.validate(); err == nil {
		t.Error("BackoffMin above BackoffMax accepted")
	}
}

func TestSecretsStayInMemory(t *testing.T) {
	h := newHarness(t, 1)
	h.cluster.secrets["sec1"] = &api.Secret{Id: "sec1", Sealed: []byte("TOP-SECRET-BYTES")}
	h.start()
	h.cluster.assign(task("t1", api.TaskState_RUNNING))
	h.waitState("t1", api.TaskState_RUNNING)
	if h.agent.secret("sec1") == nil {
		t.Fatal("the assigned secret is not held")
	}
	h.stop()
	raw, err := os.ReadFile(filepath.Join(h.dir, taskDBFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("TOP-SECRET-BYTES")) {
		t.Error("a secret was written to the task db")
	}
}

// The first reconnect after a session ended waits a random time up to a
// fifth of the heartbeat period, spread over all of it: 10,000 agents
// whose sessions end together come back over a second at the default 5 s
// period, not within the backoff's first 100 ms.
func TestReconnectSpreadCoversAFifthOfThePeriod(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const period = 5 * time.Second
	lo, hi := time.Hour, time.Duration(0)
	for range 10_000 {
		d := reconnectSpread(period, rng)
		if d < 0 || d > period/5 {
			t.Fatalf("spread %v outside [0, %v]", d, period/5)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo > 10*time.Millisecond || hi < 990*time.Millisecond {
		t.Fatalf("10,000 spreads between %v and %v: not over the whole second", lo, hi)
	}
	if d := reconnectSpread(0, rng); d != 0 {
		t.Fatalf("spread %v with no period", d)
	}
}
