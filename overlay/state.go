package overlay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Task records: StateDir/tasks/<task ID>.json names the networks of each
// attached task, so a restarted daemon knows which networks its live tasks
// still use (Start) before their controllers re-attach them.

type record struct {
	Netns    string   `json:"netns"`
	Networks []string `json:"networks"`
	// Serving: the task was serving when last recorded; a restarted
	// daemon's re-attach publishes it serving at once (meshstate.go).
	Serving bool `json:"serving,omitempty"`
}

func (a *Agent) recordDir() string { return filepath.Join(a.cfg.StateDir, "tasks") }

func (a *Agent) writeRecord(lt *localTask) error {
	a.mu.Lock()
	rec := record{Netns: lt.netns, Serving: a.serving[lt.id]}
	a.mu.Unlock()
	for _, at := range lt.atts {
		rec.Networks = append(rec.Networks, at.net.ID)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.records[lt.id] = rec.Networks
	a.mu.Unlock()
	if err := os.MkdirAll(a.recordDir(), 0o700); err != nil {
		return fmt.Errorf("overlay state dir: %w", err)
	}
	path := filepath.Join(a.recordDir(), lt.id+".json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("overlay task record: %w", err)
	}
	return os.Rename(tmp, path)
}

// recordServing rewrites an attached task's record with its serving flag.
func (a *Agent) recordServing(id string) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	lt := a.tasks[id]
	a.mu.Unlock()
	if lt == nil {
		return
	}
	if err := a.writeRecord(lt); err != nil {
		a.cfg.Log.Warn("overlay: recording a task's serving state failed; a restart republishes it as starting", "task", id, "err", err)
	}
}

func (a *Agent) removeRecord(id string) error {
	a.mu.Lock()
	delete(a.records, id)
	a.mu.Unlock()
	err := os.Remove(filepath.Join(a.recordDir(), id+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// adoptRecords drops the records of tasks not live (live nil: unknown,
// all kept), loads the others and returns the networks they use.
func (a *Agent) adoptRecords(live []string) (map[string]bool, error) {
	isLive := map[string]bool{}
	for _, id := range live {
		isLive[id] = true
	}
	keep := map[string]bool{}
	ents, err := os.ReadDir(a.recordDir())
	if errors.Is(err, fs.ErrNotExist) {
		return keep, nil
	}
	if err != nil {
		return nil, err
	}
	for _, de := range ents {
		id, ok := strings.CutSuffix(de.Name(), ".json")
		if !ok {
			_ = os.Remove(filepath.Join(a.recordDir(), de.Name()))
			continue
		}
		if live != nil && !isLive[id] {
			_ = os.Remove(filepath.Join(a.recordDir(), de.Name()))
			continue
		}
		b, err := os.ReadFile(filepath.Join(a.recordDir(), de.Name()))
		var rec record
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		if err != nil {
			return nil, fmt.Errorf("overlay task record %s: %w", de.Name(), err)
		}
		for _, n := range rec.Networks {
			keep[n] = true
		}
		a.mu.Lock()
		a.records[id] = rec.Networks
		a.pendingAdopt[id] = rec.Serving
		a.mu.Unlock()
	}
	return keep, nil
}
