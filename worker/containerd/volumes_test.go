package containerd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// fakeUsers stands for the containers of the node: which _data
// directories they mount.
type fakeUsers struct {
	mu sync.Mutex
	m  map[string][]string
}

func (f *fakeUsers) add(dir, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[dir] = append(f.m[dir], id)
}

func (f *fakeUsers) get(context.Context) (map[string][]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string][]string, len(f.m))
	for k, v := range f.m {
		out[k] = append([]string(nil), v...)
	}
	return out, nil
}

func newTestStore(t *testing.T) (*volumeStore, *fakeUsers) {
	u := &fakeUsers{m: map[string][]string{}}
	return newVolumeStore(filepath.Join(t.TempDir(), "volumes"), u.get), u
}

// mountVolume does what Prepare does for a named volume mount.
func mountVolume(t *testing.T, s *volumeStore, u *fakeUsers, name, task string) string {
	done := s.beginUse()
	defer done()
	d := s.dataDir(name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Error(err)
		return d
	}
	s.record([]string{d, filepath.Join(s.root, "..", "tasks", task, "volumes", "abc")})
	if err := os.WriteFile(filepath.Join(d, task), []byte("x"), 0o644); err != nil {
		t.Error(err)
	}
	u.add(d, task)
	return d
}

func TestVolumeStoreListGetRemove(t *testing.T) {
	ctx := context.Background()
	s, u := newTestStore(t)
	if vs, err := s.List(ctx); err != nil || len(vs) != 0 {
		t.Fatalf("empty store: %v %v", vs, err)
	}
	d := mountVolume(t, s, u, "data", "task1")
	v, err := s.Get(ctx, "data")
	if err != nil {
		t.Fatal(err)
	}
	if v.GetName() != "data" || v.GetDriver() != "local" || v.GetScope() != "local" || v.GetMountpoint() != d ||
		v.GetCreatedAt() == nil || len(v.GetUsedBy()) != 1 || v.GetAnonymous() {
		t.Errorf("Get: %v", v)
	}
	if _, err := os.Stat(filepath.Join(s.root, "data", volumeMetaFile)); err != nil {
		t.Errorf("no metadata recorded for a volume a mount made: %v", err)
	}
	err = s.Remove(ctx, "data", true)
	if want := "remove data: volume is in use - [task1]"; err == nil || err.Error() != want || !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Remove of a volume in use: %v, want %q", err, want)
	}
	_, err = s.Get(ctx, "nope")
	if want := "get nope: no such volume"; err == nil || err.Error() != want || !errdefs.IsNotFound(err) {
		t.Errorf("Get nope: %v, want %q", err, want)
	}
	if err := s.Remove(ctx, "nope", false); !errdefs.IsNotFound(err) {
		t.Errorf("Remove nope: %v", err)
	}
	if err := s.Remove(ctx, "nope", true); err != nil {
		t.Errorf("Remove -f nope: %v", err)
	}
	u.m = map[string][]string{} // the container is gone
	if err := s.Remove(ctx, "data", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.root, "data")); !os.IsNotExist(err) {
		t.Errorf("volume dir still there: %v", err)
	}
	if vs, _ := s.List(ctx); len(vs) != 0 {
		t.Errorf("List after Remove: %v", vs)
	}
}

func TestVolumeStoreCreateAndPrune(t *testing.T) {
	ctx := context.Background()
	s, u := newTestStore(t)
	named, err := s.Create(ctx, "keep", map[string]string{"a": "1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if named.GetLabels()["a"] != "1" || named.GetAnonymous() {
		t.Errorf("named: %v", named)
	}
	anon, err := s.Create(ctx, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(anon.GetName()) != 64 || !anon.GetAnonymous() {
		t.Errorf("anonymous: %v", anon)
	}
	if err := os.WriteFile(filepath.Join(anon.GetMountpoint(), "f"), make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	mountVolume(t, s, u, "used", "task1")
	if _, err := s.Create(ctx, "bad/name", nil, nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Create bad/name: %v", err)
	}
	if _, err := s.Create(ctx, "x", nil, map[string]string{"type": "nfs"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Create with options: %v", err)
	}
	again, err := s.Create(ctx, "keep", nil, nil)
	if err != nil || again.GetLabels()["a"] != "1" {
		t.Errorf("Create of an existing volume changed it: %v %v", again, err)
	}

	// Anonymous only (Docker API >= 1.42 without all=true).
	deleted, space, err := s.Prune(ctx, func(v *api.Volume) bool { return v.GetAnonymous() })
	if err != nil || len(deleted) != 1 || deleted[0] != anon.GetName() || space != 1000 {
		t.Fatalf("prune anonymous: %v %d %v", deleted, space, err)
	}
	// All: the named unused one goes, the one in use stays.
	deleted, _, err = s.Prune(ctx, nil)
	if err != nil || fmt.Sprint(deleted) != "[keep]" {
		t.Fatalf("prune all: %v %v", deleted, err)
	}
	vs, _ := s.List(ctx)
	if len(vs) != 1 || vs[0].GetName() != "used" {
		t.Errorf("left: %v", vs)
	}
}

// TestVolumeStoreRemoveRacesMount: a removal racing a task start that
// mounts the same volume never deletes data under a container that uses
// it. Run with -race.
func TestVolumeStoreRemoveRacesMount(t *testing.T) {
	ctx := context.Background()
	for round := 0; round < 50; round++ {
		s, u := newTestStore(t)
		name := "v"
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(2)
			go func() {
				defer wg.Done()
				mountVolume(t, s, u, name, fmt.Sprintf("task%d", i))
			}()
			go func() {
				defer wg.Done()
				err := s.Remove(ctx, name, true)
				if err != nil && !strings.Contains(err.Error(), "volume is in use") {
					t.Errorf("Remove: %v", err)
				}
			}()
		}
		wg.Wait()
		users, _ := u.get(ctx)
		for _, id := range users[s.dataDir(name)] {
			if _, err := os.Stat(filepath.Join(s.dataDir(name), id)); err != nil {
				t.Fatalf("round %d: the data of %s, which uses the volume, is gone: %v", round, id, err)
			}
		}
	}
}
