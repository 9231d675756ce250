package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// NS is a lab network namespace: a host's, or the lab's Outside one.
type NS struct {
	// Netns is the namespace's name (a file in /run/netns).
	Netns string
	// Veth is the root-namespace end of the namespace's link to the lab bridge; inside, the peer is eth0.
	Veth string
	// Addr is the namespace's address on the lab subnet (on eth0).
	Addr netip.Addr

	lab *Lab
}

// Path is the namespace's file, as setns(2) and nsenter --net take it.
func (n *NS) Path() string { return "/run/netns/" + n.Netns }

// Command returns a command that runs argv inside the namespace (only the network namespace is entered).
func (n *NS) Command(ctx context.Context, argv ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.Path(), "--"}, argv...)...)
	cmd.WaitDelay = time.Second
	return cmd
}

// Exec runs argv inside the namespace and returns its combined output. It is bounded by ctx and by 30s.
func (n *NS) Exec(ctx context.Context, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := n.Command(ctx, argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %w: %s", n.Netns, strings.Join(argv, " "), err,
			strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Do runs fn on an OS thread that has entered the namespace, so that sockets fn creates live there. fn
// must create its sockets in its own goroutine (goroutines it starts run in the test's namespace).
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open(n.Path())
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("lab: setns %s: %w", n.Netns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked, so the runtime ends it with this goroutine instead of reusing it.
			errc <- errors.Join(ferr, fmt.Errorf("lab: setns back from %s: %w", n.Netns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// DialContext connects from inside the namespace to address, which must be a literal IP:port ("tcp",
// "tcp4", "udp", "udp4"). Use it for clients the test plays itself, e.g. as a gRPC dialer:
//
//	grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
//		return l.Outside.DialContext(ctx, "tcp", a)
//	})
func (n *NS) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if _, err := netip.ParseAddrPort(address); err != nil {
		return nil, fmt.Errorf("lab: dial in %s: address must be a literal IP:port: %w", n.Netns, err)
	}
	var c net.Conn
	err := n.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, address) // one literal address: no helper goroutines
		return err
	})
	return c, err
}

// Listen listens inside the namespace ("tcp", "tcp4"; address like ":5000" or "IP:port"). The lab closes
// the listener at cleanup if the test has not.
func (n *NS) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab: listen in %s: %w", n.Netns, err)
	}
	n.lab.mu.Lock()
	n.lab.listeners = append(n.lab.listeners, ln)
	n.lab.mu.Unlock()
	return ln, nil
}

// run runs argv in the root namespace, bounded by cmdTimeout, and returns its combined output.
func run(argv ...string) (string, error) { return runInput("", argv...) }

func runInput(stdin string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
