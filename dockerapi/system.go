package dockerapi

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"golang.org/x/sys/unix"

	"github.com/shoal-project/shoal/dockerapi/convert"
	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/hostinfo"
	api "github.com/shoal-project/shoal/proto"
)

// pingInfoTimeout bounds the node-state call of /_ping: a ping answers
// quickly even when the node is busy (without the Swarm header then).
const pingInfoTimeout = 2 * time.Second

// ping answers HEAD|GET /_ping as dockerd: "OK", the version headers (set
// by the middleware) and the node's swarm state in the Swarm header.
func (s *Server) ping(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	ictx, cancel := context.WithTimeout(ctx, pingInfoTimeout)
	defer cancel()
	if info, err := s.local.Info(ictx, &api.InfoRequest{}); err == nil {
		h.Set("Swarm", swarmHeader(info))
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte("OK"))
	}
	return nil
}

// swarmHeader is dockerd's Swarm ping header: inactive, pending, error,
// locked, active/worker or active/manager.
func swarmHeader(info *api.InfoResponse) string {
	st := localNodeState(info.GetState())
	if st != swarm.LocalNodeStateActive {
		return string(st)
	}
	if info.GetControlAvailable() {
		return "active/manager"
	}
	return "active/worker"
}

func localNodeState(st api.InfoResponse_State) swarm.LocalNodeState {
	switch st {
	case api.InfoResponse_PENDING:
		return swarm.LocalNodeStatePending
	case api.InfoResponse_ACTIVE:
		return swarm.LocalNodeStateActive
	case api.InfoResponse_ERROR:
		return swarm.LocalNodeStateError
	case api.InfoResponse_LOCKED:
		return swarm.LocalNodeStateLocked
	}
	return swarm.LocalNodeStateInactive
}

// dockerArch is the architecture as docker names it (uname -m).
func dockerArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}

func kernelVersion() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// version answers GET /version.
func (s *Server) version(_ context.Context, w http.ResponseWriter, _ *http.Request) error {
	kv := kernelVersion()
	details := map[string]string{
		"ApiVersion":    MaxAPIVersion,
		"MinAPIVersion": MinAPIVersion,
		"Os":            runtime.GOOS,
		"Arch":          runtime.GOARCH,
		"GoVersion":     runtime.Version(),
		"KernelVersion": kv,
		"Experimental":  "false",
		"GitCommit":     "",
		"BuildTime":     "",
	}
	writeJSON(w, http.StatusOK, system.VersionResponse{
		Platform:      system.PlatformInfo{Name: "shoal " + s.cfg.Version},
		Version:       s.cfg.Version,
		APIVersion:    MaxAPIVersion,
		MinAPIVersion: MinAPIVersion,
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		GoVersion:     runtime.Version(),
		KernelVersion: kv,
		Components:    []system.ComponentVersion{{Name: "Engine", Version: s.cfg.Version, Details: details}},
	})
	return nil
}

// info answers GET /info: the host, and the Swarm section docker info
// prints (with the cluster when this node is a manager).
func (s *Server) info(ctx context.Context, w http.ResponseWriter, _ *http.Request) error {
	li, err := s.local.Info(ctx, &api.InfoRequest{})
	if err != nil {
		return errdefs.FromGRPC(err)
	}
	host, _ := os.Hostname()
	out := system.Info{
		ID:                 li.GetNodeId(),
		Name:               host,
		ServerVersion:      s.cfg.Version,
		OSType:             runtime.GOOS,
		Architecture:       dockerArch(),
		KernelVersion:      kernelVersion(),
		OperatingSystem:    operatingSystem(),
		NCPU:               runtime.NumCPU(),
		MemTotal:           memTotal(),
		DockerRootDir:      s.cfg.DataDir,
		Driver:             "containerd",
		LoggingDriver:      "shoal",
		CgroupVersion:      cgroupVersion(),
		DefaultRuntime:     "runc",
		Runtimes:           map[string]system.RuntimeWithStatus{"runc": {Runtime: system.Runtime{Path: "runc"}}},
		IndexServerAddress: "https://index.docker.io/v1/",
		Plugins:            system.PluginsInfo{Network: []string{"overlay"}, Log: []string{"shoal"}},
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		// Containers keep running while shoald stops; it re-attaches.
		LiveRestoreEnabled: true,
		Swarm:              s.swarmInfo(ctx, li),
	}
	if out.ID == "" {
		out.ID = host
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// swarmInfo is /info's Swarm section.
func (s *Server) swarmInfo(ctx context.Context, li *api.InfoResponse) swarm.Info {
	out := swarm.Info{
		NodeID:           li.GetNodeId(),
		NodeAddr:         hostOnly(li.GetNodeAddr()),
		LocalNodeState:   localNodeState(li.GetState()),
		ControlAvailable: li.GetControlAvailable(),
		Error:            li.GetError(),
		Nodes:            int(li.GetNodes()),
		Managers:         int(li.GetManagerCount()),
	}
	if out.LocalNodeState == swarm.LocalNodeStateInactive {
		return out
	}
	for _, p := range li.GetManagers() {
		out.RemoteManagers = append(out.RemoteManagers, swarm.Peer{NodeID: p.GetNodeId(), Addr: p.GetAddr()})
	}
	if out.RemoteManagers == nil {
		out.RemoteManagers = []swarm.Peer{}
	}
	if !out.ControlAvailable {
		return out
	}
	// The CLI prints the cluster whenever ControlAvailable is set: it
	// must not be missing.
	ci := swarm.ClusterInfo{ID: li.GetClusterId()}
	if c, err := s.control.GetCluster(ctx, &api.GetClusterRequest{ClusterId: li.GetClusterId()}); err == nil {
		ci = convert.ClusterInfoToMoby(c.GetCluster())
	} else {
		out.Warnings = append(out.Warnings, "WARNING: cannot read the cluster's settings: "+errdefs.FromGRPC(err).Error())
	}
	out.Cluster = &ci
	if li.GetRaftDiskFault() != "" {
		out.Warnings = append(out.Warnings, "WARNING: this manager cannot write its raft log: "+li.GetRaftDiskFault())
	}
	return out
}

// hostOnly drops the port of an advertise address: docker's NodeAddr is
// an IP.
func hostOnly(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 && !strings.HasSuffix(addr, "]") {
		h := addr[:i]
		return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	}
	return addr
}

func operatingSystem() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return runtime.GOOS
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return runtime.GOOS
}

func memTotal() int64 {
	v, _ := hostinfo.MemTotal(hostinfo.Meminfo)
	return v
}

func cgroupVersion() string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return "2"
	}
	return "1"
}
