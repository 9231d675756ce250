package raftstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// A large transaction goes into the log deflated and applies the same on
// every member; a small one stays as it is.
func TestLargeTransactionsAreDeflated(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := l.store.Update(ctx, func(tx *Tx) error {
		for i := 0; i < 500; i++ {
			s := svc(fmt.Sprint("id", i), fmt.Sprint("svc", i))
			s.Spec.Task = &api.TaskSpec{Container: &api.ContainerSpec{Image: "127.0.0.1:5000/busybox:1", Env: []string{strings.Repeat("A=b", 100)}}}
			if err := tx.Create(s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := createService(ctx, l.store, "small"); err != nil {
		t.Fatal(err)
	}
	c.converged()
	last, _ := l.storage.LastIndex()
	first, _ := l.storage.FirstIndex()
	ents, err := l.storage.Entries(first, last+1, ^uint64(0))
	if err != nil {
		t.Fatal(err)
	}
	cmds := map[Command]int{}
	for _, e := range ents {
		if len(e.Data) >= entryHeader {
			cmds[Command(e.Data[0])]++
			if Command(e.Data[0]) == CmdTransactionDeflated && e.Size() > 100<<10 {
				t.Errorf("deflated entry of %d bytes", e.Size())
			}
		}
	}
	if cmds[CmdTransactionDeflated] != 1 || cmds[CmdTransaction] == 0 {
		t.Fatalf("commands in the log: %v", cmds)
	}
}

// A deflated entry that does not inflate is skipped on every member, like
// any poison entry.
func TestDeflatedEntryThatDoesNotInflateIsSkipped(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.node.Propose(ctx, CmdTransactionDeflated, []byte("not deflate data")); !errors.Is(err, errdefs.ErrInternal) {
		t.Fatalf("got %v, want an internal error", err)
	}
	if err := c.write("after"); err != nil {
		t.Fatal(err)
	}
	c.converged()
}

func TestInflateRefusesOutputBeyondItsLimit(t *testing.T) {
	z, ok := deflate(bytes.Repeat([]byte{'a'}, 1<<20))
	if !ok {
		t.Fatal("a megabyte of one letter did not deflate")
	}
	if _, err := inflate(z, 1<<10); err == nil {
		t.Fatal("a bomb inflated past its limit")
	}
	out, err := inflate(z, 1<<20)
	if err != nil || len(out) != 1<<20 {
		t.Fatalf("inflate: %d bytes, %v", len(out), err)
	}
	if _, ok := deflate([]byte(randomText(64 << 10))); !ok {
		t.Fatal("random base64 (which deflates by about a quarter) was not deflated")
	}
	if _, ok := deflate(make([]byte, 100)); ok {
		t.Fatal("a small payload was deflated")
	}
}

// The pooled compressors and decompressors carry nothing from one use to
// the next: payloads of different sizes and contents, deflated and
// inflated from several goroutines at once (and after an inflate that
// failed), come back exactly.
func TestPooledFlateRoundTrips(t *testing.T) {
	if _, err := inflate([]byte("not deflate data at all"), 1<<20); err == nil {
		t.Fatal("garbage inflated")
	}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range 40 {
				in := []byte(strings.Repeat(fmt.Sprintf("goroutine %d payload %d; ", g, i), 800+i*97))
				z, ok := deflate(in)
				if !ok {
					errs <- fmt.Errorf("payload %d/%d (%d bytes) did not deflate", g, i, len(in))
					return
				}
				out, err := inflate(z, int64(len(in)))
				if err != nil || !bytes.Equal(out, in) {
					errs <- fmt.Errorf("payload %d/%d: %d bytes back of %d, %v", g, i, len(out), len(in), err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// Snapshot data is read whether it was written deflated or in clear (as
// before compression).
func TestSnapshotDataDeflatedOrInClear(t *testing.T) {
	snap := &api.StoreSnapshot{Version: snapshotVersion}
	for i := 0; i < 400; i++ {
		s := svc(fmt.Sprint("id", i), fmt.Sprint("name", i))
		s.Spec.Task = &api.TaskSpec{Container: &api.ContainerSpec{Image: "127.0.0.1:5000/busybox:1", Args: []string{"sleep", "3600"}}}
		snap.Objects = append(snap.Objects, Wrap(s))
	}
	raw, err := proto.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"deflated": encodeSnapshotData(raw), "clear": raw} {
		got, err := DecodeSnapshot(data)
		if err != nil || len(got.Objects) != 400 {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if enc := encodeSnapshotData(raw); !bytes.HasPrefix(enc, snapshotDeflated) || len(enc) >= len(raw) {
		t.Fatalf("snapshot of %d bytes encoded to %d", len(raw), len(enc))
	}
}
