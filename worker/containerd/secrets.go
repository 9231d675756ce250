package containerd

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
)

// Secrets and configs reach a container as files of a tmpfs that the
// executor mounts per task on the host (tasks/<id>/secrets, mode 0700),
// fills, remounts read-only and bind-mounts read-only into the container:
//
//	run/<name>  secrets with a relative file name; run/ is mounted at /run/secrets
//	files/<n>   every other file (configs, secrets with an absolute target),
//	            each bind-mounted at its own target
//
// Secret bytes are never written anywhere else. Remove unmounts the tmpfs
// by path, so it works from a controller re-created after a restart.

const (
	secretsDirName = "secrets"
	// secretsTarget is where Docker puts secrets in a container.
	secretsTarget = "/run/secrets"
	// defaultFileMode of a secret or config file, as in Docker.
	defaultFileMode = 0o444
	// minDepsTmpfs is the smallest size of the tmpfs; it grows with the
	// data it holds.
	minDepsTmpfs = 1 << 20
)

const (
	kindSecret = "secret"
	kindConfig = "config"
)

// depFile is one secret or config file of a task.
type depFile struct {
	Kind   string // kindSecret or kindConfig
	ID     string
	Name   string // the secret's or config's name, for messages
	Rel    string // path inside the tmpfs
	Target string // path in the container
	Own    bool   // bind-mounted on its own; else through /run/secrets
	UID    int
	GID    int
	Mode   os.FileMode
}

func (c *Config) secretsDir(taskID string) string {
	return filepath.Join(c.taskDir(taskID), secretsDirName)
}

// planDeps lays out the secret and config files of a container spec, as
// Docker does: a secret's file name defaults to the secret's name and, when
// relative, lives in /run/secrets; a config's defaults to /<config name>
// and, when relative, is relative to /. taken holds the mount targets the
// spec already uses; planDeps adds its own. Its errors are spec faults.
func planDeps(cs *api.ContainerSpec, taken map[string]bool) ([]depFile, error) {
	var out []depFile
	add := func(f depFile, file *api.FileTarget) error {
		var err error
		if f.UID, err = parseID(file.GetUid()); err != nil {
			return fmt.Errorf("%s %s: uid: %w", f.Kind, f.Name, err)
		}
		if f.GID, err = parseID(file.GetGid()); err != nil {
			return fmt.Errorf("%s %s: gid: %w", f.Kind, f.Name, err)
		}
		f.Mode = os.FileMode(file.GetMode() & 0o777)
		if file.GetMode() == 0 {
			f.Mode = defaultFileMode
		}
		if !f.Own {
			f.Rel = path.Join("run", strings.TrimPrefix(f.Target, secretsTarget+"/"))
		} else {
			f.Rel = path.Join("files", strconv.Itoa(len(out)))
		}
		if f.Target == "/" || f.Target == secretsTarget || taken[f.Target] {
			return fmt.Errorf("%s %s: duplicate or invalid target %s", f.Kind, f.Name, f.Target)
		}
		for _, o := range out {
			// A file cannot sit below another one, in /run/secrets or not.
			if strings.HasPrefix(f.Target, o.Target+"/") || strings.HasPrefix(o.Target, f.Target+"/") {
				return fmt.Errorf("%s %s: target %s conflicts with %s", f.Kind, f.Name, f.Target, o.Target)
			}
		}
		taken[f.Target] = true
		out = append(out, f)
		return nil
	}
	for _, s := range cs.GetSecrets() {
		f := depFile{Kind: kindSecret, ID: s.GetSecretId(), Name: s.GetSecretName()}
		if f.ID == "" {
			return nil, fmt.Errorf("secret reference %q without an ID", f.Name)
		}
		name := s.GetFile().GetName()
		if name == "" {
			name = f.Name
		}
		target, err := targetPath(name, secretsTarget)
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", f.Name, err)
		}
		f.Target = target
		f.Own = !strings.HasPrefix(target, secretsTarget+"/")
		if err := add(f, s.GetFile()); err != nil {
			return nil, err
		}
	}
	for _, r := range cs.GetConfigs() {
		f := depFile{Kind: kindConfig, ID: r.GetConfigId(), Name: r.GetConfigName(), Own: true}
		if f.ID == "" {
			return nil, fmt.Errorf("config reference %q without an ID", f.Name)
		}
		name := r.GetFile().GetName()
		if name == "" {
			name = f.Name
		}
		target, err := targetPath(name, "/")
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", f.Name, err)
		}
		f.Target = target
		if err := add(f, r.GetFile()); err != nil {
			return nil, err
		}
	}
	// /run/secrets is one read-only mount: nothing else may sit on it or in it.
	for _, f := range out {
		if f.Own {
			continue
		}
		if taken[secretsTarget] {
			return nil, fmt.Errorf("duplicate mount point: %s (the task has secrets)", secretsTarget)
		}
		for _, o := range out {
			if o.Own && strings.HasPrefix(o.Target, secretsTarget+"/") {
				return nil, fmt.Errorf("%s %s: target %s is inside %s", o.Kind, o.Name, o.Target, secretsTarget)
			}
		}
		taken[secretsTarget] = true
		break
	}
	return out, nil
}

// targetPath resolves a file name against dir; ".." may not climb out.
func targetPath(name, dir string) (string, error) {
	if name == "" {
		return "", errors.New("no file name")
	}
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("invalid file name %q", name)
	}
	if path.IsAbs(name) {
		return path.Clean(name), nil
	}
	clean := path.Clean(name)
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("invalid file name %q", name)
	}
	return path.Join(dir, clean), nil
}

// parseID reads a numeric uid or gid; empty is 0 (root).
func parseID(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a numeric ID", s)
	}
	return int(n), nil
}

// depData collects the bytes of every file from deps. A secret or config
// not (yet) on the node is a transient error: it may arrive a moment later.
func depData(deps worker.Dependencies, files []depFile) ([][]byte, error) {
	data := make([][]byte, len(files))
	var errs []error
	for i, f := range files {
		var (
			b  []byte
			ok bool
		)
		if deps != nil {
			if f.Kind == kindSecret {
				var s *api.Secret
				if s, ok = deps.Secret(f.ID); ok {
					b = s.GetSpec().GetData()
				}
			} else {
				var c *api.Config
				if c, ok = deps.Config(f.ID); ok {
					b = c.GetSpec().GetData()
				}
			}
		}
		if !ok {
			errs = append(errs, fmt.Errorf("%s %s (%s) is not assigned to this node", f.Kind, f.Name, f.ID))
		}
		data[i] = b
	}
	return data, errors.Join(errs...)
}

// depMounts are the container's bind mounts of the task's files.
func depMounts(dir string, files []depFile) []specs.Mount {
	var out []specs.Mount
	run := false
	for _, f := range files {
		if !f.Own {
			run = true
			continue
		}
		out = append(out, specs.Mount{Destination: f.Target, Type: "bind", Source: filepath.Join(dir, f.Rel), Options: []string{"rbind", "rprivate", "ro"}})
	}
	if run {
		out = append([]specs.Mount{{Destination: secretsTarget, Type: "bind", Source: filepath.Join(dir, "run"), Options: []string{"rbind", "rprivate", "ro"}}}, out...)
	}
	return out
}

// setupDeps mounts a fresh tmpfs at dir, writes the files into it and
// remounts it read-only. Nothing is mounted when there are no files. Any
// earlier mount at dir (a replayed Prepare) is unmounted first.
func setupDeps(dir string, files []depFile, data [][]byte) (err error) {
	if len(files) == 0 {
		return nil
	}
	if err := teardownDeps(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	size := minDepsTmpfs
	for _, b := range data {
		size += len(b) + 4096
	}
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		return fmt.Errorf("mount tmpfs for secrets at %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			_ = teardownDeps(dir)
		}
	}()
	// Private: the mount propagates to no other mount namespace.
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", dir, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		// Never write secrets to a disk.
		return fmt.Errorf("%s is not a tmpfs after mounting one (%v)", dir, err)
	}
	for _, sub := range []string{"run", "files"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	for i, f := range files {
		p := filepath.Join(dir, f.Rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := writeDepFile(p, data[i], f); err != nil {
			return fmt.Errorf("%s %s: %w", f.Kind, f.Name, err)
		}
	}
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY|flags, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", dir, err)
	}
	return nil
}

func writeDepFile(p string, b []byte, f depFile) error {
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := os.Chown(p, f.UID, f.GID); err != nil {
		return err
	}
	return os.Chmod(p, f.Mode)
}

// teardownDeps unmounts whatever is mounted at dir (detaching it from
// containers that still use it), leaving an empty directory or none. It
// works by path alone, after a restart too.
func teardownDeps(dir string) error {
	for i := 0; i < 16; i++ {
		err := unix.Unmount(dir, unix.MNT_DETACH)
		switch {
		case err == nil:
			continue // stacked mounts: unmount until none is left
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not a mount point (any more), or no directory
		default:
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted", dir)
}

// restoreDeps refills the task's tmpfs when it is not mounted although the
// task has secrets or configs: a host reboot empties tmpfs but keeps the
// container. Start calls it before it creates the process.
func (c *controller) restoreDeps() error {
	files, err := planDeps(c.task.GetSpec().GetContainer(), map[string]bool{})
	if err != nil || len(files) == 0 {
		return err
	}
	dir := c.e.cfg.secretsDir(c.id)
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		return nil
	}
	data, err := depData(c.deps, files)
	if err != nil {
		return err
	}
	return setupDeps(dir, files, data)
}
