package lab_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-project/shoal/test/lab"
)

// The harness is proven without shoald: the test binary itself, run with LAB_STANDIN=1, stands in for the
// daemon. It takes shoald's flags, so it is started through the default command line (Host.DefaultArgs),
// listens on the control socket and on --listen-addr, and answers each connection with one line.

func TestMain(m *testing.M) {
	if os.Getenv("LAB_STANDIN") != "" {
		os.Exit(standin())
	}
	os.Exit(m.Run())
}

func standin() int {
	fs := flag.NewFlagSet("standin", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "")
	sock := fs.String("control-socket", "", "")
	listen := fs.String("listen-addr", "", "")
	adv := fs.String("advertise-addr", "", "")
	fs.String("containerd-namespace", "", "")
	fs.String("containerd-address", "", "")
	fs.String("log-format", "", "")
	fail := fs.Bool("fail", false, "exit 3 at once")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if *fail {
		fmt.Println("standin: failing as asked")
		return 3
	}
	if os.Getenv("LAB_STANDIN_IGNORE_TERM") != "" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		go func() {
			<-c
			fmt.Println("standin: SIGTERM, bye")
			os.Exit(0)
		}()
	}
	hostname, _ := os.Hostname()
	os.WriteFile(filepath.Join(*dataDir, "standin.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644)
	if os.Getenv("LAB_STANDIN_CHILD") != "" {
		// A process that outlives the daemon in the namespace (own session, no parent-death signal).
		child := exec.Command("sleep", "1000")
		child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := child.Start(); err != nil {
			fmt.Println("standin:", err)
			return 1
		}
		os.WriteFile(filepath.Join(*dataDir, "child.pid"), []byte(strconv.Itoa(child.Process.Pid)), 0o644)
	}
	tl, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Println("standin:", err)
		return 1
	}
	os.Remove(*sock)
	ul, err := net.Listen("unix", *sock)
	if err != nil {
		fmt.Println("standin:", err)
		return 1
	}
	fmt.Printf("standin: up on %s, hostname %s\n", *listen, hostname)
	serve := func(ln net.Listener, line string) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, line)
			c.Close()
		}
	}
	go serve(tl, "hello from "+*adv)
	serve(ul, "control "+hostname)
	return 0
}

// standinConfig is a lab of n stand-in hosts.
func standinConfig(n int) lab.Config {
	return lab.Config{
		Hosts:        n,
		ShoaldPath:   os.Args[0],
		Env:          []string{"LAB_STANDIN=1"},
		StartTimeout: 20 * time.Second,
		StopTimeout:  2 * time.Second,
	}
}

// hello connects from inside ns to a host's API address and returns the line it answers.
func hello(from *lab.NS, to *lab.Host) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := from.DialContext(ctx, "tcp", to.APIAddr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read from %s: %w", to.APIAddr, err)
	}
	return strings.TrimSpace(line), nil
}

// reachable fails unless from gets to's greeting.
func reachable(from *lab.NS, to *lab.Host) error {
	got, err := hello(from, to)
	if err != nil {
		return fmt.Errorf("%s -> %s: %w", from.Netns, to.Name, err)
	}
	if want := "hello from " + to.APIAddr; got != want {
		return fmt.Errorf("%s -> %s: got %q, want %q", from.Netns, to.Name, got, want)
	}
	return nil
}

// unreachable fails if from gets an answer from to.
func unreachable(from *lab.NS, to *lab.Host) error {
	if got, err := hello(from, to); err == nil {
		return fmt.Errorf("%s -> %s: answered %q, want no answer", from.Netns, to.Name, got)
	}
	return nil
}

// control reads the greeting on h's control socket, from the test's own namespace.
func control(h *lab.Host) (string, error) {
	c, err := net.DialTimeout("unix", h.ControlSocket, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}
