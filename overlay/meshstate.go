package overlay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// The mesh across a daemon restart. Established connections through the
// node live in the kernel (the node's ingress veth, the table
// shoal-ingress, conntrack); a restarted daemon adopts them instead of
// tearing them down and rebuilding from what the managers and the gossip
// say seconds later:
//
//   - StateDir/mesh-node.json holds the node's ingress attachment while it
//     is in place: Start keeps its network (no task record names it on a
//     node without a task) and re-attaches it at once, which keeps the veth
//     that is already right (datapath.AttachTask is idempotent);
//   - StateDir/mesh-ports.json holds the ports the table was last given:
//     Start takes them as applied, so an unchanged view applies nothing;
//   - a live task's record says whether it was serving: its controller's
//     re-attach publishes it serving at once (not as a starting task,
//     which would take it out of every node's mesh until Serving), and
//     writes the flag again with each change (Serving, Draining, Gone);
//   - until the view is whole (the gossip has joined its seeds, or has none
//     to join, every live task is re-attached, and the view holds every
//     remembered backend or settleGrace has passed since; or settleMax
//     after Start) programMesh only adds: each
//     remembered port keeps its remembered backends besides the ones the
//     partial view has, and the table is never removed for lack of ports.

// settleMax bounds the adoption period when the gossip cannot join.
const settleMax = 30 * time.Second

// settleGrace is how long, once the gossip has joined and the live tasks
// are re-attached, a previous daemon's backend missing from the view is
// kept (its task died while the daemon was down, or it is still on its way
// in the gossip).
const settleGrace = 3 * time.Second

const (
	nodeRecordFile  = "mesh-node.json"
	portsRecordFile = "mesh-ports.json"
)

type nodeRecord struct {
	Network Network      `json:"network"`
	Addr    netip.Prefix `json:"addr"`
	MAC     string       `json:"mac"`
}

// writeJSON replaces StateDir/name atomically.
func (a *Agent) writeJSON(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(a.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("overlay state dir: %w", err)
	}
	path := filepath.Join(a.cfg.StateDir, name)
	if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
		return fmt.Errorf("overlay %s: %w", name, err)
	}
	return os.Rename(path+".tmp", path)
}

func (a *Agent) removeJSON(name string) error {
	err := os.Remove(filepath.Join(a.cfg.StateDir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// readJSON reads StateDir/name; false when it does not exist.
func (a *Agent) readJSON(name string, v any) (bool, error) {
	b, err := os.ReadFile(filepath.Join(a.cfg.StateDir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		return false, fmt.Errorf("overlay %s: %w (the file is rewritten at the next change)", name, err)
	}
	return true, nil
}

func (a *Agent) saveNodeRecord(at *attachment) {
	rec := nodeRecord{Network: at.net, Addr: at.addr, MAC: at.mac.String()}
	if err := a.writeJSON(nodeRecordFile, rec); err != nil {
		a.cfg.Log.Warn("overlay: recording the node's ingress attachment failed; a restart rebuilds it later", "err", err)
	}
}

// loadNodeRecord returns the ingress attachment a previous daemon left in
// place, or nil.
func (a *Agent) loadNodeRecord() *attachment {
	var rec nodeRecord
	ok, err := a.readJSON(nodeRecordFile, &rec)
	if err != nil {
		a.cfg.Log.Warn("overlay: ignoring the recorded ingress attachment", "err", err)
	}
	if !ok || err != nil {
		return nil
	}
	mac, err := net.ParseMAC(rec.MAC)
	if err != nil || rec.Network.ID == "" || !rec.Addr.IsValid() {
		a.cfg.Log.Warn("overlay: ignoring a malformed recorded ingress attachment", "network", rec.Network.ID, "addr", rec.Addr, "mac", rec.MAC)
		return nil
	}
	return &attachment{net: rec.Network, ifName: a.nodeIfName(), addr: rec.Addr, mac: mac, ingress: true}
}

// savePorts records what the table was given (nil: no table).
func (a *Agent) savePorts(ports []MeshPort) {
	var err error
	if ports == nil {
		err = a.removeJSON(portsRecordFile)
	} else {
		err = a.writeJSON(portsRecordFile, ports)
	}
	if err != nil {
		a.cfg.Log.Warn("overlay: recording the published ports failed; a restart reprograms them", "err", err)
	}
}

// loadPorts returns the ports a previous daemon's table holds (nil: none
// recorded).
func (a *Agent) loadPorts() []MeshPort {
	var ps []MeshPort
	ok, err := a.readJSON(portsRecordFile, &ps)
	if err != nil {
		a.cfg.Log.Warn("overlay: ignoring the recorded published ports", "err", err)
	}
	if !ok || err != nil {
		return nil
	}
	return ps
}

// meshSettled says whether the view is whole: the gossip has joined its
// seeds (or has none), every live task is re-attached, and the view (ports,
// computed from it) holds every backend the previous daemon programmed, or
// settleGrace has passed since the rest was true (a backend that died
// meanwhile); or settleMax has passed since Start. Joining is not enough:
// the peers' entries arrive just after, and a view declared whole before
// them took live remote backends out and flushed their flows. Once true it
// stays true. progMu is held.
func (a *Agent) meshSettled(ports []MeshPort) bool {
	if a.settled {
		return true
	}
	now := a.cfg.Clock.Now()
	a.mu.Lock()
	ready := a.gossip != nil && (a.joined || len(a.seeds) == 0) && len(a.pendingAdopt) == 0
	timedOut := !a.startedAt.IsZero() && now.Sub(a.startedAt) >= settleMax
	a.mu.Unlock()
	if ready && a.readyAt.IsZero() {
		a.readyAt = now
	}
	ok := timedOut || ready && (coversBackends(ports, a.adopted) || now.Sub(a.readyAt) >= settleGrace)
	if ok {
		a.settled = true
		a.cfg.Log.Info("overlay: the routing mesh's view is whole; programming it from the gossip alone")
	}
	return ok
}

// coversBackends says whether ports hold every backend of adopted.
func coversBackends(ports, adopted []MeshPort) bool {
	have := meshBackends(ports)
	for b := range meshBackends(adopted) {
		if !have[b] {
			return false
		}
	}
	return true
}

// keepAdopted adds to ports (the partial view's) the adopted ports and
// backends it lacks.
func keepAdopted(adopted, ports []MeshPort) []MeshPort {
	out := slices.Clone(ports)
	for _, p := range adopted {
		i := slices.IndexFunc(out, func(q MeshPort) bool { return q.Proto == p.Proto && q.Published == p.Published })
		if i < 0 {
			p.Backends = slices.Clone(p.Backends)
			out = append(out, p)
			continue
		}
		if out[i].HostMode != p.HostMode || out[i].Target != p.Target || out[i].Masquerade != p.Masquerade {
			continue // changed meanwhile: the view's wins
		}
		bs := slices.Clone(out[i].Backends)
		for _, b := range p.Backends {
			if !slices.Contains(bs, b) {
				bs = append(bs, b)
			}
		}
		slices.SortFunc(bs, netip.Addr.Compare)
		out[i].Backends = bs
	}
	sortPorts(out)
	return out
}
