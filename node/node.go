package node

import (
	"context"
	"errors"
	"fmt"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/boltcheck"
	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
)

// Node is one shoal node. Create it with New and run it with Run.
type Node struct {
	cfg     Config
	log     *slog.Logger
	ready   chan struct{} // closed once the control socket serves
	started atomic.Bool

	bg sync.WaitGroup // goroutines a member hands work to (role change, removal)

	mu      sync.Mutex
	ctx     context.Context // Run's context
	member  *member         // the swarm member, nil when not in a swarm
	state   *nodeState
	pending bool // an init, join, leave, unlock or role change is in progress
	// idle is closed when pending clears (made when it is set).
	idle    chan struct{}
	closing bool // Run is stopping: spawn starts nothing
	// keys is the node's keyring while it is in a swarm (lock.go).
	keys *pki.Keyring
	// locked: in a swarm, but the keyring waits for the unlock key; nothing
	// runs but the control socket. lockedID is the identity its
	// certificate names.
	locked   bool
	lockedID pki.Identity
	// resuming: Run is restarting the member recorded in the data
	// directory (opening its raft log can take seconds); calls get
	// errResuming, not "not part of a swarm", and no init or join runs.
	resuming bool
	// registry holds the node's metrics (metrics.go); metricsAddr is
	// where they are served, "" when off.
	registry    *prometheus.Registry
	grpcMetrics *grpcprom.ServerMetrics
	metricsAddr string
	// resumeHook, set by tests before Run, runs while resuming.
	resumeHook func()
}

// New checks cfg and returns a node; Run starts it.
func New(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, ready: make(chan struct{})}
	n.grpcMetrics = newGRPCMetrics()
	n.registry = n.newRegistry()
	return n, nil
}

// Run serves until ctx ends, then stops everything it started and waits.
// It fails at once, naming the file and the recovery, when the data
// directory holds damaged state. Run may be called once.
func Run(ctx context.Context, cfg Config) error {
	n, err := New(cfg)
	if err != nil {
		return err
	}
	return n.Run(ctx)
}

// Ready is closed once Run serves the control socket and has resumed the
// swarm recorded in the data directory (if any).
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Run serves until ctx ends. See the package function Run.
func (n *Node) Run(ctx context.Context) error {
	if !n.started.CompareAndSwap(false, true) {
		return errors.New("node: Run called twice")
	}
	if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	lock, err := n.lockDataDir()
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := n.checkFiles(); err != nil {
		return err
	}
	n.mu.Lock()
	n.ctx = ctx
	n.mu.Unlock()
	local, err := n.serveLocal()
	if err != nil {
		return err
	}
	defer local.Stop()
	stopMetrics, err := n.startMetrics()
	if err != nil {
		return err
	}
	defer stopMetrics()
	if err := n.resume(ctx); err != nil {
		return err
	}
	gwDone, stopGateway, err := n.startGateway(ctx)
	if err != nil {
		return err
	}
	close(n.ready)
	var gwErr error
	select {
	case <-ctx.Done():
	case gwErr = <-gwDone:
		if gwErr != nil {
			n.log.Error("the gateway failed; stopping the node", "err", gwErr)
		}
	}
	stopGateway() // before the member: requests in flight still reach it
	n.mu.Lock()
	n.closing = true
	n.mu.Unlock()
	n.stopMember()
	n.bg.Wait()
	n.stopMember() // one a role change started meanwhile
	return gwErr
}

// stopMember stops the running member, if any, and waits for it.
func (n *Node) stopMember() {
	n.mu.Lock()
	mb := n.member
	n.member = nil
	n.mu.Unlock()
	if mb != nil {
		mb.stop()
	}
}

// spawn runs fn in a goroutine Run waits for; once Run is stopping, fn
// does not run.
func (n *Node) spawn(fn func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		return
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		fn()
	}()
}

// lockDataDir makes sure one node owns the data directory.
func (n *Node) lockDataDir() (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(n.cfg.DataDir, "shoald.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory %s is in use by another shoald (lock %s): %v", n.cfg.DataDir, f.Name(), err)
	}
	return f, nil
}

// checkFiles checks every database file before anything opens it, so a
// damaged one stops the node with its name instead of later, deep inside
// a component.
func (n *Node) checkFiles() error {
	return filepath.WalkDir(n.cfg.DataDir, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || filepath.Ext(path) != ".db" {
			return err
		}
		err = boltcheck.Check(path)
		if err != nil && path == filepath.Join(n.workerDir(), "tasks.db") {
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
				"without a backup, move it away and run `shoal swarm init` again", path, err, n.cfg.DataDir)
		}
		return nil
	})
}

// resume restarts the swarm member recorded in the data directory, or
// waits for the unlock key when its keyring is locked (autolock).
func (n *Node) resume(ctx context.Context) error {
	certs := pki.NewStore(n.certDir())
	if ok, err := certs.Exists(); err != nil {
		return err
	} else if !ok {
		n.log.Info("not in a swarm; waiting for `shoal swarm init` or `shoal swarm join`")
		return nil
	}
	kr, err := pki.OpenKeyring(n.certDir())
	if err != nil {
		return err
	}
	if !kr.Exists() {
		// A data directory of a release without encryption at rest: its
		// node key and raft log are encrypted as they are opened.
		n.log.Info("encrypting this node's state at rest (first start of a release that does)")
		if kr, err = pki.CreateKeyring(n.certDir()); err != nil {
			return err
		}
	}
	state, err := loadState(n.statePath())
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.state, n.keys = state, kr
	n.resuming = !kr.Locked()
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.resuming = false
		n.mu.Unlock()
	}()
	if kr.Locked() {
		id, err := certs.Identity()
		if err != nil {
			return err
		}
		n.mu.Lock()
		n.locked, n.lockedID = true, id
		n.mu.Unlock()
		n.log.Warn("this manager is locked (autolock is on): run `shoal swarm unlock` with the unlock key to start it; until then it serves nothing and its containers keep running",
			"node", id.NodeID, "unlock_key_fingerprint", kr.WrappedWith())
		return nil
	}
	if n.resumeHook != nil {
		n.resumeHook()
	}
	mb, err := n.startRecorded(ctx, state)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.member = mb
	n.mu.Unlock()
	return nil
}

// startRecorded starts the member recorded on disk, whose keyring is open.
func (n *Node) startRecorded(ctx context.Context, state *nodeState) (*member, error) {
	certs, err := n.certStore()
	if err != nil {
		return nil, err
	}
	st, err := certs.Load()
	if err != nil {
		return nil, err
	}
	mb, err := n.start(ctx, st, state, startRestart, "")
	if err != nil {
		return nil, err
	}
	n.log.Info("resumed swarm membership", "node", st.Identity.NodeID, "role", roleName(st.Identity.Role), "cluster", st.Identity.ClusterID)
	return mb, nil
}

func roleName(r api.NodeRole) string {
	if r == api.NodeRole_MANAGER {
		return "manager"
	}
	return "worker"
}

// current returns the running member, nil when not in a swarm.
func (n *Node) current() *member {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.member
}

// runCtx is Run's context.
func (n *Node) runCtx() context.Context {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ctx
}

// reserve marks the node busy with a change of what runs (init, join,
// leave, unlock, role change), if check (called with n.mu held) allows it
// given the node's state; busy is the error when another change is under
// way. release undoes it.
func (n *Node) reserve(busy string, check func() error) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := check(); err != nil {
		return err
	}
	if n.pending {
		return errdefs.FailedPrecondition("%s", busy)
	}
	n.pending, n.idle = true, make(chan struct{})
	return nil
}

// reserveWait is reserve that first waits, up to wait (bounded by ctx),
// for an operation in progress to end: a `swarm leave` typed just after
// a demotion meets the role change still restarting the member.
func (n *Node) reserveWait(ctx context.Context, wait time.Duration, busy string, check func() error) error {
	timeout := n.cfg.Clock.After(wait)
	for {
		n.mu.Lock()
		if !n.pending {
			defer n.mu.Unlock()
			if err := check(); err != nil {
				return err
			}
			n.pending, n.idle = true, make(chan struct{})
			return nil
		}
		idle := n.idle
		n.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return n.reserve(busy, check)
		case <-timeout:
			return n.reserve(busy, check)
		}
	}
}

func (n *Node) release() {
	n.mu.Lock()
	n.pending = false
	if n.idle != nil {
		close(n.idle)
		n.idle = nil
	}
	n.mu.Unlock()
}

// errResuming is what calls get while the node restarts its recorded
// swarm membership.
var errResuming = errdefs.New(errdefs.ErrUnavailable,
	"This node is starting: it is resuming its swarm membership from its data directory. Try again in a moment.")

// errNotInSwarm is what calls needing a swarm get on a node outside one.
var errNotInSwarm = errdefs.New(errdefs.ErrFailedPrecondition,
	"This node is not part of a swarm. Use \"shoal swarm init\" or \"shoal swarm join\" to connect this node to swarm and try again.")
