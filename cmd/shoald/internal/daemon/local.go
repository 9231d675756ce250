package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/ids"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// localNode serves the LocalNode service on the control socket.
type localNode struct {
	api.UnimplementedLocalNodeServer
	d *Daemon
}

var errInSwarm = errdefs.New(errdefs.ErrFailedPrecondition,
	"This node is already part of a swarm. Use \"shoal swarm leave\" to leave this swarm and join another one.")

// begin reserves the daemon for an init or join.
func (d *Daemon) begin() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.node != nil || d.locked {
		return errInSwarm
	}
	if d.pending {
		return errdefs.FailedPrecondition("this node is already joining or initializing a swarm; wait for it to finish")
	}
	d.pending = true
	return nil
}

func (d *Daemon) end(n *nodeRun, state *nodeState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pending = false
	if n != nil {
		d.node, d.state = n, state
	}
}

// wipe removes the swarm state of the data directory.
func (d *Daemon) wipe() {
	for _, p := range []string{d.certDir(), d.statePath(), filepath.Dir(d.raftPath()), d.workerDir()} {
		_ = os.RemoveAll(p)
	}
	d.mu.Lock()
	d.keys, d.locked, d.lockedID = nil, false, pki.Identity{}
	d.mu.Unlock()
}

// enterSwarm runs an init or a join: fn brings the member up, and on failure
// everything it started is stopped and its files wiped, so a failed attempt
// leaves the node as it was.
func (d *Daemon) enterSwarm(fn func() (*nodeRun, *nodeState, error)) error {
	if err := d.begin(); err != nil {
		return err
	}
	n, state, err := fn()
	if err != nil {
		if n != nil {
			n.stop()
		}
		d.wipe()
		n, state = nil, nil
	}
	d.end(n, state)
	return err
}

// Init creates a new swarm with this node as its first manager.
func (l *localNode) Init(ctx context.Context, req *api.InitRequest) (resp *api.InitResponse, err error) {
	d := l.d
	err = d.enterSwarm(func() (n *nodeRun, state *nodeState, err error) {
		resp, n, state, err = l.init(ctx, req)
		return n, state, err
	})
	return resp, err
}

func (l *localNode) init(ctx context.Context, req *api.InitRequest) (resp *api.InitResponse, n *nodeRun, state *nodeState, err error) {
	d := l.d
	listen := firstNonEmpty(req.GetListenAddr(), d.cfg.ListenAddr)
	if _, _, err := net.SplitHostPort(listen); err != nil {
		return nil, n, state, errdefs.InvalidArgument("invalid listen address %q: %v (expected host:port)", listen, err)
	}
	advertise, err := chooseAdvertise(firstNonEmpty(req.GetAdvertiseAddr(), d.cfg.AdvertiseAddr), listen)
	if err != nil {
		return nil, n, state, err
	}
	spec := req.GetSpec()
	if spec == nil {
		spec = &api.ClusterSpec{}
	}
	spec = proto.Clone(spec).(*api.ClusterSpec)
	if spec.Annotations == nil {
		spec.Annotations = &api.Annotations{Name: "default"}
	}
	expiry := api.Dur(spec.GetCaConfig().GetNodeCertExpiry(), api.DefaultNodeCertExpiry)
	if expiry < pki.MinNodeCertExpiry {
		return nil, n, state, errdefs.InvalidArgument("--cert-expiry %v is below the minimum of %v", expiry, pki.MinNodeCertExpiry)
	}
	if spec.GetDispatcher().GetHeartbeatPeriod() == nil {
		spec.Dispatcher = &api.DispatcherSettings{HeartbeatPeriod: durationpb.New(api.DefaultHeartbeatPeriod)}
	}
	if spec.GetOrchestration() == nil {
		spec.Orchestration = &api.OrchestrationSettings{TaskHistoryRetentionLimit: api.DefaultTaskHistory}
	}
	if spec.GetCaConfig().GetNodeCertExpiry() == nil {
		spec.CaConfig = &api.CASettings{NodeCertExpiry: durationpb.New(expiry)}
	}
	fillRaftSettings(spec)

	clusterID, nodeID := ids.New(), ids.New()
	ca, err := pki.NewRootCA(d.cfg.Clock)
	if err != nil {
		return nil, n, state, err
	}
	csr, key, err := pki.GenerateCSR()
	if err != nil {
		return nil, n, state, err
	}
	cert, err := ca.Sign(csr, nodeID, api.NodeRole_MANAGER, clusterID, expiry)
	if err != nil {
		return nil, n, state, err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return nil, n, state, err
	}
	var unlockKey []byte
	if spec.GetEncryption().GetAutoLockManagers() {
		if unlockKey, err = pki.GenerateUnlockKey(); err != nil {
			return nil, n, state, err
		}
	}
	kr, err := pki.CreateKeyring(d.certDir())
	if err != nil {
		return nil, n, state, err
	}
	d.setKeyring(kr)
	certs, err := d.certStore()
	if err != nil {
		return nil, n, state, err
	}
	if err := certs.Save(pki.NodeState{KeyPEM: key, CertPEM: cert, RootCAPEM: ca.CertPEM()}); err != nil {
		return nil, n, state, err
	}
	state = &nodeState{ListenAddr: listen, AdvertiseAddr: advertise}
	if err := saveState(d.statePath(), state); err != nil {
		return nil, n, state, err
	}
	st, err := certs.Load()
	if err != nil {
		return nil, n, state, err
	}
	n, err = d.start(d.ctx, st, state, startBootstrap)
	if err != nil {
		return nil, n, state, err
	}
	m := n.manager
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for !m.Leading() {
		select {
		case <-wctx.Done():
			return nil, n, state, errdefs.DeadlineExceeded("the new manager did not become leader in time")
		case <-time.After(10 * time.Millisecond):
		}
	}
	workerTok, err := pki.GenerateJoinToken(ca.Digest())
	if err != nil {
		return nil, n, state, err
	}
	managerTok, err := pki.GenerateJoinToken(ca.Digest())
	if err != nil {
		return nil, n, state, err
	}
	cluster := &api.Cluster{
		Id:   clusterID,
		Spec: spec,
		RootCa: &api.RootCA{CaKey: caKey, CaCert: ca.CertPEM(), CaCertHash: ca.Digest(),
			JoinTokens: &api.JoinTokens{Worker: workerTok, Manager: managerTok}},
		UnlockKey: unlockKey,
	}
	self := &api.Node{
		Id:          nodeID,
		Spec:        &api.NodeSpec{DesiredRole: api.NodeRole_MANAGER, Membership: api.NodeSpec_ACCEPTED, Availability: req.GetAvailability()},
		Description: d.describe(),
		Status:      &api.NodeStatus{State: api.NodeStatus_READY, Addr: hostOf(advertise)},
		Role:        api.NodeRole_MANAGER,
		ManagerStatus: &api.ManagerStatus{RaftId: m.Raft().RaftID(), Addr: advertise, Leader: true,
			Reachability: api.Reachability_REACHABLE},
	}
	err = m.Store().Update(wctx, func(tx *raftstore.Tx) error {
		if err := tx.Create(cluster); err != nil {
			return err
		}
		return tx.Create(self)
	})
	if err != nil {
		return nil, n, state, err
	}
	// Locked from now on; the key watcher would do it too, a moment later.
	if err := kr.Wrap(unlockKey); err != nil {
		return nil, n, state, err
	}
	d.log.Info("swarm initialized", "node", nodeID, "cluster", clusterID, "advertise", advertise, "autolock", unlockKey != nil)
	resp = &api.InitResponse{NodeId: nodeID, ClusterId: clusterID, WorkerToken: workerTok, AdvertiseAddr: advertise,
		UnlockKey: pki.FormatUnlockKey(unlockKey)}
	return resp, n, state, nil
}

// Info reports the node's swarm state.
func (l *localNode) Info(ctx context.Context, _ *api.InfoRequest) (*api.InfoResponse, error) {
	d := l.d
	host, _ := os.Hostname()
	out := &api.InfoResponse{Version: d.cfg.Version, Hostname: host, DataDir: d.cfg.DataDir, State: api.InfoResponse_INACTIVE}
	n := d.current()
	if n == nil {
		d.mu.Lock()
		defer d.mu.Unlock()
		switch {
		case d.locked:
			out.State = api.InfoResponse_LOCKED
			out.NodeId, out.ClusterId = d.lockedID.NodeID, d.lockedID.ClusterID
			out.NodeAddr = d.state.AdvertiseAddr
			out.UnlockKeyFingerprint = d.keys.WrappedWith()
		case d.pending:
			out.State = api.InfoResponse_PENDING
		}
		return out, nil
	}
	out.State = api.InfoResponse_ACTIVE
	out.UnlockKeyFingerprint = n.keys.WrappedWith()
	n.agentMu.Lock()
	if n.agent != nil {
		out.HeldSecrets, out.HeldConfigs = n.agent.Held()
	}
	n.agentMu.Unlock()
	out.NodeId, out.ClusterId = n.identity.NodeID, n.identity.ClusterID
	out.NodeAddr = n.state.AdvertiseAddr
	if m := n.manager; m != nil {
		out.ControlAvailable = true
		out.RaftAppliedIndex = m.Raft().AppliedIndex()
		if df := m.Raft().DiskFault(); df != nil {
			out.RaftDiskFault, out.RaftDiskFaultSince = df.Error(), timestamppb.New(df.Since)
		}
		for _, mem := range m.Members() {
			out.Managers = append(out.Managers, &api.Peer{NodeId: mem.NodeID, Addr: mem.Addr})
			if mem.Leader {
				out.LeaderAddr = mem.Addr
			}
		}
		out.ManagerCount = uint32(len(out.Managers))
		m.Store().View(func(tx raftstore.ReadTx) { out.Nodes = uint32(len(tx.Nodes())) })
	} else {
		for _, a := range n.knownManagers() {
			out.Managers = append(out.Managers, &api.Peer{Addr: a})
		}
	}
	return out, nil
}

// describe is this node's description before the agent reports its own.
func (d *Daemon) describe() *api.NodeDescription {
	host, _ := os.Hostname()
	return &api.NodeDescription{
		Hostname:  host,
		Platform:  &api.Platform{Os: runtime.GOOS, Architecture: runtime.GOARCH},
		Resources: &api.Resources{NanoCpus: int64(runtime.NumCPU()) * 1e9, MemoryBytes: memTotal()},
		Engine:    &api.EngineDescription{EngineVersion: d.cfg.Version},
	}
}

func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	return 0
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

// chooseAdvertise picks the address other nodes use: the one given (an IP,
// IP:port or interface name), else the listen address when it is specific,
// else the node's only non-loopback IPv4 address.
func chooseAdvertise(given, listen string) (string, error) {
	_, port, _ := net.SplitHostPort(listen)
	if given != "" {
		host, p, err := net.SplitHostPort(given)
		if err != nil {
			host, p = given, port
		}
		if net.ParseIP(host) == nil {
			ip, err := interfaceIP(host)
			if err != nil {
				return "", errdefs.InvalidArgument("advertise address %q: %v", given, err)
			}
			host = ip
		}
		return net.JoinHostPort(host, p), nil
	}
	host, _, _ := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return listen, nil
	}
	var found []string
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || strings.HasPrefix(ifc.Name, "shoal") {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				found = append(found, ipn.IP.String())
			}
		}
	}
	switch len(found) {
	case 1:
		return net.JoinHostPort(found[0], port), nil
	case 0:
		return "", errdefs.InvalidArgument("could not find an address to advertise: use --advertise-addr")
	}
	return "", errdefs.InvalidArgument("could not choose an IP address to advertise since this system has multiple addresses (%s): use --advertise-addr", strings.Join(found, ", "))
}

func interfaceIP(name string) (string, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return "", fmt.Errorf("not an IP address or a network interface")
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
	}
	return "", fmt.Errorf("interface %s has no IPv4 address", name)
}

// fillRaftSettings records in a new cluster's spec the raft settings in
// force, so that `shoal info` shows them: the ticks every manager runs with
// and the snapshot policy (which `swarm update` may change later).
func fillRaftSettings(spec *api.ClusterSpec) {
	def := raftstore.DefaultConfig()
	if spec.Raft == nil {
		spec.Raft = &api.RaftSettings{}
	}
	spec.Raft.HeartbeatTick = uint32(def.HeartbeatTick)
	spec.Raft.ElectionTick = uint32(def.ElectionTick)
	if spec.Raft.SnapshotInterval == 0 {
		spec.Raft.SnapshotInterval = def.SnapshotInterval
	}
	if spec.Raft.LogEntriesForSlowFollowers == 0 {
		spec.Raft.LogEntriesForSlowFollowers = def.LogEntriesForSlowFollowers
	}
}
