package orchestrator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/manager/allocator"
	"github.com/shoal-project/shoal/manager/controlapi"
	"github.com/shoal-project/shoal/manager/schedloop"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// maxSizeSpec is a service spec just under api.MaxServiceSpecBytes that
// the Control API accepts.
func maxSizeSpec(t *testing.T, replicas uint64) *api.ServiceSpec {
	t.Helper()
	spec := &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "huge"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "127.0.0.1:5000/shoal/whoami:latest"}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: replicas}},
	}
	for i := 0; proto.Size(spec) < api.MaxServiceSpecBytes-api.MaxArgBytes; i++ {
		spec.Task.Container.Env = append(spec.Task.Container.Env, "V"+string(rune('A'+i))+"="+strings.Repeat("x", api.MaxArgBytes-3))
	}
	last := api.MaxServiceSpecBytes - proto.Size(spec) - 8
	spec.Task.Container.Env = append(spec.Task.Container.Env, "LAST="+strings.Repeat("y", last-5))
	if err := controlapi.ValidateServiceSpec(proto.Clone(spec).(*api.ServiceSpec)); err != nil {
		t.Fatalf("the max-size spec is refused: %v", err)
	}
	if n := proto.Size(spec); n < api.MaxServiceSpecBytes-64 {
		t.Fatalf("spec is only %d bytes", n)
	}
	return spec
}

// waitTasks polls until the service has n runnable tasks placed on nodes.
// 100 tasks of the largest spec take ~14 s under the race detector on a
// loaded 2-core machine (20 s was missed once in make test): 60 s.
func waitTasks(t *testing.T, store *raftstore.Store, id string, n int) {
	t.Helper()
	testutil.EventuallyErr(t, 60*time.Second, 10*time.Millisecond, func() error {
		got := 0
		store.View(func(tx raftstore.ReadTx) {
			for _, tk := range tx.TasksByService(id) {
				if tk.DesiredState == api.TaskState_RUNNING && tk.GetStatus().GetState() == api.TaskState_ASSIGNED {
					got++
				}
			}
		})
		if got != n {
			return fmt.Errorf("service has %d tasks", got)
		}
		return nil
	}, "%d placed tasks", n)
}

// TestMaxSizeSpecScales: a service whose spec is at the size limit scales
// to 3 and then to 100 replicas, created, allocated and placed. Every task
// carries a copy of the spec, so each loop must cut its transactions by
// bytes: 100 tasks of 256 KiB would exceed the raft transaction cap many
// times over.
func TestMaxSizeSpecScales(t *testing.T) {
	store := raftstore.NewStandaloneStore(nil)
	ctx, cancel := context.WithCancel(context.Background())
	err := store.Update(ctx, func(tx *raftstore.Tx) error {
		for _, id := range []string{"node1", "node2"} {
			n := &api.Node{Id: id, Spec: &api.NodeSpec{}, Status: &api.NodeStatus{State: api.NodeStatus_READY},
				Description: &api.NodeDescription{Hostname: id, Platform: &api.Platform{Os: "linux", Architecture: "amd64"},
					Resources: &api.Resources{NanoCpus: 4e9, MemoryBytes: 8 << 30}}}
			if err := tx.Create(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	loops := []interface{ Run(context.Context) error }{New(store, nil, nil), allocator.New(store, nil, nil), schedloop.New(store, nil, nil)}
	done := make(chan struct{}, len(loops))
	for _, l := range loops {
		go func() { _ = l.Run(ctx); done <- struct{}{} }()
	}
	defer func() {
		cancel()
		for range loops {
			<-done
		}
	}()

	svc := &api.Service{Id: "svc1", Spec: maxSizeSpec(t, 3), SpecVersion: 1}
	if err := store.Update(ctx, func(tx *raftstore.Tx) error { return tx.Create(svc) }); err != nil {
		t.Fatal(err)
	}
	waitTasks(t, store, svc.Id, 3)

	err = store.Update(ctx, func(tx *raftstore.Tx) error {
		cur := proto.Clone(tx.Service(svc.Id)).(*api.Service)
		cur.Spec.GetReplicated().Replicas = 100
		return tx.Update(cur)
	})
	if err != nil {
		t.Fatal(err)
	}
	waitTasks(t, store, svc.Id, 100)
}

// failingProposer refuses every write, as a store that cannot take one.
type failingProposer struct {
	mu    sync.Mutex
	count int
}

func (p *failingProposer) Propose(context.Context, raftstore.Command, []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count++
	return errdefs.Unavailable("injected: the write cannot be stored")
}

func (p *failingProposer) calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// TestFailingWritesBackOffAndLogOnce: a write that keeps failing is
// retried ever more slowly (not every 50 ms for ever) and logged once.
func TestFailingWritesBackOffAndLogOnce(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store := raftstore.NewStore(clock)
	p := &failingProposer{}
	store.SetProposer(p)
	svc := &api.Service{Id: "svc1", Meta: &api.Meta{Version: 1}, SpecVersion: 1, Spec: &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web"},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx"}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 1}},
	}}
	if err := store.Restore(1, []raftstore.Object{svc}); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = New(store, clock, log).Run(ctx) }()
	defer func() { cancel(); <-done }()

	// 30 s in steps of 50 ms: the old loop wrote 600 times.
	for i := 0; i < 600; i++ {
		bctx, bcancel := context.WithTimeout(ctx, 10*time.Second)
		err := clock.BlockUntilContext(bctx, 1) // the driver's one timer (the retry)
		bcancel()
		if err != nil {
			t.Fatalf("step %d: the orchestrator is not waiting: %v", i, err)
		}
		clock.Advance(50 * time.Millisecond)
	}
	t.Logf("%d writes", p.calls())
	if n := p.calls(); n < 5 || n > 15 {
		t.Errorf("%d writes in 30 s", n)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if n := strings.Count(logs.String(), "reconcile write failed"); n != 1 {
		t.Errorf("logged %d times:\n%s", n, logs.String())
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// pickyProposer applies every transaction, except that it refuses those
// writing tasks of one service.
type pickyProposer struct {
	mu     sync.Mutex
	s      *raftstore.Store
	index  uint64
	refuse string
}

func (p *pickyProposer) Propose(_ context.Context, cmd raftstore.Command, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	raw, isTx, err := raftstore.TransactionOf(cmd, payload)
	if err != nil {
		return err
	}
	var tx api.Transaction
	if err := proto.Unmarshal(raw, &tx); err != nil {
		return err
	}
	for _, a := range tx.GetActions() {
		if t, ok := raftstore.Unwrap(a.GetObject()).(*api.Task); ok && t.GetServiceId() == p.refuse {
			return errdefs.Unavailable("injected: service %s cannot be written", p.refuse)
		}
	}
	p.index++
	if !isTx {
		p.s.MarkApplied(p.index)
		return nil
	}
	return p.s.Apply(p.index, raw)
}

// TestAFailingServiceDoesNotHoldUpOthers: while one service's writes fail
// and back off, another service is reconciled as soon as it changes.
func TestAFailingServiceDoesNotHoldUpOthers(t *testing.T) {
	clock := clockwork.NewFakeClock()
	store := raftstore.NewStore(clock)
	p := &pickyProposer{s: store, index: 1, refuse: "bad"}
	store.SetProposer(p)
	spec := func(name string, n uint64) *api.ServiceSpec {
		return &api.ServiceSpec{Annotations: &api.Annotations{Name: name},
			Task: &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx"}},
			Mode: &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: n}}}
	}
	meta := &api.Meta{Version: 1}
	if err := store.Restore(1, []raftstore.Object{
		&api.Service{Id: "bad", Meta: meta, SpecVersion: 1, Spec: spec("bad", 1)},
		&api.Service{Id: "good", Meta: meta, SpecVersion: 1, Spec: spec("good", 0)},
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = New(store, clock, slog.New(slog.NewTextHandler(io.Discard, nil))).Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	for i := 0; i < 200; i++ { // 10 s: "bad" backs off to 5 s
		bctx, bcancel := context.WithTimeout(ctx, 10*time.Second)
		err := clock.BlockUntilContext(bctx, 1)
		bcancel()
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(50 * time.Millisecond)
	}
	err := store.Update(ctx, func(tx *raftstore.Tx) error {
		svc := proto.Clone(tx.Service("good")).(*api.Service)
		svc.Spec.GetReplicated().Replicas = 2
		return tx.Update(svc)
	})
	if err != nil {
		t.Fatal(err)
	}
	// No time passes on the orchestrator's clock: "good" must not wait
	// for "bad"'s backoff.
	testutil.EventuallyErr(t, 5*time.Second, 5*time.Millisecond, func() error {
		n := 0
		store.View(func(tx raftstore.ReadTx) { n = len(tx.TasksByService("good")) })
		if n != 2 {
			return fmt.Errorf("service good has %d tasks", n)
		}
		return nil
	}, "service good's 2 tasks")
}
