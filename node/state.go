package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Paths inside the data directory.
func (n *Node) certDir() string   { return filepath.Join(n.cfg.DataDir, "certificates") }
func (n *Node) raftPath() string  { return filepath.Join(n.cfg.DataDir, "raft", "raft.db") }
func (n *Node) workerDir() string { return filepath.Join(n.cfg.DataDir, "worker") }
func (n *Node) execDir() string   { return filepath.Join(n.cfg.DataDir, "executor") }
func (n *Node) statePath() string { return filepath.Join(n.cfg.DataDir, "state.json") }

// nodeState is what the node records besides certificates.
type nodeState struct {
	ListenAddr    string `json:"listen_addr"`
	AdvertiseAddr string `json:"advertise_addr"`
	// DataPathAddr is init/join's --data-path-addr (IP or interface name);
	// empty: the daemon's flag, else the advertise address.
	DataPathAddr string   `json:"data_path_addr,omitempty"`
	Managers     []string `json:"managers,omitempty"` // last known manager addresses
}

func loadState(path string) (*nodeState, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node state %s is missing or unreadable (%v); the certificates say this node is in a swarm. "+
			"To recover, run `shoal swarm leave --force` and join again", path, err)
	}
	var s nodeState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("node state %s is damaged (%v). To recover, run `shoal swarm leave --force` and join again", path, err)
	}
	return &s, nil
}

// saveState writes s to path atomically (write, fsync, rename).
func saveState(path string, s *nodeState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
