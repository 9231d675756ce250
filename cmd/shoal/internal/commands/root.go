// Package commands assembles the shoal command tree and runs it: it is what
// main calls, and what the CLI's tests drive with a fake daemon.
package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	configcmd "github.com/shoal-project/shoal/cmd/shoal/internal/command/config"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/network"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/node"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/secret"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/service"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/stack"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/swarm"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/system"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/volume"
	"github.com/shoal-project/shoal/version"
)

// NewRootCommand builds the whole command tree on cli.
func NewRootCommand(cli *command.Cli) *cobra.Command {
	var (
		host        string
		showVersion bool
	)
	root := &cobra.Command{
		Use:           "shoal [OPTIONS] COMMAND [ARG...]",
		Short:         "A self-sufficient container orchestrator, driven like Docker swarm mode",
		SilenceUsage:  true,
		SilenceErrors: true,
		// Global flags come before the command, as with docker -H; this lets
		// `service create --host` keep its own meaning.
		TraverseChildren: true,
		Args:             cobra.ArbitraryArgs,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			h := host
			if !cmd.Root().Flags().Changed("host") {
				if env := cli.Env("SHOAL_HOST"); env != "" {
					h = env
				}
			}
			if _, _, err := command.ParseHost(h); err != nil {
				return err
			}
			cli.Host = h
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if showVersion {
				fmt.Fprintf(cli.Out, "shoal version %s%s\n", version.Version, buildSuffix())
				return nil
			}
			return command.GroupRunE(cmd, args)
		},
	}
	root.Flags().StringVarP(&host, "host", "H", command.DefaultHost,
		"Daemon socket to connect to (unix:///path; env SHOAL_HOST)")
	root.Flags().BoolVarP(&showVersion, "version", "v", false, "Print version information and quit")
	root.SetFlagErrorFunc(command.FlagErrorFunc)
	root.CompletionOptions.HiddenDefaultCmd = true
	root.AddCommand(
		swarm.NewCommand(cli),
		node.NewCommand(cli),
		service.NewCommand(cli),
		stack.NewCommand(cli),
		secret.NewCommand(cli),
		configcmd.NewCommand(cli),
		network.NewCommand(cli),
		volume.NewCommand(cli),
		system.NewVersionCommand(cli),
		system.NewInfoCommand(cli),
		system.NewEventsCommand(cli),
		system.NewStatsCommand(cli),
	)
	setUsage(root)
	return root
}

func buildSuffix() string {
	if version.GitCommit == "" {
		return ""
	}
	return ", build " + version.GitCommit
}

// Run executes args and returns the process exit status. Errors are printed
// on cli.Err: usage errors as Docker words them (status 125 for flags the
// parser refused), everything else as its message (status 1). A run ended by
// Ctrl-C exits with 130.
func Run(ctx context.Context, cli *command.Cli, args []string) int {
	root := NewRootCommand(cli)
	root.SetArgs(args)
	root.SetIn(cli.In)
	root.SetOut(cli.Out)
	root.SetErr(cli.Err)
	err := root.ExecuteContext(ctx)
	cli.Close()
	if err == nil {
		return 0
	}
	var se command.StatusError
	if errors.As(err, &se) {
		if se.Status != "" {
			fmt.Fprintln(cli.Err, se.Status)
		}
		if se.Code == 0 {
			return 1
		}
		return se.Code
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return 130
	}
	fmt.Fprintln(cli.Err, err)
	return 1
}
