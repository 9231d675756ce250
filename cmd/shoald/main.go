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
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoald/internal/daemon"
	"github.com/shoal-project/shoal/version"
	"github.com/shoal-project/shoal/worker/containerd/logdriver"
)

func main() {
	// Hidden: `shoald log-driver PATH` is the log driver the containerd
	// shim runs beside each task (see worker/containerd/logdriver); it is
	// handled before the command line is parsed and never returns.
	if len(os.Args) > 1 && os.Args[1] == logdriver.Command {
		logdriver.Main(os.Args[2:])
	}
	var cfg daemon.Config
	var logLevel, logFormat string
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
	f.DurationVar(&cfg.RaftTick, "raft-tick", 0, "raft tick (default 100ms; election after 10 ticks)")
	f.DurationVar(&cfg.HeartbeatPeriod, "heartbeat-period", 0, "override the cluster's agent heartbeat period (testing)")
	f.Uint64Var(&cfg.RaftSnapshotInterval, "raft-snapshot-interval", 0, "raft entries between snapshots (default 10000; testing)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	_ = f.MarkHidden("raft-tick")
	_ = f.MarkHidden("heartbeat-period")
	_ = f.MarkHidden("raft-snapshot-interval")
	if err := cmd.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "shoald: %v\n", err)
		os.Exit(1)
	}
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
