package dispatcher

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// A node gets exactly the secrets and configs its tasks meant to run
// reference, unsealed, and loses them when the last such task goes.
func TestDepsFollowTheNodesTasks(t *testing.T) {
	store := raftstore.NewStandaloneStore(nil)
	key := make([]byte, pki.SealKeySize)
	_, _ = rand.Read(key)
	sealed, err := pki.Seal(key, []byte("hunter2"))
	if err != nil {
		t.Fatal(err)
	}
	err = store.Update(context.Background(), func(tx *raftstore.Tx) error {
		for _, o := range []raftstore.Object{
			&api.Cluster{Id: "c", Spec: &api.ClusterSpec{Annotations: &api.Annotations{Name: "default"}}, SecretsKey: key},
			&api.Secret{Id: "s1", Spec: &api.SecretSpec{Annotations: &api.Annotations{Name: "pw"}}, Sealed: sealed},
			&api.Secret{Id: "s2", Spec: &api.SecretSpec{Annotations: &api.Annotations{Name: "other"}}, Sealed: sealed},
			&api.Config{Id: "c1", Spec: &api.ConfigSpec{Annotations: &api.Annotations{Name: "conf"}, Data: []byte("x")}},
		} {
			if err := tx.Create(o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	task := func(id string, desired api.TaskState) *api.Task {
		return &api.Task{Id: id, DesiredState: desired, Spec: &api.TaskSpec{Container: &api.ContainerSpec{
			Secrets: []*api.SecretReference{{SecretId: "s1"}},
			Configs: []*api.ConfigReference{{ConfigId: "c1"}},
		}}}
	}
	d := newDeps(store)
	if ch := d.changes(); len(ch) != 0 {
		t.Fatalf("a node without tasks gets %v", ch)
	}
	d.track("t1", task("t1", api.TaskState_RUNNING))
	ch := d.changes()
	if len(ch) != 2 {
		t.Fatalf("changes %v, want the secret and the config", ch)
	}
	for _, c := range ch {
		if s := c.GetAssignment().GetSecret(); s != nil {
			if s.Id != "s1" || !bytes.Equal(s.Spec.Data, []byte("hunter2")) || s.Sealed != nil {
				t.Fatalf("secret sent as %v", s)
			}
		}
	}
	if ch := d.changes(); len(ch) != 0 {
		t.Fatalf("sent twice: %v", ch)
	}
	// A second task using the same secret changes nothing; the first
	// task stopping keeps it; the last one stopping withdraws it.
	d.track("t2", task("t2", api.TaskState_RUNNING))
	d.track("t1", task("t1", api.TaskState_SHUTDOWN))
	if ch := d.changes(); len(ch) != 0 {
		t.Fatalf("changes while a task still uses them: %v", ch)
	}
	d.track("t2", nil)
	ch = d.changes()
	if len(ch) != 2 || ch[0].Action != api.AssignmentChange_REMOVE || ch[1].Action != api.AssignmentChange_REMOVE {
		t.Fatalf("changes %v, want both withdrawn", ch)
	}
}

// Tasks that reference no secret and no config are not kept, so a node's
// many such tasks cost nothing at each send; a task whose new version
// drops its references (or gains them) is followed.
func TestDepsKeepOnlyTasksWithReferences(t *testing.T) {
	store := raftstore.NewStandaloneStore(nil)
	if err := store.Update(context.Background(), func(tx *raftstore.Tx) error {
		return tx.Create(&api.Config{Id: "c1", Spec: &api.ConfigSpec{Annotations: &api.Annotations{Name: "conf"}, Data: []byte("x")}})
	}); err != nil {
		t.Fatal(err)
	}
	plain := &api.Task{Id: "p", DesiredState: api.TaskState_RUNNING, Spec: &api.TaskSpec{Container: &api.ContainerSpec{Image: "img"}}}
	withConf := &api.Task{Id: "p", DesiredState: api.TaskState_RUNNING, Spec: &api.TaskSpec{Container: &api.ContainerSpec{
		Image: "img", Configs: []*api.ConfigReference{{ConfigId: "c1"}},
	}}}
	d := newDeps(store)
	for i := range 100 {
		d.track(fmt.Sprintf("t%d", i), plain)
	}
	if len(d.tasks) != 0 {
		t.Fatalf("%d tasks without references kept", len(d.tasks))
	}
	if ch := d.changes(); len(ch) != 0 {
		t.Fatalf("changes for tasks without references: %v", ch)
	}
	d.track("p", withConf)
	if ch := d.changes(); len(ch) != 1 || ch[0].GetAssignment().GetConfig().GetId() != "c1" {
		t.Fatalf("a task gaining a config: %v", ch)
	}
	d.track("p", plain)
	if ch := d.changes(); len(ch) != 1 || ch[0].Action != api.AssignmentChange_REMOVE {
		t.Fatalf("a task dropping its config: %v, want it withdrawn", ch)
	}
	if len(d.tasks) != 0 || len(d.configs) != 0 {
		t.Fatalf("left: %d tasks, %d configs", len(d.tasks), len(d.configs))
	}
}

// BenchmarkDepsChanges is one assignments send's dependency check on a
// node running 100 tasks that reference no secret or config (the scale
// harness's shape: 1,000,000 tasks on 10,000 nodes):
//
//	go test -run XXX -bench DepsChanges ./manager/dispatcher/
func BenchmarkDepsChanges(b *testing.B) {
	d := newDeps(raftstore.NewStandaloneStore(nil))
	spec := &api.TaskSpec{Container: &api.ContainerSpec{Image: "img"}}
	for i := range 100 {
		id := fmt.Sprintf("t%03d", i)
		d.track(id, &api.Task{Id: id, DesiredState: api.TaskState_RUNNING, Spec: spec})
	}
	b.ReportAllocs()
	for b.Loop() {
		if ch := d.changes(); len(ch) != 0 {
			b.Fatal(ch)
		}
	}
}
