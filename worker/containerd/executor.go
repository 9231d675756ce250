package containerd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"golang.org/x/sync/singleflight"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/hostinfo"
	"github.com/shoal-project/shoal/overlay/datapath"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
)

// Executor runs a node's tasks as containerd containers. It is safe for
// concurrent use; see the package doc.
type Executor struct {
	cfg    Config
	client *client.Client
	net    *network
	pulls  singleflight.Group
	pm     *pullMetrics

	// egressMu guards egressUsers, the tasks on overlay networks that rely
	// on the bridge's egress table. With egressInfra (a swarm node's
	// executor: Config.Overlay set) the table is made at New and kept until
	// RemoveEgress; otherwise it is made with the first user and removed
	// with the last.
	egressMu    sync.Mutex
	egressUsers map[string]bool
	egressInfra bool

	vols *volumeStore // the named local volumes (volumes.go)
}

var _ worker.Executor = (*Executor)(nil)

// connectTimeout bounds the first dial of containerd's socket, so a daemon
// that is down fails New with a clear error instead of hanging.
const connectTimeout = 10 * time.Second

// New connects to containerd, prepares DataDir and sets up the node-local
// bridge (choosing and recording its subnet on the first start).
func New(ctx context.Context, cfg Config) (*Executor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.DataDir, cfg.LogDir, filepath.Join(cfg.DataDir, "netns"), filepath.Join(cfg.DataDir, "tasks")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("executor data dir: %w", err)
		}
	}
	if _, err := os.Stat(cfg.Address); err != nil {
		return nil, errdefs.Unavailable("containerd is not reachable at %s (is it running? start it with `containerd &`): %v", cfg.Address, err)
	}
	c, err := client.New(cfg.Address,
		client.WithDefaultNamespace(cfg.Namespace),
		client.WithDefaultRuntime(cfg.Runtime),
		client.WithTimeout(connectTimeout))
	if err != nil {
		return nil, errdefs.Unavailable("containerd is not reachable at %s (is it running? start it with `containerd &`): %v", cfg.Address, err)
	}
	vctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if _, err := c.Version(vctx); err != nil {
		c.Close()
		return nil, errdefs.Unavailable("containerd at %s does not answer: %v", cfg.Address, err)
	}
	n, err := newNetwork(&cfg)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("node-local network: %w", err)
	}
	// Egress tables of bridges that are gone (daemons killed and cleaned up
	// by someone who knew nothing of the table) would otherwise stay for
	// ever. Best effort: a failure here costs nothing but the leftover.
	_, _ = datapath.SweepEgress()

	e := &Executor{cfg: cfg, client: c, net: n, egressUsers: map[string]bool{}, pm: newPullMetrics()}
	e.vols = newVolumeStore(filepath.Join(cfg.DataDir, "volumes"), e.volumeUsersOf)
	if cfg.Overlay != nil {
		// A swarm node's egress is node infrastructure, as Docker's
		// docker_gwbridge is: made when the node's agent starts (swarm
		// init, join, or a restart), kept while tasks come and go, removed
		// when the node leaves (RemoveEgress). A task's Prepare repairs it.
		// A failure here is reported by the first task on an overlay,
		// whose Prepare makes it again (egressFor).
		e.egressInfra = true
		_ = datapath.EnsureEgress(cfg.Bridge, n.prefix)
	}
	return e, nil
}

// RemoveEgress removes the node-local bridge's egress table: the node left
// its swarm (node.Leave, after its containers are gone).
func (e *Executor) RemoveEgress() error {
	e.egressMu.Lock()
	defer e.egressMu.Unlock()
	clear(e.egressUsers)
	return datapath.RemoveEgress(e.cfg.Bridge)
}

// Close closes the connection to containerd. Containers keep running.
func (e *Executor) Close() error { return e.client.Close() }

// Config returns the configuration in force, defaults filled in.
func (e *Executor) Config() Config { return e.cfg }

// Subnet is the node-local subnet of the bridge (Node.local_subnet).
func (e *Executor) Subnet() string { return e.net.prefix.String() }

// nsctx puts the executor's namespace on ctx, whatever the caller's ctx
// carries.
func (e *Executor) nsctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, e.cfg.Namespace)
}

// Describe reports the node: hostname, platform, resources and engine.
func (e *Executor) Describe(ctx context.Context) (*api.NodeDescription, error) {
	mem, err := hostinfo.MemTotal(hostinfo.Meminfo)
	if err != nil {
		return nil, err
	}
	var dataPath string
	if e.cfg.Overlay != nil {
		if a := e.cfg.Overlay.DataPathAddr(); a.IsValid() {
			dataPath = a.String()
		}
	}
	return &api.NodeDescription{
		DataPathAddr: dataPath,
		LocalSubnet:  e.net.prefix.String(),
		Hostname:     e.cfg.Hostname,
		Platform:     &api.Platform{Os: runtime.GOOS, Architecture: runtime.GOARCH},
		Resources: &api.Resources{
			NanoCpus:    int64(runtime.NumCPU()) * 1e9,
			MemoryBytes: mem,
		},
		Engine: &api.EngineDescription{EngineVersion: e.cfg.Version},
	}, nil
}

// Controller returns the controller of t. It does no I/O: a controller for
// a task whose container exists (after a daemon restart) finds it on use.
func (e *Executor) Controller(t *api.Task, deps worker.Dependencies) (worker.Controller, error) {
	if t == nil || t.GetId() == "" {
		return nil, errdefs.InvalidArgument("controller: task without an ID")
	}
	if !identifier.MatchString(t.GetId()) || len(t.GetId()) > 64 {
		return nil, worker.Rejected(errdefs.InvalidArgument("task ID %q cannot name a container", t.GetId()))
	}
	return newController(e, proto.Clone(t).(*api.Task), deps), nil
}

// Tasks lists the IDs of the tasks that have a container in the namespace,
// running or not, whatever node ID they carry: after a node leaves and
// rejoins, the old containers are just as much the agent's to remove.
func (e *Executor) Tasks(ctx context.Context) ([]string, error) {
	ctx = e.nsctx(ctx)
	cs, err := e.client.Containers(ctx, `labels."`+LabelTaskID+`"`)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	ids := make([]string, 0, len(cs))
	for _, c := range cs {
		info, err := c.Info(ctx, client.WithoutRefreshedMetadata)
		if err != nil {
			return nil, err
		}
		if id := info.Labels[LabelTaskID]; id != "" {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// egressFor makes the bridge's egress table (idempotent) and counts the task
// among its users.
func (e *Executor) egressFor(taskID string) error {
	e.egressMu.Lock()
	defer e.egressMu.Unlock()
	if err := datapath.EnsureEgress(e.cfg.Bridge, e.net.prefix); err != nil {
		return err
	}
	e.egressUsers[taskID] = true
	return nil
}

// egressDone forgets the task and removes the table with its last user,
// unless the table is the node's infrastructure (a swarm node's executor).
func (e *Executor) egressDone(taskID string) {
	e.egressMu.Lock()
	defer e.egressMu.Unlock()
	if !e.egressUsers[taskID] {
		return
	}
	delete(e.egressUsers, taskID)
	if len(e.egressUsers) == 0 && !e.egressInfra {
		_ = datapath.RemoveEgress(e.cfg.Bridge)
	}
}
