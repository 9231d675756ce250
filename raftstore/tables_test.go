package raftstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func TestKindIndexFollowsKinds(t *testing.T) {
	if len(Kinds) != numKinds {
		t.Fatalf("%d kinds, numKinds %d", len(Kinds), numKinds)
	}
	for i, k := range Kinds {
		if kindIndex(k) != i {
			t.Errorf("kindIndex(%s) = %d, want %d", k, kindIndex(k), i)
		}
	}
}

// Reads of a kind the store does not have find nothing, as with go-memdb
// (an unknown table), rather than panic.
func TestUnknownKindReadsNothing(t *testing.T) {
	s := newLocalStore()
	if err := s.Update(context.Background(), func(tx *Tx) error { return tx.Create(svc("s1", "web")) }); err != nil {
		t.Fatal(err)
	}
	s.View(func(tx ReadTx) {
		if o := tx.Get("volume", "s1"); o != nil {
			t.Errorf("Get of an unknown kind = %v", o)
		}
		if _, err := Lookup(tx, "volume", "s1", func(s *api.Service) string { return "" }); !errdefs.IsNotFound(err) {
			t.Errorf("Lookup of an unknown kind: %v", err)
		}
	})
}

// rounds returns the tasks' "round" labels, deduplicated.
func rounds(tasks []*api.Task) []string {
	var out []string
	for _, t := range tasks {
		r := t.GetAnnotations().GetLabels()["round"]
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// A View taken before a commit never sees it, even while later writers
// change, move and delete the same keys; every View sees one whole
// transaction or none of it; an Update callback's private writes (flushed
// into its trees by index reads) reach no one else, and an aborted one
// leaves nothing behind. Run with -race: readers share the trees that
// writers clone.
func TestSnapshotIsolation(t *testing.T) {
	s := newLocalStore()
	ctx := context.Background()
	const n = 300
	if err := s.Update(ctx, func(tx *Tx) error {
		for _, id := range []string{"sa", "sb"} {
			if err := tx.Create(svc(id, "name-"+id)); err != nil {
				return err
			}
		}
		for i := range n {
			if err := tx.Create(&api.Task{Id: fmt.Sprintf("t%04d", i), ServiceId: "sa", NodeId: "n0",
				Annotations: &api.Annotations{Labels: map[string]string{"round": "0"}}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Held snapshots: one taken now, kept across every write below.
	held := make(chan struct{})
	heldDone := make(chan error, 1)
	snapshotTaken := make(chan struct{})
	go func() {
		s.View(func(tx ReadTx) {
			close(snapshotTaken)
			<-held
			heldDone <- checkRound(tx, "0", n, "sa", "n0")
		})
	}()
	<-snapshotTaken

	// Readers: each View must see exactly one round.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4) // a reader or callback loop stops at its first error
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				s.View(func(tx ReadTx) {
					rs := rounds(tx.Tasks())
					if len(rs) != 1 {
						err = fmt.Errorf("a view saw rounds %v at once", rs)
						return
					}
					svc, node := "sa", "n0"
					if r, _ := strconv.Atoi(rs[0]); r%2 == 1 {
						svc, node = "sb", "n1"
					}
					err = checkRound(tx, rs[0], n, svc, node)
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}

	// Concurrent callbacks that write, flush (cloning the published task
	// table, as the Apply below does: -race checks that clones of one tree
	// are serialized) and abort.
	errAbort := errors.New("abort")
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := s.Update(ctx, func(tx *Tx) error {
					if err := tx.Create(&api.Task{Id: "private", NodeId: "n0"}); err != nil {
						return err
					}
					if len(tx.TasksByNode("n0")) == 0 {
						return errors.New("a callback does not see its own task")
					}
					return errAbort
				})
				if err != errAbort {
					errs <- fmt.Errorf("aborted callback: %v", err)
					return
				}
			}
		}()
	}

	// Writers: each round moves every task to the other service and node
	// and relabels it; an aborted callback in between writes everything
	// too (flushed by an index read) and fails.
	for round := 1; round <= 20; round++ {
		svcID, node := "sa", "n0"
		if round%2 == 1 {
			svcID, node = "sb", "n1"
		}
		err := s.Update(ctx, func(tx *Tx) error {
			for _, old := range tx.Tasks() {
				u := CloneTask(old)
				u.ServiceId, u.NodeId = svcID, node
				u.Annotations = &api.Annotations{Labels: map[string]string{"round": strconv.Itoa(round)}}
				if err := tx.Update(u); err != nil {
					return err
				}
			}
			if got := len(tx.TasksByNode(node)); got != n {
				return fmt.Errorf("round %d: the callback sees %d of its own tasks on %s", round, got, node)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		aborted := errAbort
		err = s.Update(ctx, func(tx *Tx) error {
			for _, old := range tx.Tasks() {
				if err := tx.Delete(old); err != nil {
					return err
				}
			}
			if err := tx.Create(svc("sc", "name-sa-renamed")); err != nil {
				return err
			}
			if len(tx.Tasks()) != 0 || tx.ServiceByName("name-sa-renamed") == nil {
				return errors.New("the callback does not see its own deletes")
			}
			return aborted
		})
		if err != aborted {
			t.Fatalf("aborted callback: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	close(held)
	if err := <-heldDone; err != nil {
		t.Errorf("the snapshot held across 20 commits: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s.View(func(tx ReadTx) {
		if err := checkRound(tx, "20", n, "sa", "n0"); err != nil {
			t.Error(err)
		}
		if tx.Service("sc") != nil || tx.ServiceByName("name-sa-renamed") != nil {
			t.Error("an aborted callback's write reached the store")
		}
	})
}

// checkRound checks that tx holds n tasks of round r, all of service svc
// and on node, by every tree.
func checkRound(tx ReadTx, r string, n int, svcID, node string) error {
	for what, tasks := range map[string][]*api.Task{
		"Tasks": tx.Tasks(), "TasksByService": tx.TasksByService(svcID), "TasksByNode": tx.TasksByNode(node),
	} {
		if len(tasks) != n {
			return fmt.Errorf("round %s: %s has %d tasks, want %d", r, what, len(tasks), n)
		}
		if rs := rounds(tasks); len(rs) != 1 || rs[0] != r {
			return fmt.Errorf("%s: rounds %v, want %s", what, rs, r)
		}
	}
	for _, other := range []string{"sa", "sb"} {
		if other != svcID && len(tx.TasksByService(other)) != 0 {
			return fmt.Errorf("round %s: tasks left on service %s", r, other)
		}
	}
	return nil
}

// Every list comes in the order of its keys' bytes, as go-memdb's radix
// trees gave it: by ID, or by service / node ID then task ID; an ID that is
// a prefix of another (s1, s10) is its own key, before the longer one. A
// random history of creates, moves and deletes is checked against a model.
func TestIterationOrderAgainstAModel(t *testing.T) {
	s := newLocalStore()
	ctx := context.Background()
	rng := rand.New(rand.NewSource(1))
	// sXYZa and sXYZb share their first 4 bytes, which the task trees
	// compare as a number (taskHead) before the whole IDs.
	svcIDs := []string{"s1", "s10", "s2", "s", "S", "sXYZa", "sXYZb"}
	nodeIDs := []string{"n1", "n10", "n", "n2", "", "nXYZa", "nXYZb"}
	if err := s.Update(ctx, func(tx *Tx) error {
		for _, id := range svcIDs {
			if err := tx.Create(svc(id, "svc-"+id)); err != nil {
				return err
			}
			if err := tx.Create(&api.Node{Id: "node-" + id}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	model := map[string]*api.Task{} // ID -> task (service, node)
	randomID := func() string {
		const alphabet = "ab1"
		b := make([]byte, 1+rng.Intn(4))
		for i := range b {
			b[i] = alphabet[rng.Intn(len(alphabet))]
		}
		if rng.Intn(3) == 0 {
			// Over 8 bytes with a common head: the by-ID tree compares
			// the first 8 bytes as a number, then the rest.
			return "ab1ab1a" + string(b)
		}
		return string(b)
	}
	for round := range 60 {
		err := s.Update(ctx, func(tx *Tx) error {
			touched := map[string]bool{} // a delete and a create of one ID in one callback coalesce into a create that fails
			for range 10 {
				id := randomID()
				if touched[id] {
					continue
				}
				touched[id] = true
				old := tx.Task(id)
				switch {
				case old == nil:
					nt := &api.Task{Id: id, ServiceId: svcIDs[rng.Intn(len(svcIDs))], NodeId: nodeIDs[rng.Intn(len(nodeIDs))]}
					if rng.Intn(5) == 0 {
						nt.ServiceId = ""
					}
					if err := tx.Create(nt); err != nil {
						return err
					}
					model[id] = nt
				case rng.Intn(3) == 0:
					if err := tx.Delete(old); err != nil {
						return err
					}
					delete(model, id)
				default:
					u := CloneTask(old)
					u.NodeId = nodeIDs[rng.Intn(len(nodeIDs))]
					if u.ServiceId != "" && rng.Intn(2) == 0 {
						u.ServiceId = svcIDs[rng.Intn(len(svcIDs))]
					}
					if err := tx.Update(u); err != nil {
						return err
					}
					model[id] = u
				}
			}
			if round%2 == 0 {
				return checkOrder(tx.ReadTx, model, svcIDs, nodeIDs) // the callback's own view
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		s.View(func(tx ReadTx) {
			if err := checkOrder(tx, model, svcIDs, nodeIDs); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		})
	}
	s.View(func(tx ReadTx) {
		want := slices.Sorted(slices.Values(svcIDs))
		var got []string
		for _, sv := range tx.Services() {
			got = append(got, sv.Id)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Services() in order %v, want %v", got, want)
		}
		got = nil
		for _, n := range tx.Nodes() {
			got = append(got, n.Id)
		}
		if !slices.IsSorted(got) || len(got) != len(svcIDs) {
			t.Errorf("Nodes() in order %v", got)
		}
		objs, _ := s.Objects()
		if len(objs) != 2*len(svcIDs)+len(model) {
			t.Errorf("Objects() returned %d, want %d", len(objs), 2*len(svcIDs)+len(model))
		}
	})
}

func checkOrder(tx ReadTx, model map[string]*api.Task, svcIDs, nodeIDs []string) error {
	taskIDs := func(ts []*api.Task) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.Id)
		}
		return out
	}
	want := func(match func(*api.Task) bool) []string {
		var out []string
		for id, t := range model {
			if match(t) {
				out = append(out, id)
			}
		}
		slices.Sort(out)
		return out
	}
	if got, w := taskIDs(tx.Tasks()), want(func(*api.Task) bool { return true }); !slices.Equal(got, w) {
		return fmt.Errorf("Tasks() = %v, want %v", got, w)
	}
	for _, sv := range append(slices.Clone(svcIDs), "") {
		got, w := taskIDs(tx.TasksByService(sv)), want(func(t *api.Task) bool { return sv != "" && t.ServiceId == sv })
		if !slices.Equal(got, w) {
			return fmt.Errorf("TasksByService(%q) = %v, want %v", sv, got, w)
		}
	}
	for _, n := range nodeIDs {
		got, w := taskIDs(tx.TasksByNode(n)), want(func(t *api.Task) bool { return n != "" && t.NodeId == n })
		if !slices.Equal(got, w) {
			return fmt.Errorf("TasksByNode(%q) = %v, want %v", n, got, w)
		}
	}
	for _, p := range []string{"a", "ab", "1", "b1a", "ab1ab1a", "ab1ab1aa", "ab1ab1ab1"} {
		got := byPrefix[*api.Task](tx, KindTask, p)
		w := want(func(t *api.Task) bool { return strings.HasPrefix(t.Id, p) })
		if !slices.Equal(taskIDs(got), w) {
			return fmt.Errorf("prefix %q = %v, want %v", p, taskIDs(got), w)
		}
	}
	return nil
}

// The name tree follows renames and deletes, in an Update callback and at
// Apply, and both keep refusing a name in use with AlreadyExists.
func TestNameIndexRenamesAndDeletes(t *testing.T) {
	s := newLocalStore()
	ctx := context.Background()
	get := func(id string) *api.Service {
		var out *api.Service
		s.View(func(tx ReadTx) { out = tx.Service(id) })
		return out
	}
	named := func(name string) string {
		var out string
		s.View(func(tx ReadTx) { out = tx.ServiceByName(name).GetId() })
		return out
	}
	rename := func(id, name string) *api.Service {
		u := cloneOf(get(id))
		u.Spec.Annotations.Name = name
		return u
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Create(svc("s1", "a")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Update(rename("s1", "b")) }); err != nil {
		t.Fatal(err)
	}
	if named("a") != "" || named("b") != "s1" {
		t.Fatalf("after a rename a -> b: a is %q, b is %q", named("a"), named("b"))
	}
	// The old name is free again; the new one is taken.
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Create(svc("s2", "a")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Update(rename("s2", "b")) }); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("rename onto a used name in a callback: %v", err)
	}
	// The same at Apply (the callback's check bypassed: two writers that
	// each saw the name free).
	if err := s.commit(ctx, []*api.StoreAction{{Kind: api.StoreAction_UPDATE, Object: Wrap(rename("s2", "b"))}}); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("rename onto a used name at Apply: %v", err)
	}
	if err := s.commit(ctx, []*api.StoreAction{{Kind: api.StoreAction_CREATE, Object: Wrap(svc("s3", "b"))}}); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("create with a used name at Apply: %v", err)
	}
	// In one callback: the holder renamed away, then the name taken by
	// another, seen by the callback's own lookups.
	if err := s.Update(ctx, func(tx *Tx) error {
		u := cloneOf(tx.Service("s1"))
		u.Spec.Annotations.Name = "c"
		if err := tx.Update(u); err != nil {
			return err
		}
		if tx.ServiceByName("b") != nil || tx.ServiceByName("c").GetId() != "s1" {
			return errors.New("the callback does not see its own rename")
		}
		v := cloneOf(tx.Service("s2"))
		v.Spec.Annotations.Name = "b"
		return tx.Update(v)
	}); err != nil {
		t.Fatal(err)
	}
	if named("a") != "" || named("b") != "s2" || named("c") != "s1" {
		t.Fatalf("after swapping names: a %q, b %q, c %q", named("a"), named("b"), named("c"))
	}
	// A delete frees the name; Lookup by name follows.
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Delete(tx.Service("s2")) }); err != nil {
		t.Fatal(err)
	}
	if named("b") != "" {
		t.Fatalf("a deleted service's name still resolves to %q", named("b"))
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Update(rename("s1", "b")) }); err != nil {
		t.Fatal(err)
	}
	s.View(func(tx ReadTx) {
		if o, err := Lookup(tx, KindService, "b", func(s *api.Service) string { return s.Spec.Annotations.Name }); err != nil || o.Id != "s1" {
			t.Errorf("Lookup(b) = %v, %v", o.GetId(), err)
		}
		if _, err := Lookup(tx, KindService, "c", func(s *api.Service) string { return s.Spec.Annotations.Name }); !errdefs.IsNotFound(err) {
			t.Errorf("Lookup(c) after the rename: %v", err)
		}
	})
	// An empty name is not indexed: several services may have none.
	if err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.Create(svc("e1", "")); err != nil {
			return err
		}
		return tx.Create(svc("e2", ""))
	}); err != nil {
		t.Fatal(err)
	}
	if named("") != "" {
		t.Fatalf("the empty name resolves to %q", named(""))
	}
}

// taskHead's inline hash is FNV-1a as hash/fnv computes it.
func TestTaskHeadHashIsFNV1a(t *testing.T) {
	for _, key := range []string{"", "s", "svc-1", "svc-2", "3yq2h7kx0c1mv9n8b5z4w6t2r"} {
		h := fnv.New32a()
		h.Write([]byte(key))
		if got := uint32(taskHead(key, "abcd") >> 32); got != h.Sum32() {
			t.Errorf("taskHead(%q) hashes to %#x, FNV-1a gives %#x", key, got, h.Sum32())
		}
		if got := uint32(taskHead(key, "abcdef")); got != 0x61626364 {
			t.Errorf("taskHead(%q, abcdef) keeps %#x of the ID, want 0x61626364", key, got)
		}
	}
}
