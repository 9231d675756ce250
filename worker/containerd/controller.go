package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	cerrdefs "github.com/containerd/errdefs"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
)

// labelStopSignal records the resolved stop signal (spec, else image, else
// SIGTERM) on the container, so a controller re-created after a restart
// stops the task the same way without looking at the image again.
const labelStopSignal = "io.shoal.stop-signal"

// startedMarker is written into the task's directory once its process has
// been created, so that a container whose process vanished with a reboot
// is known to have run (Start then answers ErrTaskStarted, not a new run).
const startedMarker = "started"

type controller struct {
	e    *Executor
	task *api.Task
	id   string
	deps worker.Dependencies // may be nil

	// waitCtx outlives the calls of Start: the exit subscription made
	// before the process starts must survive until Wait reads it. Close
	// cancels it.
	waitCtx context.Context
	cancel  context.CancelFunc

	mu    sync.Mutex
	exitc <-chan client.ExitStatus // subscribed by Start, read by Wait
	exit  error                    // Wait's result once the process has exited
	done  bool                     // exit is set

	// Health checks (probe.go): the check recorded at Prepare, the
	// monitor goroutine, whether probing was stopped for good, and the
	// cause once the probes killed the process.
	hc            *healthConfig
	hcRead        bool
	mon           *monitor
	healthStopped bool
	unhealthy     error
}

var (
	_ worker.Controller = (*controller)(nil)
	_ worker.LogSource  = (*controller)(nil)
)

func newController(e *Executor, t *api.Task, deps worker.Dependencies) *controller {
	ctx, cancel := context.WithCancel(e.nsctx(context.Background()))
	return &controller{e: e, task: t, id: t.GetId(), deps: deps, waitCtx: ctx, cancel: cancel}
}

// Prepare pulls the image, sets up the task's network, writes its secrets
// and configs into its tmpfs, records its health check and creates the
// container. The container is created last, as the commit point: a
// Prepare interrupted before it is simply replayed (the other steps are
// idempotent), and after it Prepare answers ErrTaskPrepared. A secret or
// config not on the node yet is a transient error.
func (c *controller) Prepare(ctx context.Context) error {
	ctx = c.e.nsctx(ctx)
	if _, err := c.e.client.LoadContainer(ctx, c.id); err == nil {
		if err := c.overlayEnsure(ctx); err != nil {
			return err
		}
		return worker.ErrTaskPrepared
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("load container %s: %w", c.id, err)
	}
	tc := newTemplateContext(c.task, c.e.cfg.NodeID, c.e.cfg.Hostname)
	// Check the spec before pulling, with a stand-in command, so an invalid
	// spec is rejected without a transfer.
	rs0, err := resolveSpec(c.task, tc, imageDefaults{Cmd: []string{"true"}}, &c.e.cfg)
	if err != nil {
		return worker.Rejected(fmt.Errorf("invalid container spec: %w", err))
	}
	tl, err := c.resolveLog()
	if err != nil {
		return worker.Rejected(fmt.Errorf("invalid log driver: %w", err))
	}
	if c.hasNetworks() && c.e.cfg.Overlay == nil {
		return errNoOverlay
	}
	depBytes, err := depData(c.deps, rs0.Deps)
	if err != nil {
		return err
	}
	img, err := c.e.ensureImage(ctx, c.task.GetSpec().GetContainer().GetImage())
	if err != nil {
		return err
	}
	ispec, ihealth, err := readImageConfig(ctx, img)
	if err != nil {
		return fmt.Errorf("read image config of %s: %w", img.Name(), err)
	}
	rs, err := resolveSpec(c.task, tc, defaultsOf(ispec, ihealth), &c.e.cfg)
	if err != nil {
		return worker.Rejected(fmt.Errorf("invalid container spec: %w", err))
	}

	taskDir := c.e.cfg.taskDir(c.id)
	if err := os.MkdirAll(taskDir, 0o755); err != nil {
		return err
	}
	if err := writeHealth(taskDir, rs.Health); err != nil {
		return c.undoPrepare(ctx, err)
	}
	if err := writeTaskLog(taskDir, tl); err != nil {
		return c.undoPrepare(ctx, err)
	}
	if err := setupDeps(c.e.cfg.secretsDir(c.id), rs.Deps, depBytes); err != nil {
		return c.undoPrepare(ctx, err)
	}
	addr, err := c.e.net.Attach(c.id)
	if err != nil {
		return c.undoPrepare(ctx, fmt.Errorf("attach %s to %s: %w", c.id, c.e.cfg.Bridge, err))
	}
	dns, search, options := rs.DNS, rs.DNSSearch, rs.DNSOptions
	if c.hasNetworks() {
		// eth0 stays the node-local bridge with the default route; the
		// overlays come after it, and names go to the embedded server.
		// Egress through eth0, the bridge, masqueraded (docker_gwbridge's
		// role); made with the node's first overlay task and removed with
		// its last (Executor.egressFor/egressDone).
		if err := c.e.egressFor(c.id); err != nil {
			return c.undoPrepare(ctx, fmt.Errorf("egress of bridge %s: %w", c.e.cfg.Bridge, err))
		}
		c.e.cfg.Overlay.SetHostAddr(c.id, addr.Addr())
		if _, err := c.e.cfg.Overlay.Attach(ctx, c.task, c.e.cfg.netnsPath(c.id)); err != nil {
			return c.undoPrepare(ctx, fmt.Errorf("attach %s to its overlay networks: %w", c.id, err))
		}
		var user []string
		if dc := c.task.GetSpec().GetContainer().GetDnsConfig(); dc != nil {
			user = dc.GetNameservers()
		}
		dns, search, options = overlayDNS(user, search, options)
	} else if c.onOverlay() {
		// Host-mode published ports only: the node's routing mesh serves
		// them with this task's node-local address.
		c.e.cfg.Overlay.SetHostAddr(c.id, addr.Addr())
		if _, err := c.e.cfg.Overlay.Attach(ctx, c.task, c.e.cfg.netnsPath(c.id)); err != nil {
			return c.undoPrepare(ctx, fmt.Errorf("publish the host-mode ports of %s: %w", c.id, err))
		}
	}
	if err := writeEtcFiles(taskDir, rs.Hostname, addr.Addr(), rs.Hosts, dns, search, options); err != nil {
		return c.undoPrepare(ctx, err)
	}
	labels := rs.Labels
	labels[labelStopSignal] = strconv.Itoa(int(rs.StopSignal))
	// From making the volume directories until the container that mounts
	// them exists, a volume removal waits (volumeStore.mu), and then sees
	// the container.
	defer c.e.vols.beginUse()()
	for _, d := range rs.VolumeDirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return c.undoPrepare(ctx, err)
		}
	}
	c.e.vols.record(rs.VolumeDirs)
	_, err = c.e.client.NewContainer(ctx, c.id,
		client.WithImage(img),
		client.WithSnapshotter(c.e.cfg.Snapshotter),
		client.WithNewSnapshot(c.id, img),
		client.WithContainerLabels(labels),
		client.WithRuntime(c.e.cfg.Runtime, nil),
		client.WithNewSpec(rs.ociOpts(c.e.cfg.netnsPath(c.id), taskDir)...),
	)
	switch {
	case err == nil:
		return nil
	case cerrdefs.IsAlreadyExists(err):
		// Another Prepare of the same task won the race; its network is ours.
		return worker.ErrTaskPrepared
	case isUserError(err):
		return c.undoPrepare(ctx, worker.Rejected(fmt.Errorf("create container: %w", err)))
	default:
		return c.undoPrepare(ctx, fmt.Errorf("create container: %w", err))
	}
}

// isUserError tells spec faults that only show when the root filesystem is
// read: a user or group the image does not have.
func isUserError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "no users found") || strings.Contains(s, "no groups found") ||
		strings.Contains(s, "invalid USER value") || strings.Contains(s, "unable to find")
}

// undoPrepare removes what a failed Prepare made and returns err.
func (c *controller) undoPrepare(ctx context.Context, err error) error {
	_ = c.e.client.SnapshotService(c.e.cfg.Snapshotter).Remove(ctx, c.id)
	_ = c.overlayDetach(ctx)
	_ = c.e.net.Detach(c.id)
	_ = teardownDeps(c.e.cfg.secretsDir(c.id))
	_ = os.RemoveAll(c.e.cfg.taskDir(c.id))
	return err
}

// Start creates the task's process and starts it, having subscribed to its
// exit first so a process that ends at once is not missed. With a health
// check it returns only once a probe passed (see awaitHealthy).
func (c *controller) Start(ctx context.Context) error {
	ctx = c.e.nsctx(ctx)
	ctr, err := c.container(ctx)
	if err != nil {
		return err
	}
	task, err := ctr.Task(ctx, nil)
	switch {
	case err == nil:
		st, err := task.Status(ctx)
		if err != nil {
			return fmt.Errorf("status of %s: %w", c.id, err)
		}
		if st.Status != client.Created {
			if st.Status == client.Running {
				c.overlayReattach(ctx)
			}
			return worker.ErrTaskStarted
		}
		// Created but never started: an earlier Start died between the two
		// steps. Finish it.
	case !cerrdefs.IsNotFound(err):
		return fmt.Errorf("load task %s: %w", c.id, err)
	case c.ranBefore():
		return worker.ErrTaskStarted
	default:
		if err := c.restoreDeps(); err != nil {
			return fmt.Errorf("secrets and configs of %s: %w", c.id, err)
		}
		tl, err := c.startLog()
		if err != nil {
			return err
		}
		task, err = ctr.NewTask(ctx, c.logIO(tl))
		if err != nil {
			return fmt.Errorf("create process of %s: %w", c.id, err)
		}
		if err := os.WriteFile(filepath.Join(c.e.cfg.taskDir(c.id), startedMarker), nil, 0o644); err != nil {
			_, _ = task.Delete(ctx, client.WithProcessKill)
			return err
		}
	}
	if err := c.overlayEnsure(ctx); err != nil {
		_, _ = task.Delete(c.e.nsctx(context.WithoutCancel(ctx)), client.WithProcessKill)
		return err
	}
	exitc, err := task.Wait(c.waitCtx)
	if err != nil {
		return fmt.Errorf("wait on %s: %w", c.id, err)
	}
	if err := task.Start(ctx); err != nil {
		_, _ = task.Delete(c.e.nsctx(context.WithoutCancel(ctx)), client.WithProcessKill)
		return fmt.Errorf("start %s: %w", c.id, err)
	}
	started := time.Now()
	// The marker's time is the start of the process, from which a
	// re-created controller counts the health check's start period.
	_ = os.Chtimes(filepath.Join(c.e.cfg.taskDir(c.id), startedMarker), started, started)
	c.mu.Lock()
	c.exitc = exitc
	c.mu.Unlock()
	if err := c.awaitHealthy(ctx, task, started); err != nil {
		return err
	}
	c.overlayServing()
	return nil
}

func (c *controller) ranBefore() bool {
	_, err := os.Stat(filepath.Join(c.e.cfg.taskDir(c.id), startedMarker))
	return err == nil
}

func (c *controller) container(ctx context.Context) (client.Container, error) {
	ctr, err := c.e.client.LoadContainer(ctx, c.id)
	if cerrdefs.IsNotFound(err) {
		return nil, fmt.Errorf("task %s: %w", c.id, worker.ErrTaskNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load container %s: %w", c.id, err)
	}
	return ctr, nil
}

// Wait blocks until the process exits. A controller that did not start the
// process (a daemon restart in between) attaches to it through containerd,
// which also reports the status of a process that ended while no daemon
// watched, and resumes its health checks. A process killed by its health
// check returns an *ExitError whose cause is "container unhealthy: ...".
func (c *controller) Wait(ctx context.Context) error {
	ctx = c.e.nsctx(ctx)
	c.mu.Lock()
	if c.done {
		defer c.mu.Unlock()
		return c.exit
	}
	exitc := c.exitc
	c.mu.Unlock()

	if exitc == nil {
		ctr, err := c.container(ctx)
		if err != nil {
			return err
		}
		task, err := ctr.Task(ctx, nil)
		if cerrdefs.IsNotFound(err) {
			if c.ranBefore() {
				c.overlayGone()
				return c.finish(&worker.ExitError{Code: -1, Cause: errors.New("the process is gone without an exit status (the node restarted while it ran)")})
			}
			return errdefs.FailedPrecondition("task %s: wait before start", c.id)
		}
		if err != nil {
			return fmt.Errorf("load task %s: %w", c.id, err)
		}
		if st, err := task.Status(ctx); err == nil && st.Status == client.Created {
			return errdefs.FailedPrecondition("task %s: wait before start", c.id)
		}
		if exitc, err = task.Wait(ctx); err != nil {
			return fmt.Errorf("wait on %s: %w", c.id, err)
		}
		if st, err := task.Status(ctx); err == nil && st.Status == client.Running {
			c.overlayReattach(ctx)
		}
	}
	c.resumeHealth(ctx)
	select {
	case st := <-exitc:
		// The channel delivers once and is then closed: later calls must
		// attach afresh rather than read its zero value as "exit 0".
		c.mu.Lock()
		if c.exitc == exitc {
			c.exitc = nil
		}
		c.mu.Unlock()
		code, _, err := st.Result()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("wait on %s: %w", c.id, err)
		}
		// The process is gone: out of DNS and the VIPs at once (a no-op
		// after a drain's withdrawal).
		c.overlayGone()
		// Nothing left to probe. A kill by the probes recorded its cause
		// before it was sent, so exitResult sees it.
		c.stopMonitor(true)
		return c.finish(c.exitResult(code))
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *controller) finish(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.exit, c.done = err, true
	return err
}

// exitResult maps an exit code to Wait's result, naming an OOM kill when
// the memory cgroup saw one (cheap: one small file, read only on 137).
func (c *controller) exitResult(code uint32) error {
	c.mu.Lock()
	unhealthy := c.unhealthy
	c.mu.Unlock()
	if unhealthy != nil {
		return &worker.ExitError{Code: int(code), Cause: unhealthy}
	}
	if code == 0 {
		return nil
	}
	e := &worker.ExitError{Code: int(code)}
	if code == 128+uint32(syscall.SIGKILL) && c.oomKilled() {
		e.Cause = errors.New("OOM killed")
	}
	return e
}

// oomKilled reads the oom_kill counter of the task's memory cgroup, which
// stays until the task is deleted. The cgroup path is containerd's default,
// /<namespace>/<id>, under the v1 memory hierarchy or the v2 unified one.
func (c *controller) oomKilled() bool {
	rel := filepath.Join(c.e.cfg.Namespace, c.id)
	for _, f := range []string{
		filepath.Join("/sys/fs/cgroup/memory", rel, "memory.oom_control"),
		filepath.Join("/sys/fs/cgroup", rel, "memory.events"),
	} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, " "); ok && k == "oom_kill" && v != "0" {
				return true
			}
		}
	}
	return false
}

// loadTask returns the task's process, or nil when it has none.
func (c *controller) loadTask(ctx context.Context) (client.Task, error) {
	ctr, err := c.e.client.LoadContainer(ctx, c.id)
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load container %s: %w", c.id, err)
	}
	task, err := ctr.Task(ctx, nil)
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load task %s: %w", c.id, err)
	}
	return task, nil
}

// Shutdown sends the stop signal, then SIGKILL once the stop grace period
// has passed, and returns when the process has exited. A task without a
// running process is already shut down.
func (c *controller) Shutdown(ctx context.Context) error {
	ctx = c.e.nsctx(ctx)
	c.stopMonitor(true) // a stopping process is not an unhealthy one
	task, err := c.loadTask(ctx)
	if err != nil || task == nil {
		return err
	}
	// Out of DNS and every VIP before the stop signal, and long enough
	// for the other nodes to know (Docker's swarm stops first and users
	// see resets and stale names).
	if c.onOverlay() {
		if err := c.e.cfg.Overlay.Draining(ctx, c.task); err != nil && ctx.Err() != nil {
			return err
		}
	}
	sig, grace := c.stopParams(ctx)
	return c.kill(ctx, task, sig, grace)
}

// Terminate kills the process at once and returns when it has exited.
func (c *controller) Terminate(ctx context.Context) error {
	ctx = c.e.nsctx(ctx)
	c.stopMonitor(true)
	c.overlayGone()
	task, err := c.loadTask(ctx)
	if err != nil || task == nil {
		return err
	}
	return c.kill(ctx, task, syscall.SIGKILL, 0)
}

func (c *controller) kill(ctx context.Context, task client.Task, sig syscall.Signal, grace time.Duration) error {
	st, err := task.Status(ctx)
	if err != nil {
		return fmt.Errorf("status of %s: %w", c.id, err)
	}
	if st.Status == client.Stopped {
		return nil
	}
	// A subscription of its own: Wait may be reading the Start one.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exitc, err := task.Wait(wctx)
	if err != nil {
		return fmt.Errorf("wait on %s: %w", c.id, err)
	}
	if err := task.Kill(ctx, sig); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("signal %v to %s: %w", sig, c.id, err)
	}
	if sig != syscall.SIGKILL {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-exitc:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("kill %s: %w", c.id, err)
		}
	}
	select {
	case <-exitc:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopParams returns the stop signal recorded at Prepare (falling back to
// the spec's) and the stop grace period.
func (c *controller) stopParams(ctx context.Context) (syscall.Signal, time.Duration) {
	sig, err := parseSignal(c.task.GetSpec().GetContainer().GetStopSignal())
	if err != nil {
		sig = syscall.SIGTERM
	}
	if ctr, err := c.e.client.LoadContainer(ctx, c.id); err == nil {
		if labels, err := ctr.Labels(ctx); err == nil {
			if n, err := strconv.Atoi(labels[labelStopSignal]); err == nil && n > 0 {
				sig = syscall.Signal(n)
			}
		}
	}
	return sig, stopGrace(c.task)
}

// stopGrace is the task's stop grace period: the spec's, else 10s. A
// period too long for time.Duration is clamped to the longest one (about
// 292 years), never wrapped around (durationpb.AsDuration clamps), so a
// huge value waits long rather than not at all. The agent caps it for the
// tasks of a removed service (worker.Config.RemovedServiceStopGrace).
func stopGrace(t *api.Task) time.Duration {
	if g := t.GetSpec().GetContainer().GetStopGracePeriod(); g != nil && g.AsDuration() >= 0 {
		return g.AsDuration()
	}
	return defaultStopGrace
}

// Remove deletes the process (killing it if it runs), the container with its
// snapshot, the network namespace, veth and address, the secrets tmpfs, the
// task's files and its log. Each step tolerates what is already gone, so
// Remove can be replayed after a failure or a crash.
func (c *controller) Remove(ctx context.Context) error {
	ctx = c.e.nsctx(ctx)
	c.stopMonitor(true)
	var errs []error
	ctr, err := c.e.client.LoadContainer(ctx, c.id)
	switch {
	case err == nil:
		if task, err := ctr.Task(ctx, nil); err == nil {
			if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !cerrdefs.IsNotFound(err) {
				return fmt.Errorf("delete process of %s: %w", c.id, err)
			}
		} else if !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("load task %s: %w", c.id, err)
		}
		if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("delete container %s: %w", c.id, err)
		}
	case !cerrdefs.IsNotFound(err):
		return fmt.Errorf("load container %s: %w", c.id, err)
	}
	// A crash between creating the snapshot and the container leaves the
	// snapshot alone.
	if err := c.e.client.SnapshotService(c.e.cfg.Snapshotter).Remove(ctx, c.id); err != nil && !cerrdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("remove snapshot %s: %w", c.id, err))
	}
	if err := c.overlayDetach(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := c.e.net.Detach(c.id); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.removeLogs()...)
	// Unmounted by path, so a controller re-created after a restart does it
	// too; the task's directory only goes once nothing is mounted in it.
	if err := teardownDeps(c.e.cfg.secretsDir(c.id)); err != nil {
		errs = append(errs, err)
	} else if err := os.RemoveAll(c.e.cfg.taskDir(c.id)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Status reports the container ID, the process's pid while it exists, its
// exit code once it has exited, and the task's addresses in CIDR form: on
// the node-local bridge, then on its overlay networks.
func (c *controller) Status(ctx context.Context) (*api.ContainerStatus, error) {
	ctx = c.e.nsctx(ctx)
	ctr, err := c.container(ctx)
	if err != nil {
		return nil, err
	}
	st := &api.ContainerStatus{ContainerId: ctr.ID()}
	if a, ok := c.e.net.Address(c.id); ok {
		st.Addresses = []string{a.String()}
	}
	if c.onOverlay() {
		for _, a := range c.e.cfg.Overlay.Addresses(c.id) {
			st.Addresses = append(st.Addresses, a.String())
		}
	}
	task, err := ctr.Task(ctx, nil)
	if cerrdefs.IsNotFound(err) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load task %s: %w", c.id, err)
	}
	st.Pid = int32(task.Pid())
	ts, err := task.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", c.id, err)
	}
	if ts.Status == client.Stopped {
		st.ExitCode = int32(ts.ExitStatus)
	}
	return st, nil
}

// Close stops the health checks and ends the controller's exit
// subscription. The container stays.
func (c *controller) Close() error {
	c.stopMonitor(true)
	c.cancel()
	return nil
}
