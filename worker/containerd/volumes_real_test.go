package containerd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// TestVolumeInUseOnContainerd: the executor sees which containers mount a
// named volume: listed with the task, refused by RemoveVolume (with -f
// too) and skipped by prune while the container exists, even stopped;
// removable once the task's container is removed.
func TestVolumeInUseOnContainerd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 60*time.Second)
	task := e.task(busyboxRef, "sh", "-c", "echo hi > /data/f")
	task.Spec.Container.Mounts = []*api.Mount{{Type: api.Mount_VOLUME, Source: "data", Target: "/data"}}
	c := e.controller(task)
	mustPrepareStart(t, c)
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := e.ex.GetVolume(ctx, "data")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.GetUsedBy()) != 1 || v.GetUsedBy()[0] != task.GetId() {
		t.Errorf("UsedBy %v, want [%s]", v.GetUsedBy(), task.GetId())
	}
	if b, err := os.ReadFile(filepath.Join(v.GetMountpoint(), "f")); err != nil || string(b) != "hi\n" {
		t.Errorf("the task's file in %s: %q %v", v.GetMountpoint(), b, err)
	}
	for _, force := range []bool{false, true} {
		err := e.ex.RemoveVolume(ctx, "data", force)
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "remove data: volume is in use - ["+task.GetId()+"]") {
			t.Errorf("RemoveVolume(force=%v) of a volume a stopped container mounts: %v", force, err)
		}
	}
	if deleted, _, err := e.ex.PruneVolumes(ctx, nil); err != nil || len(deleted) != 0 {
		t.Errorf("prune removed a volume in use: %v %v", deleted, err)
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.ex.RemoveVolume(ctx, "data", false); err != nil {
		t.Fatalf("RemoveVolume once the container is gone: %v", err)
	}
	if vs, err := e.ex.ListVolumes(ctx); err != nil || len(vs) != 0 {
		t.Errorf("volumes left: %v %v", vs, err)
	}
}
