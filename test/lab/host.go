package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Host is one lab host: a network namespace with one shoald (or Config.Command) process at a time.
// Its methods are safe for concurrent use.
type Host struct {
	NS
	// Name is "h1", "h2", ...; it is also the process's hostname (each process gets its own UTS namespace).
	Name string
	// Index is N of hN.
	Index int
	// APIAddr is Addr:Port, passed as --listen-addr and --advertise-addr.
	APIAddr string
	// DataDir is the host's --data-dir; it survives Kill, Stop and Restart.
	DataDir string
	// ContainerdNamespace is the host's --containerd-namespace; cleanup empties and removes it.
	ContainerdNamespace string
	// ControlSocket is the host's --control-socket. Unix sockets work across network namespaces: the test
	// process reaches it directly (Shoal, gRPC) without entering the namespace.
	ControlSocket string
	// LogPath receives the process's stdout and stderr, appended across restarts.
	LogPath string
	// Env is added to this host's process environment at its next Start (after Config.Env).
	Env []string

	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{} // closed once cmd is reaped
	waitErr   error
	paused    bool
	lastExtra []string
	starts    int
}

// DefaultArgs is the shoald command line for h, without Config.ExtraArgs and Start's arguments.
func (h *Host) DefaultArgs() []string {
	c := h.lab.cfg
	argv := []string{c.ShoaldPath,
		"--data-dir", h.DataDir,
		"--control-socket", h.ControlSocket,
		"--listen-addr", h.APIAddr,
		"--advertise-addr", h.APIAddr,
		"--containerd-namespace", h.ContainerdNamespace,
		"--log-format", "text",
	}
	if c.ContainerdAddress != "" {
		argv = append(argv, "--containerd-address", c.ContainerdAddress)
	}
	return argv
}

// SocketURL is the control socket as a -H value for the shoal CLI: unix://ControlSocket.
func (h *Host) SocketURL() string { return "unix://" + h.ControlSocket }

// Start starts the host's process inside its namespace (with stdout and stderr appended to LogPath) and
// waits, at most Config.StartTimeout, until the control socket accepts connections. If the process exits
// first, the error carries its exit status and the end of its log; WaitExit then returns its state.
func (h *Host) Start(extra ...string) error {
	c := h.lab.cfg
	h.mu.Lock()
	if h.runningLocked() {
		h.mu.Unlock()
		return fmt.Errorf("lab: %s: already running (pid %d)", h.Name, h.cmd.Process.Pid)
	}
	var argv []string
	if c.Command != nil {
		argv = c.Command(h)
	} else {
		if c.ShoaldPath == "" {
			h.mu.Unlock()
			return fmt.Errorf("lab: %s: Config.ShoaldPath is empty (use lab.BuildShoald)", h.Name)
		}
		argv = h.DefaultArgs()
	}
	argv = append(append(argv, c.ExtraArgs...), extra...)
	f, err := os.OpenFile(h.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		h.mu.Unlock()
		return fmt.Errorf("lab: %s: %w", h.Name, err)
	}
	defer f.Close()
	h.starts++
	fmt.Fprintf(f, "=== lab: %s start #%d at %s: %s\n", h.Name, h.starts,
		time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	// The process enters only the host's network namespace (nsenter --net), not a private mount namespace
	// as `ip netns exec` would make: mounts shoald makes (tmpfs for secrets, netns bind mounts) must be
	// visible to containerd and runc. It gets its own UTS namespace so that its hostname is h.Name. The shell
	// and nsenter exec, so the pid is the daemon's.
	wrapped := append([]string{"--net=" + h.Path(), "--", "sh", "-c",
		`echo "$0" >/proc/sys/kernel/hostname && exec "$@"`, h.Name}, argv...)
	cmd := exec.Command("nsenter", wrapped...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(append(os.Environ(), c.Env...), h.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,            // signals go to the whole group
		Pdeathsig:  syscall.SIGKILL, // dies with the test process, even on a timeout panic
		Cloneflags: syscall.CLONE_NEWUTS,
	}
	if err := spawn(cmd); err != nil {
		h.mu.Unlock()
		return fmt.Errorf("lab: %s: start: %w", h.Name, err)
	}
	done := make(chan struct{})
	h.cmd, h.done, h.waitErr, h.paused, h.lastExtra = cmd, done, nil, false, extra
	go func() {
		err := cmd.Wait()
		h.mu.Lock()
		h.waitErr = err
		h.mu.Unlock()
		close(done)
	}()
	h.mu.Unlock()
	return h.waitReady(done, c.StartTimeout)
}

func (h *Host) waitReady(done chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		select {
		case <-done:
			h.mu.Lock()
			err := h.waitErr
			h.mu.Unlock()
			return fmt.Errorf("lab: %s: exited before its control socket answered (%v); log tail:\n%s",
				h.Name, exitText(err), h.LogTail(20))
		default:
		}
		conn, err := net.DialTimeout("unix", h.ControlSocket, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %s: control socket %s not answering after %v (%v); log tail:\n%s",
				h.Name, h.ControlSocket, timeout, last, h.LogTail(20))
		}
		select {
		case <-done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Kill sends SIGKILL to the host's process group and waits until the process is reaped. Killing a host
// that is not running is not an error.
func (h *Host) Kill() error {
	done, pid := h.current()
	if done == nil {
		return nil
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-done:
		return nil
	case <-time.After(killTimeout):
		return fmt.Errorf("lab: %s: pid %d not gone %v after SIGKILL", h.Name, pid, killTimeout)
	}
}

// Stop sends SIGTERM (and SIGCONT, should the host be paused), waits at most Config.StopTimeout for the
// process to exit, then kills it. Stopping a host that is not running is not an error.
func (h *Host) Stop() error {
	done, pid := h.current()
	if done == nil {
		return nil
	}
	syscall.Kill(-pid, syscall.SIGTERM)
	syscall.Kill(-pid, syscall.SIGCONT)
	select {
	case <-done:
		return nil
	case <-time.After(h.lab.cfg.StopTimeout):
	}
	return h.Kill()
}

// Restart stops the host (Stop) and starts it again with the arguments of its last Start.
func (h *Host) Restart() error {
	if err := h.Stop(); err != nil {
		return err
	}
	h.mu.Lock()
	extra := h.lastExtra
	h.mu.Unlock()
	return h.Start(extra...)
}

// Pause stops the host's process group with SIGSTOP and returns once the daemon is seen stopped.
func (h *Host) Pause() error {
	done, pid := h.current()
	if done == nil {
		return fmt.Errorf("lab: %s: not running", h.Name)
	}
	if err := syscall.Kill(-pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("lab: %s: SIGSTOP: %w", h.Name, err)
	}
	h.mu.Lock()
	h.paused = true
	h.mu.Unlock()
	return Poll(5*time.Second, func() error {
		if st := procState(pid); st != "T" {
			return fmt.Errorf("lab: %s: pid %d in state %q after SIGSTOP", h.Name, pid, st)
		}
		return nil
	})
}

// Resume continues a paused host with SIGCONT.
func (h *Host) Resume() error {
	done, pid := h.current()
	if done == nil {
		return fmt.Errorf("lab: %s: not running", h.Name)
	}
	if err := syscall.Kill(-pid, syscall.SIGCONT); err != nil {
		return fmt.Errorf("lab: %s: SIGCONT: %w", h.Name, err)
	}
	h.mu.Lock()
	h.paused = false
	h.mu.Unlock()
	return nil
}

// Running reports whether the host's process has been started and not yet exited.
func (h *Host) Running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.runningLocked()
}

func (h *Host) runningLocked() bool {
	if h.done == nil {
		return false
	}
	select {
	case <-h.done:
		return false
	default:
		return true
	}
}

// PID is the pid of the running process, or 0.
func (h *Host) PID() int {
	_, pid := h.current()
	return pid
}

func (h *Host) current() (chan struct{}, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.runningLocked() {
		return nil, 0
	}
	return h.done, h.cmd.Process.Pid
}

// WaitExit waits at most timeout for the host's last process to exit and returns its state (whose
// ExitCode and String tell how it ended). It fails if no process was ever started or it is still running.
func (h *Host) WaitExit(timeout time.Duration) (*os.ProcessState, error) {
	h.mu.Lock()
	done, cmd := h.done, h.cmd
	h.mu.Unlock()
	if done == nil {
		return nil, fmt.Errorf("lab: %s: never started", h.Name)
	}
	select {
	case <-done:
		return cmd.ProcessState, nil
	default:
	}
	select {
	case <-done:
		return cmd.ProcessState, nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("lab: %s: pid %d still running after %v", h.Name, cmd.Process.Pid, timeout)
	}
}

func (h *Host) stateString() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.done == nil:
		return "never started"
	case h.runningLocked() && h.paused:
		return fmt.Sprintf("pid %d, paused", h.cmd.Process.Pid)
	case h.runningLocked():
		return fmt.Sprintf("pid %d, running", h.cmd.Process.Pid)
	default:
		return "exited: " + exitText(h.waitErr)
	}
}

// Logs returns the host's whole log (every start of it).
func (h *Host) Logs() string {
	b, _ := os.ReadFile(h.LogPath)
	return string(b)
}

// LogTail returns the last n lines of the host's log.
func (h *Host) LogTail(n int) string {
	b, _ := os.ReadFile(h.LogPath)
	b = bytes.TrimRight(b, "\n")
	for i, k := len(b)-1, 0; i >= 0; i-- {
		if b[i] == '\n' {
			if k++; k == n {
				return string(b[i+1:])
			}
		}
	}
	return string(b)
}

// Shoal runs the shoal CLI (Config.ShoalPath) against the host's control socket from the test process,
// with a bounded time (the context's, or 30s), and returns its standard output. The error includes
// the standard error.
func (h *Host) Shoal(ctx context.Context, args ...string) (string, error) {
	if h.lab.cfg.ShoalPath == "" {
		return "", errors.New("lab: Config.ShoalPath is empty (use lab.BuildShoal)")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.lab.cfg.ShoalPath, append([]string{"-H", h.SocketURL()}, args...)...)
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("shoal %s on %s: %w: %s", strings.Join(args, " "), h.Name, err,
			strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// spawn starts cmd from one OS thread that lives as long as the process: the kernel sends a child its
// parent-death signal when the thread that forked it ends, not the process, so children forked from an
// arbitrary thread could be killed when the Go runtime retires that thread.
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnc = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked
			for r := range spawnc {
				r.done <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd, make(chan error, 1)}
	spawnc <- r
	return <-r.done
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	spawnOnce sync.Once
	spawnc    chan spawnReq
)

// procState is the state letter of /proc/pid/stat ("R", "S", "T", "Z", ...), or "" when there is no such
// process.
func procState(pid int) string {
	f := procStat(pid)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// procStat returns the fields of /proc/pid/stat after the command name (state first).
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return nil
	}
	return strings.Fields(string(b[i+2:]))
}
