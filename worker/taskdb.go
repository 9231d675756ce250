package worker

import (
	"errors"
	"fmt"
	"io/fs"
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
	taskDBFile = "tasks.db"
	// Layout 1: values are plain protobuf. Layout 2: values may be sealed
	// (taskdb_seal.go); a db becomes 2 when a key first seals a value, so
	// an older shoald refuses it by its version instead of misreading it.
	taskDBVersionPlain  = 1
	taskDBVersionSealed = 2
)

var (
	bucketMeta  = []byte("meta")
	keyVersion  = []byte("version")
	bucketTasks = []byte("tasks")
	keyTask     = []byte("task")
	keyStatus   = []byte("status")
)

// recoveryHint is what an operator is told when the agent cannot rebuild
// the task db by itself. Following it is exactly what the agent does when
// it can: the db only caches what the managers and containerd know.
const recoveryHint = "the node rebuilds its task list from the containers containerd runs and the managers' assignments, re-attaching to the running containers the managers still want and removing the others"

// DamagedDBError reports a task db that is damaged and could not be moved
// aside (so the agent cannot rebuild it by itself). Its message names the
// file and the way to recover.
type DamagedDBError struct {
	Path   string
	Detail string
	// MoveErr is why the file could not be moved aside; nil while the
	// damage is only being reported inside openTaskDB.
	MoveErr error
}

func (e *DamagedDBError) Error() string {
	if e.MoveErr == nil {
		return fmt.Sprintf("the task db %s is damaged (%s)", e.Path, e.Detail)
	}
	return fmt.Sprintf("the task db %s is damaged (%s) and could not be moved aside (%v). To recover, remove it (rm %s) and restart shoald: %s",
		e.Path, e.Detail, e.MoveErr, e.Path, recoveryHint)
}

// taskDB is the node's record of its assigned tasks and their last status,
// so that a restarted agent resumes its containers before any manager
// answers. It is safe for concurrent use (bbolt serializes writers).
type taskDB struct {
	path string
	db   *bolt.DB
	seal sealer
}

// storedTask is one record of the db.
type storedTask struct {
	task   *api.Task
	status *api.TaskStatus
}

// droppedRecord is a record that did not decode and was deleted.
type droppedRecord struct {
	ID     string // the bucket's key: the task ID, as far as it can be read
	Value  string // "task" or "status"
	Detail string
}

// taskDBLoad is what opening the db found.
type taskDBLoad struct {
	tasks []storedTask
	// dropped are the records that did not decode; they were deleted.
	dropped []droppedRecord
	// movedAside is where a damaged file was moved ("" if it was not), and
	// damage what was wrong with it.
	movedAside, damage string
	// sealed counts the plaintext records sealed because a key is set.
	sealed int
	// created tells that there was no file: a new node, or one whose db
	// was removed (the printed recovery).
	created bool
}

// rebuilding tells whether the db lost records (or had none), so the
// agent relies on the managers' next complete set and containerd.
func (l *taskDBLoad) rebuilding() bool { return len(l.dropped) > 0 || l.movedAside != "" || l.created }

// taskDBOptions are openTaskDB's knobs; the zero value is the daemon's.
type taskDBOptions struct {
	key []byte // nil: plaintext values
	now func() time.Time
	// rename moves the damaged file aside; nil is os.Rename (tests break it).
	rename func(from, to string) error
}

// openTaskDB opens (or creates) <dir>/tasks.db and loads every record.
//
// A record that does not decode is deleted and listed in the result's
// dropped. A file beyond use (not a bbolt file, damaged pages, an unknown
// layout version) is moved aside to tasks.db.damaged-<time> and a new one
// is created; only if it cannot be moved does openTaskDB fail, with a
// *DamagedDBError that says how to recover. In both cases the agent
// rebuilds what was lost from the managers' assignments and the containers
// containerd runs. Other errors (a data dir that cannot be written, a file
// held by another shoald) are returned as they are.
func openTaskDB(dir string, o taskDBOptions) (*taskDB, *taskDBLoad, error) {
	if o.now == nil {
		o.now = time.Now
	}
	if o.rename == nil {
		o.rename = os.Rename
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, taskDBFile)
	d, load, err := openTaskDBFile(path, sealer{key: o.key})
	var damaged *DamagedDBError
	if !errors.As(err, &damaged) {
		return d, load, err
	}
	aside := asideName(path, o.now())
	if err := o.rename(path, aside); err != nil {
		damaged.MoveErr = err
		return nil, nil, damaged
	}
	syncDir(dir)
	d, load, err = openTaskDBFile(path, sealer{key: o.key})
	if err != nil {
		return nil, nil, fmt.Errorf("a new task db in place of the damaged one (moved to %s): %w", aside, err)
	}
	load.movedAside, load.damage = aside, damaged.Detail
	return d, load, nil
}

// asideName is a free name for a damaged file: tasks.db.damaged-<UTC time>,
// with a counter if a file of that second is there already.
func asideName(path string, now time.Time) string {
	base := path + ".damaged-" + now.UTC().Format("20060102T150405Z")
	name := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			return name
		}
		name = base + "-" + strconv.Itoa(i)
	}
}

// syncDir makes a rename in dir durable; failures only cost durability.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		_ = f.Close()
	}
}

// openTaskDBFile opens path after checking its structure, drops records
// that do not decode and, with a key, seals the plaintext ones. Damage of
// the file itself is a *DamagedDBError (without MoveErr).
func openTaskDBFile(path string, s sealer) (*taskDB, *taskDBLoad, error) {
	if err := boltcheck.Check(path); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, nil, fmt.Errorf("task db: %w", err) // cannot read it at all: not damage
		}
		return nil, nil, &DamagedDBError{Path: path, Detail: err.Error()}
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, fs.ErrNotExist)
	d := &taskDB{path: path, seal: s}
	var load *taskDBLoad
	err := guardFault(path, func() error {
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
		var pe *fs.PathError
		switch {
		case errors.Is(err, bolterrors.ErrTimeout):
			return fmt.Errorf("open %s: another process holds it (is another shoald running with this data dir?)", path)
		case errors.As(err, &pe):
			return fmt.Errorf("task db: %w", err)
		case err != nil:
			return &DamagedDBError{Path: path, Detail: err.Error()}
		}
		d.db = db
		if err := db.Update(func(tx *bolt.Tx) error { return initTaskDB(tx, s.key != nil) }); err != nil {
			return &DamagedDBError{Path: path, Detail: err.Error()}
		}
		var plain []string
		load, plain, err = d.load()
		if err != nil {
			return &DamagedDBError{Path: path, Detail: err.Error()}
		}
		load.created = created
		if err := d.deleteRecords(load.dropped); err != nil {
			return fmt.Errorf("delete the records of %s that do not decode: %w", path, err)
		}
		if len(plain) > 0 && s.key != nil {
			if err := d.sealPlain(plain); err != nil {
				return fmt.Errorf("seal the plaintext records of %s: %w", path, err)
			}
			load.sealed = len(plain)
		}
		return nil
	})
	if err != nil {
		if d.db != nil {
			_ = d.db.Close()
		}
		return nil, nil, err
	}
	return d, load, nil
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

func initTaskDB(tx *bolt.Tx, sealing bool) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if _, err := tx.CreateBucketIfNotExists(bucketTasks); err != nil {
		return err
	}
	want := taskDBVersionPlain
	if sealing {
		want = taskDBVersionSealed
	}
	v := meta.Get(keyVersion)
	if v == nil {
		return meta.Put(keyVersion, []byte(strconv.Itoa(want)))
	}
	// A newer layout is refused rather than misread.
	n, err := strconv.Atoi(string(v))
	if err != nil || n < taskDBVersionPlain || n > taskDBVersionSealed {
		return fmt.Errorf("layout version %q, this shoald reads versions %d and %d (was it written by a newer shoald?)",
			v, taskDBVersionPlain, taskDBVersionSealed)
	}
	if n < want {
		return meta.Put(keyVersion, []byte(strconv.Itoa(want)))
	}
	return nil
}

// load reads every record. Records that do not decode are returned as
// dropped (the caller deletes them); plain lists the tasks with a value
// stored unsealed.
func (d *taskDB) load() (*taskDBLoad, []string, error) {
	load := &taskDBLoad{}
	var plain []string
	err := d.db.View(func(tx *bolt.Tx) error {
		tasks := tx.Bucket(bucketTasks)
		return tasks.ForEachBucket(func(k []byte) error {
			id := string(k)
			b := tasks.Bucket(k)
			raw := b.Get(keyTask)
			if raw == nil {
				return nil // a status written after its task was deleted
			}
			drop := func(value, detail string) {
				load.dropped = append(load.dropped, droppedRecord{ID: id, Value: value, Detail: detail})
			}
			st := storedTask{task: &api.Task{}, status: &api.TaskStatus{}}
			wasPlain, err := d.seal.open(id, keyTask, raw, st.task)
			switch {
			case err != nil:
				drop("task", err.Error())
				return nil
			case st.task.GetId() != id:
				drop("task", fmt.Sprintf("it holds task %q", st.task.GetId()))
				return nil
			}
			if raw := b.Get(keyStatus); raw != nil {
				p, err := d.seal.open(id, keyStatus, raw, st.status)
				if err != nil {
					drop("status", err.Error())
					return nil
				}
				wasPlain = wasPlain || p
			} else if st.task.GetStatus() != nil {
				st.status = proto.Clone(st.task.GetStatus()).(*api.TaskStatus)
			}
			if wasPlain {
				plain = append(plain, id)
			}
			load.tasks = append(load.tasks, st)
			return nil
		})
	})
	return load, plain, err
}

// deleteRecords deletes the tasks of dropped records.
func (d *taskDB) deleteRecords(dropped []droppedRecord) error {
	if len(dropped) == 0 {
		return nil
	}
	return d.db.Update(func(tx *bolt.Tx) error {
		for _, r := range dropped {
			err := tx.Bucket(bucketTasks).DeleteBucket([]byte(r.ID))
			if err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return err
			}
		}
		return nil
	})
}

// sealPlain seals the values of the given tasks (read back as they are),
// then compacts the file into a new one, so that the pages that held the
// plaintext are gone from the disk, not merely free.
func (d *taskDB) sealPlain(ids []string) error {
	err := d.db.Update(func(tx *bolt.Tx) error {
		for _, id := range ids {
			b := tx.Bucket(bucketTasks).Bucket([]byte(id))
			for _, name := range [][]byte{keyTask, keyStatus} {
				raw := b.Get(name)
				if raw == nil {
					continue
				}
				var m proto.Message = &api.Task{}
				if string(name) == string(keyStatus) {
					m = &api.TaskStatus{}
				}
				if _, err := (sealer{}).open(id, name, raw, m); err != nil {
					continue // sealed already
				}
				sealed, err := d.seal.seal(id, name, m)
				if err != nil {
					return err
				}
				if err := b.Put(name, sealed); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return d.compact()
}

// compact rewrites the db into <path>.compact and renames it over the
// file, then reopens it.
func (d *taskDB) compact() error {
	tmp := d.path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return err
	}
	if err := bolt.Compact(dst, d.db, 1<<20); err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return err
	}
	if err := dst.Close(); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := d.db.Close(); err != nil {
		return err
	}
	d.db = nil
	if err := os.Rename(tmp, d.path); err != nil {
		return err
	}
	syncDir(filepath.Dir(d.path))
	db, err := bolt.Open(d.path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return err
	}
	d.db = db
	return nil
}

// putTasks records assignments (spec and desired state) and, where given,
// their status, in one transaction.
func (d *taskDB) putTasks(recs []storedTask) error {
	if len(recs) == 0 {
		return nil
	}
	return d.db.Update(func(tx *bolt.Tx) error {
		for _, r := range recs {
			id := r.task.GetId()
			b, err := tx.Bucket(bucketTasks).CreateBucketIfNotExists([]byte(id))
			if err != nil {
				return err
			}
			if err := d.put(b, id, keyTask, r.task); err != nil {
				return err
			}
			if r.status != nil {
				if err := d.put(b, id, keyStatus, r.status); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (d *taskDB) put(b *bolt.Bucket, id string, name []byte, m proto.Message) error {
	raw, err := d.seal.seal(id, name, m)
	if err != nil {
		return err
	}
	return b.Put(name, raw)
}

// putStatus records a task's last status. A task no longer in the db (being
// removed) is not brought back.
func (d *taskDB) putStatus(id string, st *api.TaskStatus) error {
	raw, err := d.seal.seal(id, keyStatus, st)
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
