package worker

import (
	"os"
	"path/filepath"
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

// FuzzOpenTaskDB: the task db is read back from disk at every start; a file
// with arbitrary bytes must never crash the agent: damaged records are
// dropped, a damaged file is moved aside, and the db opens.
func FuzzOpenTaskDB(f *testing.F) {
	dir := f.TempDir()
	db, _, err := openTaskDB(dir, taskDBOptions{})
	if err != nil {
		f.Fatal(err)
	}
	_ = db.putTasks([]storedTask{{task: &api.Task{Id: "t1", ServiceId: "s"}, status: &api.TaskStatus{State: api.TaskState_RUNNING}}})
	_ = db.close()
	seed, err := os.ReadFile(filepath.Join(dir, "tasks.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed, uint16(5000), byte(0x41))
	f.Add(seed, uint16(20), byte(0xff))
	f.Fuzz(func(t *testing.T, file []byte, at uint16, flip byte) {
		if len(file) > 1<<20 {
			return
		}
		b := append([]byte(nil), file...)
		if int(at) < len(b) {
			b[at] ^= flip
		}
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, "tasks.db"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		db, _, err := openTaskDB(d, taskDBOptions{})
		if err != nil {
			t.Fatalf("a damaged task db was not recovered: %v", err)
		}
		_ = db.close()
	})
}
