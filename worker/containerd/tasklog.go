package containerd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/logopt"
	"github.com/shoal-project/shoal/worker"
	"github.com/shoal-project/shoal/worker/containerd/logdriver"
)

// How a task's output is kept (taskLog.Kind).
const (
	// logRecords: the log driver writes records to rotated files.
	logRecords = "records"
	// logPlain: the shim writes a plain file (no Config.LogDriver).
	logPlain = "plain"
	// logNone: the output is discarded (log driver "none").
	logNone = "none"
)

// taskLogFile records, in the task's directory, where its output goes.
const taskLogFile = "log.json"

// ErrLogsDisabled is Logs' answer for a task whose log driver is none,
// in Docker's words.
var ErrLogsDisabled = errdefs.FailedPrecondition("configured logging driver does not support reading")

// taskLog is where a task's output goes. It is fixed when the task is
// prepared and kept in tasks/<taskID>/log.json, so a later change of the
// node's --log-dir or --log-opt applies to new tasks only, and Logs and
// Remove find the files wherever they were put.
type taskLog struct {
	Kind    string `json:"kind"`
	Path    string `json:"path,omitempty"`
	MaxSize int64  `json:"max_size,omitempty"`
	MaxFile int    `json:"max_file,omitempty"`
}

// resolveLog decides the task's log from its spec's log driver and the
// node's defaults. An invalid driver or option is an invalid spec.
func (c *controller) resolveLog() (taskLog, error) {
	d := c.task.GetSpec().GetLogDriver()
	discard, l, err := logopt.Resolve(d.GetName(), d.GetOptions(), logopt.Limits{MaxSize: c.e.cfg.LogMaxSize, MaxFile: c.e.cfg.LogMaxFile})
	switch {
	case err != nil:
		return taskLog{}, err
	case discard:
		return taskLog{Kind: logNone}, nil
	case c.e.cfg.LogDriver == "":
		return taskLog{Kind: logPlain, Path: c.e.cfg.logPath(c.id)}, nil
	}
	return taskLog{Kind: logRecords, Path: c.e.cfg.recordLogPath(c.id), MaxSize: l.MaxSize, MaxFile: l.MaxFile}, nil
}

func writeTaskLog(taskDir string, tl taskLog) error {
	b, err := json.Marshal(tl)
	if err != nil {
		return err
	}
	// Atomic: Logs may read log.json while the task is being prepared,
	// and a truncated file would read as damaged.
	return writeFileAtomic(filepath.Join(taskDir, taskLogFile), b, 0o644)
}

// taskLog reads where the task's output goes, and whether log.json said
// so. Without it (a task not prepared yet, or prepared before shoal
// recorded it), the task has the record file if there is one (not
// rotated), else the plain file.
func (c *controller) taskLog() (taskLog, bool, error) {
	b, err := os.ReadFile(filepath.Join(c.e.cfg.taskDir(c.id), taskLogFile))
	if err == nil {
		var tl taskLog
		if err := json.Unmarshal(b, &tl); err != nil || (tl.Kind != logNone && !filepath.IsAbs(tl.Path)) {
			return taskLog{}, false, fmt.Errorf("%s of task %s is damaged (%q); remove the task", taskLogFile, c.id, b)
		}
		return tl, true, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return taskLog{}, false, err
	}
	if _, err := os.Stat(c.e.cfg.recordLogPath(c.id)); err == nil {
		return taskLog{Kind: logRecords, Path: c.e.cfg.recordLogPath(c.id), MaxFile: 1}, false, nil
	}
	return taskLog{Kind: logPlain, Path: c.e.cfg.logPath(c.id)}, false, nil
}

// startLog is the log a process about to be created gets: the recorded
// one, or, for a task prepared before shoal recorded it, the one its spec
// asks for now (then recorded).
func (c *controller) startLog() (taskLog, error) {
	tl, found, err := c.taskLog()
	if err != nil || found {
		return tl, err
	}
	if tl, err = c.resolveLog(); err != nil {
		return taskLog{}, worker.Rejected(fmt.Errorf("invalid log driver: %w", err))
	}
	return tl, writeTaskLog(c.e.cfg.taskDir(c.id), tl)
}

// logIO is where the shim sends the process's output: to the log driver,
// which writes records to the task's rotated files; to the plain file
// when the node has no driver binary; or nowhere (/dev/null) for driver
// none.
func (c *controller) logIO(tl taskLog) cio.Creator {
	switch {
	case tl.Kind == logNone:
		return cio.NullIO
	case tl.Kind == logRecords && c.e.cfg.LogDriver != "":
		return cio.BinaryIO(c.e.cfg.LogDriver, logdriver.Args(tl.Path, tl.MaxSize, tl.MaxFile))
	case tl.Kind == logRecords:
		// Prepared with a driver, started without one (shoald lost it):
		// keep the output, in the plain file.
		return cio.LogFile(c.e.cfg.logPath(c.id))
	}
	return cio.LogFile(tl.Path)
}

// removeLogs deletes every file of the task's log: the recorded one with
// its rotated files, and the default places of older tasks.
func (c *controller) removeLogs() []error {
	paths := []string{c.e.cfg.recordLogPath(c.id), c.e.cfg.logPath(c.id)}
	if tl, _, err := c.taskLog(); err == nil && tl.Path != "" {
		paths = append(paths, tl.Path)
	}
	var errs []error
	seen := map[string]bool{}
	for _, p := range paths {
		if seen[p] {
			continue
		}
		seen[p] = true
		rotated, _ := filepath.Glob(globEscape(p) + ".*")
		for _, f := range append([]string{p}, rotated...) {
			if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// globEscape quotes the glob metacharacters of a path.
func globEscape(p string) string {
	out := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '*', '?', '[', '\\':
			out = append(out, '\\')
		}
		out = append(out, p[i])
	}
	return string(out)
}
