package worker

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

var (
	testKey  = bytes.Repeat([]byte{0x42}, 32)
	otherKey = bytes.Repeat([]byte{0x17}, 32)
)

// markedTask is a task whose spec carries marker bytes in a label, the
// environment and the service annotations, as user data does.
func markedTask(id, marker string) *api.Task {
	t := task(id, api.TaskState_RUNNING)
	t.Spec = &api.TaskSpec{Container: &api.ContainerSpec{
		Image:  "img:1",
		Env:    []string{"SECRET_ENV=" + marker},
		Labels: map[string]string{"label": marker},
	}}
	t.ServiceAnnotations = &api.Annotations{Name: "svc", Labels: map[string]string{"svc-label": marker}}
	return t
}

func fileHas(t *testing.T, path, marker string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte(marker))
}

func dbVersion(t *testing.T, dir string) string {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, taskDBFile), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	_ = db.View(func(tx *bolt.Tx) error { v = string(tx.Bucket(bucketMeta).Get(keyVersion)); return nil })
	return v
}

// TestTaskDBKeySealsEveryRecord: with a key, no byte of a task's spec
// reaches the file; the records open with the key and only with it (a db
// read without the key, or with another, drops them and says why).
func TestTaskDBKeySealsEveryRecord(t *testing.T) {
	const marker = "MARKER-7f3a9c1e-not-on-disk"
	h := newHarness(t, 1)
	h.tweak = func(c *Config) { c.TaskDBKey = testKey }
	h.start()
	h.cluster.assign(markedTask("t1", marker))
	h.waitRunning("t1")
	h.stop()
	path := filepath.Join(h.dir, taskDBFile)
	if fileHas(t, path, marker) {
		t.Fatal("the marker is in the task db in plaintext")
	}
	if v := dbVersion(t, h.dir); v != "2" {
		t.Errorf("layout version %q, want 2", v)
	}

	ids, load := storedIDs(t, h.dir, testKey)
	if !slices.Equal(ids, []string{"t1"}) || load.tasks[0].task.GetSpec().GetContainer().GetEnv()[0] != "SECRET_ENV="+marker ||
		load.tasks[0].status.GetState() != api.TaskState_RUNNING {
		t.Fatalf("read back with the key: %v %v", ids, load.tasks)
	}
	for _, tc := range []struct {
		key  []byte
		want string
	}{
		{nil, errSealedNoKey.Error()},
		{otherKey, errSealedBadKey.Error()},
	} {
		dir := t.TempDir()
		copyFile(t, path, filepath.Join(dir, taskDBFile))
		ids, load := storedIDs(t, dir, tc.key)
		if len(ids) != 0 || len(load.dropped) != 1 || load.dropped[0].ID != "t1" || load.dropped[0].Detail != tc.want {
			t.Errorf("key %x: tasks %v, dropped %+v; want t1 dropped: %s", tc.key, ids, load.dropped, tc.want)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPlaintextTaskDBIsSealedWhenAKeyIsSet: a db written without a key is
// read with one (the tasks resume, nothing restarts), its records are
// sealed, and the file no longer holds the plaintext anywhere, not even
// in free pages.
func TestPlaintextTaskDBIsSealedWhenAKeyIsSet(t *testing.T) {
	const marker = "MARKER-b81d44e0-plaintext-before"
	h := newHarness(t, 1)
	logs := h.captureLogs()
	h.start()
	h.cluster.assign(markedTask("t1", marker))
	h.waitState("t1", api.TaskState_RUNNING)
	h.stop()
	path := filepath.Join(h.dir, taskDBFile)
	if !fileHas(t, path, marker) || dbVersion(t, h.dir) != "1" {
		t.Fatal("without a key the task db should be plaintext layout 1 (the test's premise)")
	}

	withLogs := h.tweak
	h.tweak = func(c *Config) { withLogs(c); c.TaskDBKey = testKey }
	h.start()
	h.waitFor("t1 resumed", func() bool { return h.exec.count("wait", "t1") == 2 })
	h.exec.exit("t1", 0)
	h.waitState("t1", api.TaskState_COMPLETE)
	h.stop()
	if n := h.exec.count("run", "t1"); n != 1 {
		t.Errorf("the process was started %d times", n)
	}
	if !strings.Contains(logs.String(), "sealed the task db's plaintext records with the task db key") {
		t.Errorf("the log does not tell of the sealing:\n%s", logs)
	}
	if fileHas(t, path, marker) {
		t.Fatal("the plaintext is still in the file")
	}
	if dbVersion(t, h.dir) != "2" {
		t.Error("the sealed db is not layout 2")
	}
	ids, load := storedIDs(t, h.dir, testKey)
	if !slices.Equal(ids, []string{"t1"}) || load.tasks[0].status.GetState() != api.TaskState_COMPLETE || load.sealed != 0 {
		t.Errorf("read back: %v, %+v", ids, load)
	}
}

// TestSealedValueIsBoundToItsRecord: a sealed value copied into another
// task's record does not open there.
func TestSealedValueIsBoundToItsRecord(t *testing.T) {
	dir := t.TempDir()
	db, _, err := openTaskDB(dir, taskDBOptions{key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t1", "t2"} {
		if err := db.putTasks([]storedTask{{task: &api.Task{Id: id}, status: &api.TaskStatus{State: api.TaskState_RUNNING}}}); err != nil {
			t.Fatal(err)
		}
	}
	var t1Status []byte
	_ = db.db.View(func(tx *bolt.Tx) error {
		t1Status = bytes.Clone(tx.Bucket(bucketTasks).Bucket([]byte("t1")).Get(keyStatus))
		return nil
	})
	db.close()
	putRaw(t, dir, "t2", keyStatus, t1Status)
	ids, load := storedIDs(t, dir, testKey)
	if !slices.Equal(ids, []string{"t1"}) || len(load.dropped) != 1 || load.dropped[0].ID != "t2" || load.dropped[0].Detail != errSealedMisfile.Error() {
		t.Errorf("tasks %v, dropped %+v", ids, load.dropped)
	}
}

func TestSealerRoundTrip(t *testing.T) {
	in := &api.TaskStatus{State: api.TaskState_FAILED, Err: "boom"}
	for _, key := range [][]byte{nil, testKey} {
		raw, err := sealer{key: key}.seal("t1", keyStatus, in)
		if err != nil {
			t.Fatal(err)
		}
		if key != nil && (!bytes.HasPrefix(raw, sealedPrefix) || bytes.Contains(raw, []byte("boom"))) {
			t.Errorf("sealed value %q", raw)
		}
		out := &api.TaskStatus{}
		plain, err := sealer{key: key}.open("t1", keyStatus, raw, out)
		if err != nil || plain != (key == nil) || !proto.Equal(in, out) {
			t.Errorf("key %v: open = %v, %v, %v", key != nil, out, plain, err)
		}
		// A plaintext value opens with a key too (read before sealing).
		if key == nil {
			if plain, err := (sealer{key: testKey}).open("t1", keyStatus, raw, out); err != nil || !plain {
				t.Errorf("plaintext with a key: %v %v", plain, err)
			}
		}
	}
}

func TestTaskDBKeySizeIsChecked(t *testing.T) {
	c := Config{NodeID: "n", Managers: []string{"m:1"}, Dial: (&harness{}).dial, Executor: newFakeExec(), DataDir: "/x", TaskDBKey: make([]byte, 16)}
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "TaskDBKey has 16 bytes, want 32 (or none)") {
		t.Errorf("validate: %v", err)
	}
	c.TaskDBKey = make([]byte, 32)
	if err := c.validate(); err != nil {
		t.Errorf("validate: %v", err)
	}
}

// TestSealingLeavesNoPlaintextInFreePages: sealing rewrites values, which
// leaves the old pages free but not erased; the file is compacted so that
// none of them remain.
func TestSealingLeavesNoPlaintextInFreePages(t *testing.T) {
	const marker = "MARKER-0c5e2b7d-free-page"
	dir := t.TempDir()
	db, _, err := openTaskDB(dir, taskDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var recs []storedTask
	for i := range 50 {
		recs = append(recs, storedTask{task: markedTask("t"+strings.Repeat("x", i), marker), status: &api.TaskStatus{State: api.TaskState_RUNNING}})
	}
	if err := db.putTasks(recs); err != nil {
		t.Fatal(err)
	}
	db.close()
	db, load, err := openTaskDB(dir, taskDBOptions{key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	db.close()
	if load.sealed != 50 || len(load.tasks) != 50 {
		t.Fatalf("sealed %d of %d", load.sealed, len(load.tasks))
	}
	if fileHas(t, filepath.Join(dir, taskDBFile), marker) {
		t.Fatal("plaintext left in the file after sealing")
	}
	if _, err := os.Stat(filepath.Join(dir, taskDBFile+".compact")); !os.IsNotExist(err) {
		t.Errorf("the compaction's temporary file is left: %v", err)
	}
}
