package worker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/internal/boltcheck"
	api "github.com/shoal-project/shoal/proto"
)

// The task db layout (see doc.go).
const (
	taskDBFile    = "tasks.db"
	taskDBVersion = 1
)

var (
	bucketMeta  = []byte("meta")
	keyVersion  = []byte("version")
	bucketTasks = []byte("tasks")
	keyTask     = []byte("task")
	keyStatus   = []byte("status")
)

// DamagedDBError reports a task db that cannot be trusted. Its message names
// the file and the way to recover: the db only caches what the managers
// know, so removing it loses nothing that a session does not bring back.
type DamagedDBError struct {
	Path   string
	Detail string
}

func (e *DamagedDBError) Error() string {
	return fmt.Sprintf("the task db %s is damaged (%s). To recover, remove %s; the node will receive its assignments again",
		e.Path, e.Detail, e.Path)
}

// taskDB is the node's record of its assigned tasks and their last status,
// so that a restarted agent resumes its containers before any manager
// answers. It is safe for concurrent use (bbolt serializes writers).
type taskDB struct {
	path string
	db   *bolt.DB
}

// storedTask is one record of the db.
type storedTask struct {
	task   *api.Task
	status *api.TaskStatus
}

// openTaskDB opens (or creates) <dir>/tasks.db after checking its structure,
// and loads every record. A damaged file yields a *DamagedDBError and is
// left untouched.
func openTaskDB(dir string) (*taskDB, []storedTask, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, taskDBFile)
	if err := boltcheck.Check(path); err != nil {
		return nil, nil, &DamagedDBError{Path: path, Detail: err.Error()}
	}
	d := &taskDB{path: path}
	var stored []storedTask
	err := guardFault(path, func() error {
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
		if errors.Is(err, bolterrors.ErrTimeout) {
			return fmt.Errorf("open %s: another process holds it (is another shoald running with this data dir?)", path)
		}
		if err != nil {
			return &DamagedDBError{Path: path, Detail: err.Error()}
		}
		d.db = db
		if err := db.Update(initTaskDB); err != nil {
			return &DamagedDBError{Path: path, Detail: err.Error()}
		}
		stored, err = d.load()
		return err
	})
	if err != nil {
		if d.db != nil {
			_ = d.db.Close()
		}
		return nil, nil, err
	}
	return d, stored, nil
}

// guardFault turns a panic or memory fault while reading the file (bbolt
// reads it through mmap) into a DamagedDBError.
func guardFault(path string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = &DamagedDBError{Path: path, Detail: fmt.Sprintf("reading it failed: %v", r)}
		}
	}()
	return fn()
}

func initTaskDB(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if _, err := tx.CreateBucketIfNotExists(bucketTasks); err != nil {
		return err
	}
	v := meta.Get(keyVersion)
	if v == nil {
		return meta.Put(keyVersion, []byte(strconv.Itoa(taskDBVersion)))
	}
	// A newer layout is refused rather than misread; there are no older
	// layouts yet, so no migrations.
	if n, err := strconv.Atoi(string(v)); err != nil || n != taskDBVersion {
		return fmt.Errorf("layout version %q, this shoald reads version %d", v, taskDBVersion)
	}
	return nil
}

func (d *taskDB) load() ([]storedTask, error) {
	var out []storedTask
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTasks).ForEachBucket(func(id []byte) error {
			b := tx.Bucket(bucketTasks).Bucket(id)
			raw := b.Get(keyTask)
			if raw == nil {
				return nil // a status written after its task was deleted
			}
			st := storedTask{task: &api.Task{}, status: &api.TaskStatus{}}
			if err := proto.Unmarshal(raw, st.task); err != nil || st.task.GetId() != string(id) {
				return &DamagedDBError{Path: d.path, Detail: fmt.Sprintf("task %q does not decode", id)}
			}
			if raw := b.Get(keyStatus); raw != nil {
				if err := proto.Unmarshal(raw, st.status); err != nil {
					return &DamagedDBError{Path: d.path, Detail: fmt.Sprintf("status of task %q does not decode", id)}
				}
			} else if st.task.GetStatus() != nil {
				st.status = proto.Clone(st.task.GetStatus()).(*api.TaskStatus)
			}
			out = append(out, st)
			return nil
		})
	})
	return out, err
}

// putTasks records assignments (spec and desired state) and, where given,
// their status, in one transaction.
func (d *taskDB) putTasks(recs []storedTask) error {
	if len(recs) == 0 {
		return nil
	}
	return d.db.Update(func(tx *bolt.Tx) error {
		for _, r := range recs {
			b, err := tx.Bucket(bucketTasks).CreateBucketIfNotExists([]byte(r.task.GetId()))
			if err != nil {
				return err
			}
			if err := putProto(b, keyTask, r.task); err != nil {
				return err
			}
			if r.status != nil {
				if err := putProto(b, keyStatus, r.status); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func putProto(b *bolt.Bucket, key []byte, m proto.Message) error {
	raw, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

// putStatus records a task's last status. A task no longer in the db (being
// removed) is not brought back.
func (d *taskDB) putStatus(id string, st *api.TaskStatus) error {
	raw, err := proto.Marshal(st)
	if err != nil {
		return err
	}
	return d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTasks).Bucket([]byte(id))
		if b == nil {
			return nil
		}
		return b.Put(keyStatus, raw)
	})
}

// delete forgets a task.
func (d *taskDB) delete(id string) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketTasks).DeleteBucket([]byte(id))
		if errors.Is(err, bolterrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

func (d *taskDB) close() error { return d.db.Close() }
