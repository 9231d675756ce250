// Command shoald is the shoal node daemon: one per machine. It is "not in a
// swarm" until `shoal swarm init` or `shoal swarm join`, and resumes its
// swarm membership from --data-dir after a restart.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoald/internal/daemon"
	"github.com/shoal-project/shoal/internal/logopt"
	"github.com/shoal-project/shoal/version"
)

func main() {
	var cfg daemon.Config
	var logLevel, logFormat string
	var logOpts []string
	cmd := &cobra.Command{
		Use:           "shoald",
		Short:         "The shoal node daemon",
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			cfg.Logger = log
			if cfg.LogLimits, err = logopt.NodeDefaults(logOpts); err != nil {
				return fmt.Errorf("--log-opt: %w", err)
			}
			if cfg.LogDriver, err = findLogDriver(); err != nil {
				return err
			}
			cfg.Version = "shoald " + version.Version
			d, err := daemon.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return d.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "/var/lib/shoal", "directory for the node's state (certificates, raft log, task database)")
	f.StringVar(&cfg.ListenAddr, "listen-addr", "0.0.0.0:4242", "address managers serve the cluster API on (host:port)")
	f.StringVar(&cfg.AdvertiseAddr, "advertise-addr", "", "address other nodes reach this node at (default: derived from --listen-addr)")
	f.StringVar(&cfg.ControlSocket, "control-socket", "/run/shoal/shoal.sock", "unix socket the shoal CLI talks to")
	f.StringVar(&cfg.ContainerdAddress, "containerd-address", "/run/containerd/containerd.sock", "containerd's socket")
	f.StringVar(&cfg.ContainerdNamespace, "containerd-namespace", "shoal", "containerd namespace for this node's containers")
	f.StringSliceVar(&cfg.InsecureRegistries, "insecure-registry", nil, "registry (host[:port]) to pull from over plain HTTP; repeatable")
	f.StringVar(&cfg.Bridge, "bridge", "", "name of the node-local bridge for task containers (default shoal0, or shoal-<hash> when --containerd-namespace is not the default)")
	f.StringVar(&cfg.Subnet, "subnet", "", "subnet of the node-local bridge (default: a free /24 in 10.213.0.0/16)")
	f.StringVar(&cfg.LogDir, "log-dir", "", "directory for the containers' log files, e.g. on another filesystem than --data-dir (default <data-dir>/executor/logs)")
	f.StringArrayVar(&logOpts, "log-opt", nil, "default log option of the node's tasks, as dockerd's: max-size=SIZE (default 10MiB), max-file=N (default 3); a service's --log-opt overrides it; repeatable")
	f.DurationVar(&cfg.RaftTick, "raft-tick", 0, "raft tick (default 100ms; election after 10 ticks)")
	f.DurationVar(&cfg.HeartbeatPeriod, "heartbeat-period", 0, "override the cluster's agent heartbeat period (testing)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	_ = f.MarkHidden("raft-tick")
	_ = f.MarkHidden("heartbeat-period")
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "shoald: %v\n", err)
		os.Exit(1)
	}
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

var _ = time.Second
