package dispatcher

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// holdProposer applies transactions in order, except that one hold picks
// waits (outside the lock, so later ones go first) until released.
type holdProposer struct {
	s    *raftstore.Store
	hold func(*api.Transaction) <-chan struct{} // nil: apply at once

	mu  sync.Mutex
	idx uint64
}

func (p *holdProposer) Propose(ctx context.Context, cmd raftstore.Command, payload []byte) error {
	raw, isTx, err := raftstore.TransactionOf(cmd, payload)
	if err != nil {
		return err
	}
	if isTx && p.hold != nil {
		var tx api.Transaction
		if err := proto.Unmarshal(raw, &tx); err != nil {
			return err
		}
		if c := p.hold(&tx); c != nil {
			select {
			case <-c:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idx++
	if !isTx {
		p.s.MarkApplied(p.idx)
		return nil
	}
	return p.s.Apply(p.idx, append([]byte(nil), raw...))
}

// seedAssigned creates service svc and its tasks ids, ASSIGNED to n1.
func seedAssigned(t *testing.T, store *raftstore.Store, ids ...string) {
	t.Helper()
	if err := store.Update(context.Background(), func(tx *raftstore.Tx) error {
		if err := tx.Create(&api.Service{Id: "svc", Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: "svc"}}}); err != nil {
			return err
		}
		for _, id := range ids {
			if err := tx.Create(taskOn(id, "n1", api.TaskState_ASSIGNED)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A round of reports does not wait for the one before it: while the
// transaction of an earlier round is held, a later caller's reports commit
// and it is answered; the earlier caller is answered once its own
// transaction commits.
func TestStatusRoundsOverlap(t *testing.T) {
	store := raftstore.NewStore(nil)
	p := &holdProposer{s: store}
	store.SetProposer(p)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seedAssigned(t, store, "t1", "t2")
	release := make(chan struct{})
	p.hold = func(tx *api.Transaction) <-chan struct{} {
		for _, a := range tx.Actions {
			if a.GetObject().GetTask().GetId() == "t1" {
				return release
			}
		}
		return nil
	}
	w := newStatusWriter(store, clockwork.NewRealClock(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()
	defer func() { cancel(); <-done }()
	running := func(id string) []*api.TaskStatusUpdate {
		return []*api.TaskStatusUpdate{{TaskId: id, Status: &api.TaskStatus{State: api.TaskState_RUNNING, Timestamp: timestamppb.Now()}}}
	}
	first := make(chan error, 1)
	go func() { first <- w.submit(ctx, "n1", running("t1")) }()
	time.Sleep(50 * time.Millisecond) // t1's round is cut and held
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	if err := w.submit(sctx, "n1", running("t2")); err != nil {
		t.Fatalf("the later round waited for the held one: %v", err)
	}
	select {
	case err := <-first:
		t.Fatalf("the held round was answered before its write: %v", err)
	default:
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	store.View(func(tx raftstore.ReadTx) {
		for _, id := range []string{"t1", "t2"} {
			if s := tx.Task(id).GetStatus().GetState(); s != api.TaskState_RUNNING {
				t.Fatalf("%s is %v", id, s)
			}
		}
	})
}

// A report that commits after a later one of the same state (parts of two
// rounds in flight) does not overwrite it.
func TestOlderReportOfTheSameStateIsSkipped(t *testing.T) {
	store := raftstore.NewStore(nil)
	store.SetProposer(&holdProposer{s: store})
	ctx := context.Background()
	seedAssigned(t, store, "t1")
	w := newStatusWriter(store, clockwork.NewRealClock(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	at := time.Unix(1_800_000_000, 0)
	report := func(msg string, ts time.Time) map[string]pendingStatus {
		return map[string]pendingStatus{"t1": {nodeID: "n1", status: &api.TaskStatus{State: api.TaskState_RUNNING, Message: msg, Timestamp: timestamppb.New(ts)}}}
	}
	if err := w.commit(ctx, []string{"t1"}, report("newer", at.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	message := func() (msg string) {
		store.View(func(tx raftstore.ReadTx) { msg = tx.Task("t1").GetStatus().GetMessage() })
		return msg
	}
	if err := w.commit(ctx, []string{"t1"}, report("older", at)); err != nil {
		t.Fatal(err)
	}
	if msg := message(); msg != "newer" {
		t.Fatalf("status message %q after an older report, want newer", msg)
	}
	if err := w.commit(ctx, []string{"t1"}, report("newest", at.Add(2*time.Second))); err != nil {
		t.Fatal(err)
	}
	if msg := message(); msg != "newest" {
		t.Fatalf("status message %q, want newest", msg)
	}
}
