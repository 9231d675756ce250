package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// AnonymousLabel marks a volume made without a name, as Docker's does:
// `volume prune` without --all removes only these.
const AnonymousLabel = "com.docker.volume.anonymous"

// volumeMetaFile sits next to a named volume's _data: what Docker's
// volume metadata keeps (creation time, labels, driver options).
const volumeMetaFile = "volume.json"

// volumeMeta is the content of volumes/<name>/volume.json.
type volumeMeta struct {
	CreatedAt time.Time         `json:"created_at"`
	Labels    map[string]string `json:"labels,omitempty"`
	Options   map[string]string `json:"options,omitempty"`
}

// volumeUsers maps a volume's _data directory to the IDs of the containers
// that mount it.
type volumeUsers func(ctx context.Context) (map[string][]string, error)

// volumeStore keeps the node's named local volumes under root
// (<DataDir>/volumes/<name>/_data). mu orders removals against task
// starts: a Prepare holds it shared from the moment it makes a volume's
// directory until its container (which names the directory in its spec)
// exists; Remove, Prune and Create hold it exclusively while they check
// which containers use a volume and delete it. So a removal either sees
// the new container and refuses, or completes before the directory is
// made again (an empty volume, as Docker makes one for a missing name).
type volumeStore struct {
	root  string
	users volumeUsers
	mu    sync.RWMutex
}

func newVolumeStore(root string, users volumeUsers) *volumeStore {
	return &volumeStore{root: root, users: users}
}

func (s *volumeStore) dataDir(name string) string { return filepath.Join(s.root, name, "_data") }

// errNoSuchVolume words a missing volume as dockerd does ("get X: no such
// volume"); clients print Docker's "Error: No such volume: X" from the
// NotFound class.
func errNoSuchVolume(op, name string) error {
	return errdefs.Newf(errdefs.ErrNotFound, "%s %s: no such volume", op, name)
}

func checkVolumeName(name string) error {
	if !volumeName.MatchString(name) {
		return errdefs.Newf(errdefs.ErrInvalidArgument, "create %s: %q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed", name, name)
	}
	return nil
}

// beginUse is called by a task's Prepare before it makes its volume
// directories; the returned func after its container exists (or Prepare
// failed).
func (s *volumeStore) beginUse() func() {
	s.mu.RLock()
	return s.mu.RUnlock
}

// record writes the metadata of the named volumes among dirs that have
// none yet (a volume a service mount just made). The caller holds beginUse.
func (s *volumeStore) record(dirs []string) {
	for _, d := range dirs {
		if filepath.Base(d) != "_data" || filepath.Dir(filepath.Dir(d)) != s.root {
			continue // an anonymous volume of the task
		}
		meta := filepath.Join(filepath.Dir(d), volumeMetaFile)
		if _, err := os.Stat(meta); err == nil {
			continue
		}
		_ = writeVolumeMeta(meta, volumeMeta{CreatedAt: time.Now().UTC()})
	}
}

func writeVolumeMeta(path string, m volumeMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	// A temporary file of its own: two tasks that make the same volume
	// at once may both write.
	f, err := os.CreateTemp(filepath.Dir(path), "."+volumeMetaFile+"-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// load reads volume name; users may be nil (UsedBy left empty).
func (s *volumeStore) load(name string, users map[string][]string) (*api.Volume, error) {
	dir := filepath.Join(s.root, name)
	data := s.dataDir(name)
	st, err := os.Stat(data)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errNoSuchVolume("get", name)
		}
		return nil, err
	}
	var m volumeMeta
	if b, err := os.ReadFile(filepath.Join(dir, volumeMetaFile)); err == nil {
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("volume %s: %s: %w (remove the file to reset its labels)", name, filepath.Join(dir, volumeMetaFile), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = st.ModTime()
	}
	v := &api.Volume{
		Name: name, Driver: "local", Scope: "local", Mountpoint: data,
		CreatedAt: timestamppb.New(m.CreatedAt),
		Labels:    m.Labels, Options: m.Options,
		UsedBy: users[data],
	}
	_, v.Anonymous = m.Labels[AnonymousLabel]
	return v, nil
}

// names lists the volumes on disk, sorted.
func (s *volumeStore) names() ([]string, error) {
	ents, err := os.ReadDir(s.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && volumeName.MatchString(e.Name()) {
			if _, err := os.Stat(s.dataDir(e.Name())); err == nil {
				out = append(out, e.Name())
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// List returns every volume with the containers that use it.
func (s *volumeStore) List(ctx context.Context) ([]*api.Volume, error) {
	users, err := s.users(ctx)
	if err != nil {
		return nil, err
	}
	names, err := s.names()
	if err != nil {
		return nil, err
	}
	out := make([]*api.Volume, 0, len(names))
	for _, n := range names {
		v, err := s.load(n, users)
		if errdefs.IsNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Get returns one volume.
func (s *volumeStore) Get(ctx context.Context, name string) (*api.Volume, error) {
	if !volumeName.MatchString(name) {
		return nil, errNoSuchVolume("get", name)
	}
	users, err := s.users(ctx)
	if err != nil {
		return nil, err
	}
	return s.load(name, users)
}

// Create makes a volume; an empty name makes an anonymous one. Creating a
// volume that exists returns it unchanged, as Docker does.
func (s *volumeStore) Create(ctx context.Context, name string, labels, options map[string]string) (*api.Volume, error) {
	if len(options) > 0 {
		keys := make([]string, 0, len(options))
		for k := range options {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, errdefs.Newf(errdefs.ErrInvalidArgument, "create %s: invalid option key: %q: shoal's local volumes are plain directories under the node's data dir and take no driver options (type, device, o); create the volume without --opt", name, keys[0])
	}
	if name == "" {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		name = hex.EncodeToString(b[:])
		l := make(map[string]string, len(labels)+1)
		for k, v := range labels {
			l[k] = v
		}
		l[AnonymousLabel] = ""
		labels = l
	} else if err := checkVolumeName(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	meta := filepath.Join(s.root, name, volumeMetaFile)
	if _, err := os.Stat(s.dataDir(name)); err != nil {
		if err := os.MkdirAll(s.dataDir(name), 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
		if err := writeVolumeMeta(meta, volumeMeta{CreatedAt: time.Now().UTC(), Labels: labels}); err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
	} else if _, err := os.Stat(meta); errors.Is(err, fs.ErrNotExist) {
		// Made by a service mount, which records no labels: keep the
		// labels given now, as Docker's first creator's.
		if err := writeVolumeMeta(meta, volumeMeta{CreatedAt: time.Now().UTC(), Labels: labels}); err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
	}
	users, err := s.users(ctx)
	if err != nil {
		return nil, err
	}
	return s.load(name, users)
}

// errInUse is dockerd's wording: "remove NAME: volume is in use - [IDs]".
func errInUse(name string, ids []string) error {
	return errdefs.Newf(errdefs.ErrFailedPrecondition, "remove %s: volume is in use - [%s]", name, strings.Join(ids, ", "))
}

// Remove deletes a volume no container uses; force ignores a missing one.
func (s *volumeStore) Remove(ctx context.Context, name string, force bool) error {
	if !volumeName.MatchString(name) {
		if force {
			return nil
		}
		return errNoSuchVolume("remove", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := os.Stat(s.dataDir(name)); errors.Is(err, fs.ErrNotExist) {
		if force {
			return nil
		}
		return errNoSuchVolume("remove", name)
	}
	users, err := s.users(ctx)
	if err != nil {
		return err
	}
	if ids := users[s.dataDir(name)]; len(ids) > 0 {
		return errInUse(name, ids)
	}
	return s.delete(name)
}

// delete removes the volume's directory: _data first, so a crash halfway
// leaves no volume (names skips a directory without _data) rather than a
// half-emptied one.
func (s *volumeStore) delete(name string) error {
	dir := filepath.Join(s.root, name)
	gone := filepath.Join(s.root, "."+name+".removing")
	if err := os.Rename(dir, gone); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// Prune removes the volumes no container uses for which keep says so
// (nil: all of them), and returns their names and the bytes they held.
func (s *volumeStore) Prune(ctx context.Context, match func(*api.Volume) bool) ([]string, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	users, err := s.users(ctx)
	if err != nil {
		return nil, 0, err
	}
	names, err := s.names()
	if err != nil {
		return nil, 0, err
	}
	var deleted []string
	var space uint64
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return deleted, space, err
		}
		v, err := s.load(n, users)
		if err != nil {
			return deleted, space, err
		}
		if len(v.GetUsedBy()) > 0 || (match != nil && !match(v)) {
			continue
		}
		size := dirSize(v.GetMountpoint())
		if err := s.delete(n); err != nil {
			return deleted, space, err
		}
		deleted = append(deleted, n)
		space += size
	}
	return deleted, space, nil
}

// dirSize adds up the sizes of the regular files under dir.
func dirSize(dir string) uint64 {
	var n uint64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += uint64(info.Size())
			}
		}
		return nil
	})
	return n
}
