// Command shoald is the shoal node daemon: one per machine. It is "not in a
// swarm" until `shoal swarm init` or `shoal swarm join`, and resumes its
// swarm membership from --data-dir after a restart. It is flags, a
// node.Config with the containerd executor, and node.Run (package node does
// everything else).
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/dashboard"
	"github.com/shoal-project/shoal/dockerapi"
	"github.com/shoal-project/shoal/internal/logopt"
	"github.com/shoal-project/shoal/node"
	"github.com/shoal-project/shoal/overlay"
	"github.com/shoal-project/shoal/version"
	ctrexec "github.com/shoal-project/shoal/worker/containerd"
)

// flags are shoald's command line beyond node.Config.
type flags struct {
	logLevel, logFormat string
	logOpts             []string
	// exec configures the containerd executor; NodeID and DataDir are
	// filled per node by the node.
	exec ctrexec.Config
	// docker configures the Engine API gateway (dockerapi).
	docker dockerFlags
	// dash configures the web dashboard (package dashboard).
	dash dashFlags
}

// dashFlags are the --dashboard-* flags.
type dashFlags struct {
	addr, tokenFile string
	tls, addrSet    bool
}

// dockerFlags are the --docker-* flags.
type dockerFlags struct {
	socket, tcpAddr          string
	tlsCert, tlsKey, tlsCA   string
	maxBody                  int64
	socketSet, controlSetDir bool
}

func main() {
	cfg := node.DefaultConfig()
	var fl flags
	cmd := &cobra.Command{
		Use:           "shoald",
		Short:         "The shoal node daemon",
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl.docker.socketSet = cmd.Flags().Changed("docker-socket")
			fl.docker.controlSetDir = cmd.Flags().Changed("control-socket")
			fl.dash.addrSet = cmd.Flags().Changed("dashboard-addr")
			if err := fl.complete(&cfg); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return node.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the node's state (certificates, raft log, task database)")
	f.StringVar(&cfg.ListenAddr, "listen-addr", cfg.ListenAddr, "address managers serve the cluster API on (host:port)")
	f.StringVar(&cfg.AdvertiseAddr, "advertise-addr", "", "address other nodes reach this node at (default: derived from --listen-addr)")
	f.StringVar(&cfg.ControlSocket, "control-socket", cfg.ControlSocket, "unix socket the shoal CLI talks to")
	f.StringVar(&fl.exec.Address, "containerd-address", ctrexec.DefaultAddress, "containerd's socket")
	f.StringVar(&fl.exec.Namespace, "containerd-namespace", ctrexec.DefaultNamespace, "containerd namespace for this node's containers")
	f.StringSliceVar(&fl.exec.InsecureRegistries, "insecure-registry", nil, "registry (host[:port] or CIDR) to pull from, and resolve image digests at, over plain HTTP; repeatable")
	f.StringVar(&fl.exec.Bridge, "bridge", "", "name of the node-local bridge for task containers (default shoal0, or shoal-<hash> when --containerd-namespace is not the default)")
	f.StringVar(&fl.exec.Subnet, "subnet", "", "subnet of the node-local bridge (default: a free /20 in 10.213.0.0/16, kept across restarts)")
	f.StringVar(&fl.exec.LogDir, "log-dir", "", "directory for the containers' log files, e.g. on another filesystem than --data-dir (default <data-dir>/executor/logs)")
	f.StringArrayVar(&fl.logOpts, "log-opt", nil, "default log option of the node's tasks, as dockerd's: max-size=SIZE (default 10MiB), max-file=N (default 3); a service's --log-opt overrides it; repeatable")
	f.StringVar(&cfg.Overlay.DataPathAddr, "data-path-addr", "", "address (IPv4 or interface name) for overlay traffic: VXLAN and gossip (default: the advertise address; the data path address of swarm init or swarm join overrides it)")
	f.IntVar(&cfg.Overlay.GossipPort, "gossip-port", cfg.Overlay.GossipPort, "TCP and UDP port of the overlay's gossip (memberlist) on the data path address")
	f.DurationVar(&cfg.RaftTick, "raft-tick", 0, "raft tick (default 100ms; elections after 30 ticks, 3s, or at once when the leader's connection breaks)")
	f.DurationVar(&cfg.HeartbeatPeriod, "heartbeat-period", 0, "override the cluster's agent heartbeat period (testing)")
	f.StringVar(&fl.docker.socket, "docker-socket", dockerapi.DefaultSocket, "unix socket serving the Docker Engine API (swarm subset; mode 0660, group shoal when it exists); empty: none; when --control-socket is moved and this flag is not given, docker.sock next to the control socket")
	f.StringVar(&fl.docker.tcpAddr, "docker-tcp-addr", "", "also serve the Docker Engine API on this host:port, with mutual TLS only (the node's swarm certificate and CA, or --docker-tls-*)")
	f.StringVar(&fl.docker.tlsCert, "docker-tls-cert", "", "certificate (PEM) of the TCP Engine API (with --docker-tls-key and --docker-tls-ca)")
	f.StringVar(&fl.docker.tlsKey, "docker-tls-key", "", "private key (PEM) of --docker-tls-cert")
	f.StringVar(&fl.docker.tlsCA, "docker-tls-ca", "", "CA (PEM) whose certificates TCP Engine API clients must present")
	f.Int64Var(&fl.docker.maxBody, "docker-max-body", dockerapi.DefaultMaxBodyBytes, "largest Engine API request body in bytes (413 beyond)")
	f.StringVar(&fl.dash.addr, "dashboard-addr", dashboard.DefaultAddr, "serve the web dashboard on this host:port; empty: off. A non-loopback address needs --dashboard-token-file or --dashboard-tls. When the default address is taken, the dashboard stays off with a warning")
	f.StringVar(&fl.dash.tokenFile, "dashboard-token-file", "", "file holding the token the dashboard requires (bearer token, login form or /?token=); default on loopback without --dashboard-tls: <data-dir>/dashboard-token, made on first start")
	f.BoolVar(&fl.dash.tls, "dashboard-tls", false, "serve the dashboard over HTTPS with mutual TLS: the node's swarm certificate, and clients must present a certificate the swarm's CA signed")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics (/metrics), /healthz and /readyz on this host:port, e.g. 127.0.0.1:9323; empty (the default): off")
	f.StringVar(&fl.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&fl.logFormat, "log-format", "text", "log format: text or json")
	_ = f.MarkHidden("raft-tick")
	_ = f.MarkHidden("heartbeat-period")
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "shoald: %v\n", err)
		os.Exit(1)
	}
}

// complete turns the flags into the rest of cfg: logger, version and the
// containerd executor.
func (fl *flags) complete(cfg *node.Config) error {
	log, err := newLogger(fl.logLevel, fl.logFormat)
	if err != nil {
		return err
	}
	limits, err := logopt.NodeDefaults(fl.logOpts)
	if err != nil {
		return fmt.Errorf("--log-opt: %w", err)
	}
	if fl.exec.LogDriver, err = findLogDriver(); err != nil {
		return err
	}
	fl.exec.LogMaxSize, fl.exec.LogMaxFile = limits.MaxSize, limits.MaxFile
	fl.exec.Version = version.Version
	if fl.exec.Namespace == "" {
		fl.exec.Namespace = ctrexec.DefaultNamespace
	}
	if fl.exec.Bridge == "" && fl.exec.Namespace != ctrexec.DefaultNamespace {
		// Several daemons on one machine (tests, labs) each need their own
		// bridge; name it after the containerd namespace.
		sum := sha256.Sum256([]byte(fl.exec.Namespace))
		fl.exec.Bridge = "shoal-" + hex.EncodeToString(sum[:])[:8]
	}
	cfg.Logger, cfg.Version = log, version.Version
	cfg.InsecureRegistries = fl.exec.InsecureRegistries
	engine, err := fl.docker.gateway(cfg)
	if err != nil {
		return err
	}
	dash, err := fl.dash.gateway(log, cfg.DataDir)
	if err != nil {
		return err
	}
	cfg.Gateway = node.Gateways(engine, dash)
	base := fl.exec
	cfg.Executor = func(ctx context.Context, nodeID, dir string, ov *overlay.Agent) (node.Executor, error) {
		c := base
		c.NodeID, c.DataDir = nodeID, dir
		if ov != nil { // a nil *Agent in the interface would not be nil
			c.Overlay = ov
		}
		return ctrexec.New(ctx, c)
	}
	return nil
}

// gateway returns the node's Engine API gateway, nil when neither a socket
// nor a TCP address is configured.
func (d *dockerFlags) gateway(cfg *node.Config) (node.GatewayFunc, error) {
	socket := d.socket
	if !d.socketSet && d.controlSetDir {
		// Several daemons on one machine (tests, labs): each serves the
		// Engine API next to its own control socket.
		socket = filepath.Join(filepath.Dir(cfg.ControlSocket), "docker.sock")
	}
	if socket == "" && d.tcpAddr == "" {
		return nil, nil
	}
	var fileTLS *tls.Config
	if d.tlsCert != "" || d.tlsKey != "" || d.tlsCA != "" {
		if d.tcpAddr == "" {
			return nil, errors.New("--docker-tls-cert/--docker-tls-key/--docker-tls-ca need --docker-tcp-addr")
		}
		var err error
		if fileTLS, err = dockerapi.FileTLS(d.tlsCert, d.tlsKey, d.tlsCA); err != nil {
			return nil, err
		}
	}
	if d.maxBody <= 0 {
		return nil, fmt.Errorf("--docker-max-body %d: must be positive", d.maxBody)
	}
	dataDir, log := cfg.DataDir, cfg.Logger
	return func(ctx context.Context, env node.GatewayEnv) error {
		c := dockerapi.Config{Conn: env.Conn, Socket: socket, TCPAddr: d.tcpAddr, Version: version.Version,
			DataDir: dataDir, MaxBodyBytes: d.maxBody, Logger: log, InsecureRegistries: cfg.InsecureRegistries}
		if d.tcpAddr != "" {
			c.TLS = fileTLS
			if c.TLS == nil {
				c.TLS = dockerapi.NodeTLS(env.NodeTLS)
			}
		}
		srv, err := dockerapi.New(c)
		if err != nil {
			return err
		}
		return srv.Serve(ctx)
	}, nil
}

// gateway opens the dashboard's listener now, so that a bad explicit
// address stops shoald at once, and returns the gateway serving it; nil
// when the dashboard is off. The default address, when taken (several
// daemons on one machine), leaves the dashboard off with a warning.
func (d *dashFlags) gateway(log *slog.Logger, dataDir string) (node.GatewayFunc, error) {
	if d.addr == "" {
		return nil, nil
	}
	var token, tokenFile string
	if d.tokenFile == "" && !d.tls && dashboard.IsLoopback(d.addr) {
		// A loopback dashboard still needs a token: any local user can
		// reach loopback, while the control socket is root's.
		var err error
		if token, tokenFile, err = dashboard.LocalToken(dataDir); err != nil {
			return nil, fmt.Errorf("dashboard token: %w (give --dashboard-token-file, or --dashboard-addr \"\" to turn the dashboard off)", err)
		}
	}
	if d.tokenFile != "" {
		tokenFile = d.tokenFile
		b, err := os.ReadFile(d.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--dashboard-token-file: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nil, fmt.Errorf("--dashboard-token-file %s is empty", d.tokenFile)
		}
	}
	if err := dashboard.CheckAuth(d.addr, token != "", d.tls); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", d.addr)
	if err != nil {
		if !d.addrSet {
			log.Warn("the dashboard is off: its default address is not free (give --dashboard-addr)", "addr", d.addr, "err", err)
			return nil, nil
		}
		return nil, fmt.Errorf("--dashboard-addr %s: %w", d.addr, err)
	}
	useTLS := d.tls
	return func(ctx context.Context, env node.GatewayEnv) error {
		defer ln.Close()
		if env.Conn == nil {
			return errors.New("dashboard: no connection to the control socket")
		}
		c := dashboard.Config{Conn: env.Conn, Listener: ln, Token: token, TokenFile: tokenFile, Logger: log}
		if useTLS {
			c.TLS = dashboard.NodeTLS(env.NodeTLS)
		}
		srv, err := dashboard.New(c)
		if err != nil {
			return err
		}
		return srv.Serve(ctx)
	}, nil
}

// logDriverName is the log driver binary (cmd/shoal-logdriver), which
// `make build` and `go build ./cmd/...` put next to shoald.
const logDriverName = "shoal-logdriver"

// findLogDriver returns the log driver binary next to shoald's own
// executable, or, failing that, the one on $PATH. Without one, container
// logs could be neither timed per line nor bounded, so shoald refuses to
// start.
func findLogDriver() (string, error) {
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	var next string
	if err == nil {
		next = filepath.Join(filepath.Dir(self), logDriverName)
		if fi, err := os.Stat(next); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return next, nil
		}
	}
	if p, err := exec.LookPath(logDriverName); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs, nil
		}
	}
	return "", fmt.Errorf("the log driver %s is not next to shoald (%s) nor on $PATH: build it with `make build` (or `go build -o DIR ./cmd/...`) and keep it beside shoald", logDriverName, next)
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, errors.New("--log-format: use text or json")
}
