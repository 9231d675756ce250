// Package command holds what every shoal subcommand shares: the Cli (streams,
// daemon address, clock, terminal facts), the lazily dialed gRPC client, the
// error types that decide exit codes, and cobra helpers that word usage errors
// the way Docker does.
//
// A Cli is used by one command execution at a time; its client is dialed on
// first use, so commands that do not need the daemon (help, usage errors) never
// touch the socket.
package command

import (
	"context"
	"io"
	"os"
	"sync"
	"time"

	"github.com/shoal-project/shoal/cmd/shoal/internal/clock"
	api "github.com/shoal-project/shoal/proto"
)

// DefaultHost is the daemon's control socket when neither -H nor SHOAL_HOST
// says otherwise.
const DefaultHost = "unix:///run/shoal/shoal.sock"

// DefaultTimeout bounds every unary RPC that has no deadline of its own.
const DefaultTimeout = 30 * time.Second

// Cli is the environment a command runs in.
type Cli struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer

	// OutIsTerminal tells whether Out is a terminal: the converge display
	// redraws in place only then.
	OutIsTerminal bool
	// TermWidth is the width of the terminal behind Out, 0 when unknown.
	TermWidth int

	// Clock gives the time for ages and polling.
	Clock clock.Clock
	// Getenv reads the environment (SHOAL_HOST, bare --env names).
	Getenv func(string) string
	// Timeout bounds unary RPCs; 0 means DefaultTimeout.
	Timeout time.Duration

	// Host is the daemon address as given (-H, SHOAL_HOST or DefaultHost),
	// set by the root command before any subcommand runs.
	Host string

	mu     sync.Mutex
	client *Client
}

// NewCli returns a Cli on the process's standard streams and wall clock.
func NewCli() *Cli {
	return &Cli{
		In:     os.Stdin,
		Out:    os.Stdout,
		Err:    os.Stderr,
		Clock:  clock.Real{},
		Getenv: os.Getenv,
	}
}

// Client returns the daemon client, dialing it on first use.
func (c *Cli) Client() (*Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		return c.client, nil
	}
	host := c.Host
	if host == "" {
		host = DefaultHost
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	cl, err := Dial(host, timeout)
	if err != nil {
		return nil, err
	}
	c.client = cl
	return cl, nil
}

// Control is a shortcut for the Control API client.
func (c *Cli) Control() (api.ControlClient, error) {
	cl, err := c.Client()
	if err != nil {
		return nil, err
	}
	return cl.Control, nil
}

// Close releases the client connection, if any.
func (c *Cli) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		_ = c.client.Close()
		c.client = nil
	}
}

// SelfNodeID returns the ID of the node the CLI talks to (InfoResponse.node_id),
// which "self" stands for in node commands.
func (c *Cli) SelfNodeID(ctx context.Context) (string, error) {
	cl, err := c.Client()
	if err != nil {
		return "", err
	}
	info, err := cl.Local.Info(ctx, &api.InfoRequest{})
	if err != nil {
		return "", err
	}
	return info.GetNodeId(), nil
}

// Env reads an environment variable through Getenv.
func (c *Cli) Env(name string) string {
	if c.Getenv == nil {
		return ""
	}
	return c.Getenv(name)
}
