package worker

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/shoal-project/shoal/internal/testutil"
	api "github.com/shoal-project/shoal/proto"
)

// captureLogs makes the harness's agents log into the returned buffer.
func (h *harness) captureLogs() *testutil.LogBuffer {
	b := &testutil.LogBuffer{}
	prev := h.tweak
	h.tweak = func(c *Config) {
		if prev != nil {
			prev(c)
		}
		c.Logger = slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return b
}

// putRaw overwrites one value of a task's record in a closed task db.
func putRaw(t *testing.T, dir, id string, name, value []byte) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, taskDBFile), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTasks).Bucket([]byte(id))
		if b == nil {
			t.Fatalf("no record of task %s", id)
		}
		return b.Put(name, value)
	}); err != nil {
		t.Fatal(err)
	}
}

// storedIDs opens the (closed) task db and lists the tasks it holds.
func storedIDs(t *testing.T, dir string, key []byte) ([]string, *taskDBLoad) {
	t.Helper()
	db, load, err := openTaskDB(dir, taskDBOptions{key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer db.close()
	var ids []string
	for _, st := range load.tasks {
		ids = append(ids, st.task.GetId())
	}
	slices.Sort(ids)
	return ids, load
}

// runThree starts an agent with tasks keep1, keep2 and gone RUNNING, then
// stops it and takes "gone" out of the managers' set, as if the service
// had been scaled down while the agent was away.
func runThree(t *testing.T, h *harness) {
	t.Helper()
	h.start()
	for _, id := range []string{"keep1", "keep2", "gone"} {
		h.cluster.assign(task(id, api.TaskState_RUNNING))
	}
	for _, id := range []string{"keep1", "keep2", "gone"} {
		h.waitRunning(id)
	}
	h.stop()
	h.cluster.mu.Lock()
	delete(h.cluster.tasks, "gone")
	h.cluster.mu.Unlock()
}

// checkSettled waits for the managers' set to settle a rebuilt agent:
// the tasks still wanted keep their one container (re-attached: waited on
// again, never started twice), the other is removed, and nothing else.
func checkSettled(t *testing.T, h *harness, logs *testutil.LogBuffer) {
	t.Helper()
	h.waitFor("the unwanted task's container removed", func() bool { return !h.exec.has("gone") })
	for _, id := range []string{"keep1", "keep2"} {
		h.waitFor(id+" waited on again", func() bool { return h.exec.count("wait", id) == 2 })
		if !h.exec.running(id) {
			t.Errorf("%s is not running", id)
		}
		if n := h.exec.count("run", id); n != 1 {
			t.Errorf("%s: the process was started %d times", id, n)
		}
		if n := h.exec.count("shutdown", id) + h.exec.count("remove", id); n != 0 {
			t.Errorf("%s was disturbed: %v", id, h.exec.callList())
		}
		h.checkForward(id)
	}
	if ids, _ := h.exec.Tasks(t.Context()); !slices.Equal(ids, []string{"keep1", "keep2"}) {
		t.Errorf("containers %v, want [keep1 keep2]", ids)
	}
	h.waitFor("the rebuild reported", func() bool { return strings.Contains(logs.String(), "task db rebuilt") })
	h.stop()
	if ids, _ := storedIDs(t, h.dir, nil); !slices.Equal(ids, []string{"keep1", "keep2"}) {
		t.Errorf("the rebuilt task db holds %v, want [keep1 keep2]", ids)
	}
}

// TestGarbledRecordsAreDroppedAndRebuilt: a task record and a status
// record that do not decode are dropped with a warning naming the file and
// the task; the agent runs (it heartbeats, so the node stays up) and
// resumes the intact record at once; the managers' set then brings the
// dropped task back onto its running container and removes the one no
// longer wanted.
func TestGarbledRecordsAreDroppedAndRebuilt(t *testing.T) {
	h := newHarness(t, 1)
	logs := h.captureLogs()
	runThree(t, h)
	putRaw(t, h.dir, "keep1", keyTask, []byte("\x0a\xff\xff\xffnot a task"))
	putRaw(t, h.dir, "gone", keyStatus, []byte{0xff, 0xff, 0xff})

	hold := make(chan struct{})
	h.mgrs[0].set(func(m *fakeManager) { m.hold = hold })
	beats := h.mgrs[0].heartbeatCount()
	h.start()
	h.waitFor("the intact record resumed at once", func() bool { return h.exec.count("wait", "keep2") == 2 })
	h.waitFor("heartbeats", func() bool { return h.mgrs[0].heartbeatCount() >= beats+2 })
	path := filepath.Join(h.dir, taskDBFile)
	for _, want := range []string{
		`msg="dropped a task db record that does not decode; the task comes back from the managers' assignments and containerd's containers" file=` + path + ` task=keep1 value=task`,
		`task=gone value=status`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs)
		}
	}
	if !h.exec.running("keep1") || !h.exec.running("gone") {
		t.Fatal("a container was touched before the managers' complete set")
	}
	close(hold)
	checkSettled(t, h, logs)
}

// TestDamagedTaskDBFileIsMovedAsideAndRebuilt: a file that is not a bbolt
// file at all is moved aside (and the log says where), and a missing file
// (what the printed recovery asks for) is simply rebuilt: in both cases
// the agent runs and the managers' set with containerd's containers
// settles the tasks, without a duplicate or a leftover.
func TestDamagedTaskDBFileIsMovedAsideAndRebuilt(t *testing.T) {
	garbage := bytes.Repeat([]byte("garbage!"), 1024)
	for _, tc := range []struct {
		name   string
		damage func(path string) error
	}{
		{"garbage", func(path string) error { return os.WriteFile(path, garbage, 0o600) }},
		{"removed", os.Remove},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, 1)
			logs := h.captureLogs()
			runThree(t, h)
			path := filepath.Join(h.dir, taskDBFile)
			if err := tc.damage(path); err != nil {
				t.Fatal(err)
			}
			beats := h.mgrs[0].heartbeatCount()
			h.start()
			h.waitFor("heartbeats", func() bool { return h.mgrs[0].heartbeatCount() >= beats+2 })
			aside, _ := filepath.Glob(path + ".damaged-*")
			if tc.name == "garbage" {
				if len(aside) != 1 {
					t.Fatalf("moved-aside files %v, want one", aside)
				}
				if b, err := os.ReadFile(aside[0]); err != nil || !bytes.Equal(b, garbage) {
					t.Errorf("the moved-aside file does not hold the damaged bytes: %v", err)
				}
				want := `msg="the task db is damaged: moved it aside and started a new one; the node rebuilds its task list from the containers containerd runs and the managers' assignments, re-attaching to the running containers the managers still want and removing the others once a manager answers. The moved file is kept only for diagnosis and may be deleted" file=` +
					path + ` damage="meta page 0:`
				if !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), "moved_to="+aside[0]) {
					t.Errorf("the log does not say %q and where:\n%s", want, logs)
				}
			} else if len(aside) != 0 {
				t.Errorf("moved-aside files %v for a missing db", aside)
			}
			checkSettled(t, h, logs)
		})
	}
}

// TestTaskDBThatCannotBeMovedAsideSaysHowToRecover: if the damaged file
// cannot be moved, opening fails with an error naming the file and the
// recovery; following it (removing the file) opens an empty db.
func TestTaskDBThatCannotBeMovedAsideSaysHowToRecover(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, taskDBFile)
	if err := os.WriteFile(path, []byte("not a bbolt file"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := openTaskDB(dir, taskDBOptions{rename: func(string, string) error { return errors.New("read-only file system") }})
	var damaged *DamagedDBError
	if !errors.As(err, &damaged) || damaged.Path != path {
		t.Fatalf("openTaskDB: %v", err)
	}
	for _, want := range []string{
		"the task db " + path + " is damaged (file is truncated to 16 bytes) and could not be moved aside (read-only file system)",
		"To recover, remove it (rm " + path + ") and restart shoald: the node rebuilds its task list",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	db, load, err := openTaskDB(dir, taskDBOptions{})
	if err != nil {
		t.Fatalf("after following the recovery: %v", err)
	}
	defer db.close()
	if len(load.tasks) != 0 || len(load.dropped) != 0 || load.movedAside != "" || !load.created {
		t.Errorf("fresh db: %+v", load)
	}
}

// TestNewerLayoutIsMovedAside: a db of a layout this shoald does not know
// is not misread: it is moved aside too, saying why.
func TestNewerLayoutIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	db, _, err := openTaskDB(dir, taskDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyVersion, []byte("7")) }); err != nil {
		t.Fatal(err)
	}
	db.close()
	db, load, err := openTaskDB(dir, taskDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	db.close()
	if load.movedAside == "" || !strings.Contains(load.damage, `layout version "7", this shoald reads versions 1 and 2`) {
		t.Errorf("load: moved to %q, damage %q", load.movedAside, load.damage)
	}
}
