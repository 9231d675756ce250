// Package daemon is the node wiring of shoald, the one place that decides
// what runs on a node: the local control socket always; the agent (worker)
// whenever the node is in a swarm; the manager when its certificate says
// manager. It turns `swarm init` and `swarm join` into certificates, state
// on disk and running components, and resumes them after a restart.
// A node whose keyring is wrapped by the swarm's unlock key (autolock)
// resumes locked: only Info and Unlock answer until the key is given
// (lock.go).
//
// Daemon is safe for concurrent use: LocalNode calls may arrive at any time
// and are serialized by the daemon's mutex where they change its state.
// Every component it starts runs under a context it owns and is stopped and
// waited for before Run returns.
package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/boltcheck"
	"github.com/shoal-project/shoal/internal/logopt"
	"github.com/shoal-project/shoal/manager"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// Config is shoald's configuration, from its flags.
type Config struct {
	// DataDir holds everything the node keeps. Default /var/lib/shoal.
	DataDir string
	// ListenAddr is the cluster API address managers listen on. Default
	// 0.0.0.0:4242.
	ListenAddr string
	// AdvertiseAddr is the address other nodes reach this one at; default
	// derived from ListenAddr.
	AdvertiseAddr string
	// ControlSocket is the unix socket the CLI talks to. Default
	// /run/shoal/shoal.sock.
	ControlSocket string
	// ContainerdAddress and ContainerdNamespace locate the runtime.
	// Defaults /run/containerd/containerd.sock and "shoal".
	ContainerdAddress   string
	ContainerdNamespace string
	// InsecureRegistries are pulled from over plain HTTP.
	InsecureRegistries []string
	// Bridge and Subnet of the node-local task network (defaults chosen by
	// the executor).
	Bridge, Subnet string
	// LogDriver is the log driver binary (shoal-logdriver) the containerd
	// shim runs beside each task; main finds it next to shoald. Empty:
	// task output goes to plain files, unbounded (tests of the daemon's
	// wiring only).
	LogDriver string
	// LogDir holds the containers' log files (--log-dir). Default
	// <DataDir>/executor/logs.
	LogDir string
	// LogLimits are the node's default limits of a task's log (--log-opt
	// max-size=… max-file=…); zero fields: 10 MiB and 3 files.
	LogLimits logopt.Limits
	// Tuning for tests: raft tick and heartbeat period (0 = defaults:
	// 100ms, the cluster's). The snapshot interval is the cluster's
	// setting (`swarm init|update --snapshot-interval`).
	RaftTick        time.Duration
	HeartbeatPeriod time.Duration
	Version         string
	Logger          *slog.Logger
	Clock           clockwork.Clock
}

func (c *Config) validate() error {
	if c.DataDir == "" {
		c.DataDir = "/var/lib/shoal"
	}
	if c.ListenAddr == "" {
		c.ListenAddr = "0.0.0.0:4242"
	}
	if c.ControlSocket == "" {
		c.ControlSocket = "/run/shoal/shoal.sock"
	}
	if c.ContainerdAddress == "" {
		c.ContainerdAddress = "/run/containerd/containerd.sock"
	}
	if c.ContainerdNamespace == "" {
		c.ContainerdNamespace = "shoal"
	}
	if c.Bridge == "" && c.ContainerdNamespace != "shoal" {
		// Several daemons on one machine (tests, labs) each need their own
		// bridge; name it after the containerd namespace.
		sum := sha256.Sum256([]byte(c.ContainerdNamespace))
		c.Bridge = "shoal-" + hex.EncodeToString(sum[:])[:8]
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		return fmt.Errorf("--listen-addr %q: %v (expected host:port, e.g. 0.0.0.0:4242)", c.ListenAddr, err)
	}
	return nil
}

// Paths inside the data directory.
func (d *Daemon) certDir() string   { return filepath.Join(d.cfg.DataDir, "certificates") }
func (d *Daemon) raftPath() string  { return filepath.Join(d.cfg.DataDir, "raft", "raft.db") }
func (d *Daemon) workerDir() string { return filepath.Join(d.cfg.DataDir, "worker") }
func (d *Daemon) execDir() string   { return filepath.Join(d.cfg.DataDir, "executor") }
func (d *Daemon) statePath() string { return filepath.Join(d.cfg.DataDir, "state.json") }

// Daemon is one shoald.
type Daemon struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	ctx     context.Context // Run's context
	node    *nodeRun        // the swarm member, nil when not in a swarm
	state   *nodeState
	pending bool // an init or join is in progress
	lock    *os.File
	// keys is the node's keyring while it is in a swarm (lock.go).
	keys *pki.Keyring
	// locked: in a swarm, but the keyring waits for the unlock key; nothing
	// runs but the control socket. lockedID is the identity its
	// certificate names.
	locked   bool
	lockedID pki.Identity
}

// New prepares a daemon; Run starts it.
func New(cfg Config) (*Daemon, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Daemon{cfg: cfg, log: cfg.Logger}, nil
}

// Run serves until ctx ends. It fails at once, naming the file and the
// recovery, when the data directory holds damaged state.
func (d *Daemon) Run(ctx context.Context) error {
	if err := os.MkdirAll(d.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := d.lockDataDir(); err != nil {
		return err
	}
	defer d.lock.Close()
	if err := d.checkFiles(); err != nil {
		return err
	}
	d.mu.Lock()
	d.ctx = ctx
	d.mu.Unlock()
	local, err := d.serveLocal()
	if err != nil {
		return err
	}
	defer local.Stop()
	if err := d.resume(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	d.mu.Lock()
	n := d.node
	d.node = nil
	d.mu.Unlock()
	if n != nil {
		n.stop()
	}
	return nil
}

// lockDataDir makes sure one shoald owns the data directory.
func (d *Daemon) lockDataDir() error {
	f, err := os.OpenFile(filepath.Join(d.cfg.DataDir, "shoald.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("data directory %s is in use by another shoald (lock %s): %v", d.cfg.DataDir, f.Name(), err)
	}
	d.lock = f
	return nil
}

// checkFiles checks every database file before anything opens it, so a
// damaged one stops the daemon with its name instead of later, deep inside
// a component.
func (d *Daemon) checkFiles() error {
	return filepath.WalkDir(d.cfg.DataDir, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || filepath.Ext(path) != ".db" {
			return err
		}
		err = boltcheck.Check(path)
		if err != nil && path == filepath.Join(d.workerDir(), "tasks.db") {
			// Damaged pages may mean a failing disk: stop and say so. The
			// task db only caches what the managers and containerd know,
			// so removing it is a complete recovery (records that merely
			// do not decode are dropped and rebuilt by the agent itself).
			return fmt.Errorf("the task database %s is damaged (%v). shoald will not start from it. To recover, "+
				"remove it (rm %s) and start shoald again: the node rebuilds it from the managers' assignments "+
				"and re-attaches the containers it runs, without duplicates", path, err, path)
		}
		if err != nil {
			return fmt.Errorf("the database file %s is damaged (%v). shoald will not start from it. To recover, "+
				"restore %s from a backup; or move the data directory away and join the swarm again "+
				"(on another manager: `shoal node rm --force <this node>` first); for a single-manager swarm "+
				"without a backup, move it away and run `shoal swarm init` again", path, err, d.cfg.DataDir)
		}
		return nil
	})
}

// resume restarts the swarm member recorded in the data directory, or
// waits for the unlock key when its keyring is locked (autolock).
func (d *Daemon) resume(ctx context.Context) error {
	certs := pki.NewStore(d.certDir())
	if ok, err := certs.Exists(); err != nil {
		return err
	} else if !ok {
		d.log.Info("not in a swarm; waiting for `shoal swarm init` or `shoal swarm join`")
		return nil
	}
	kr, err := pki.OpenKeyring(d.certDir())
	if err != nil {
		return err
	}
	if !kr.Exists() {
		// A data directory of a release without encryption at rest: its
		// node key and raft log are encrypted as they are opened.
		d.log.Info("encrypting this node's state at rest (first start of a release that does)")
		if kr, err = pki.CreateKeyring(d.certDir()); err != nil {
			return err
		}
	}
	state, err := loadState(d.statePath())
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.state, d.keys = state, kr
	d.mu.Unlock()
	if kr.Locked() {
		id, err := certs.Identity()
		if err != nil {
			return err
		}
		d.mu.Lock()
		d.locked, d.lockedID = true, id
		d.mu.Unlock()
		d.log.Warn("this manager is locked (autolock is on): run `shoal swarm unlock` with the unlock key to start it; until then it serves nothing and its containers keep running",
			"node", id.NodeID, "unlock_key_fingerprint", kr.WrappedWith())
		return nil
	}
	n, err := d.startUnlocked(ctx, state)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.node = n
	d.mu.Unlock()
	return nil
}

// startUnlocked starts the member recorded on disk, whose keyring is open.
func (d *Daemon) startUnlocked(ctx context.Context, state *nodeState) (*nodeRun, error) {
	certs, err := d.certStore()
	if err != nil {
		return nil, err
	}
	st, err := certs.Load()
	if err != nil {
		return nil, err
	}
	n, err := d.start(ctx, st, state, startRestart)
	if err != nil {
		return nil, err
	}
	d.log.Info("resumed swarm membership", "node", st.Identity.NodeID, "role", roleName(st.Identity.Role), "cluster", st.Identity.ClusterID)
	return n, nil
}

func roleName(r api.NodeRole) string {
	if r == api.NodeRole_MANAGER {
		return "manager"
	}
	return "worker"
}

// current returns the running member, nil when not in a swarm.
func (d *Daemon) current() *nodeRun {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.node
}

// errNotInSwarm is what calls needing a swarm get on a node outside one.
var errNotInSwarm = errdefs.New(errdefs.ErrFailedPrecondition,
	"This node is not part of a swarm. Use \"shoal swarm init\" or \"shoal swarm join\" to connect this node to swarm and try again.")

// serveLocal serves the control socket: LocalNode here; every other
// service is proxied to this node's manager over mTLS.
func (d *Daemon) serveLocal() (*grpc.Server, error) {
	path := d.cfg.ControlSocket
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	_ = os.Chmod(path, 0o660)
	s := grpc.NewServer(
		grpc.ChainUnaryInterceptor(errorsUnary),
		grpc.ChainStreamInterceptor(errorsStream),
		grpc.UnknownServiceHandler(d.proxyToManager),
		grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg),
	)
	api.RegisterLocalNodeServer(s, &localNode{d: d})
	go func() { _ = s.Serve(lis) }()
	return s, nil
}

// proxyToManager forwards a CLI call to this node's manager.
func (d *Daemon) proxyToManager(_ any, ss grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(ss)
	n := d.current()
	if n == nil {
		if d.isLocked() {
			return errSwarmLocked
		}
		return errNotInSwarm
	}
	if n.manager == nil {
		return errdefs.ErrNotManager
	}
	conn, err := n.dial(ss.Context(), n.state.AdvertiseAddr)
	if err != nil {
		return err
	}
	return manager.ProxyLocal(ss, conn, method)
}

// maxMsg is the gRPC message cap everywhere.
const maxMsg = 4 << 20

func errorsUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	return resp, errdefs.ToGRPC(err)
}

func errorsStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return errdefs.ToGRPC(h(srv, ss))
}
