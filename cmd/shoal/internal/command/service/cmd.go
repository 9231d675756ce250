// Package service holds `shoal service create|update|scale|rollback|ls|ps|
// inspect|logs|rm`.
package service

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/progress"
	api "github.com/shoal-project/shoal/proto"
)

// NewCommand returns `shoal service`.
func NewCommand(cli *command.Cli) *cobra.Command {
	return command.NewGroup("service", "Manage Swarm services",
		newCreateCommand(cli),
		newUpdateCommand(cli),
		newScaleCommand(cli),
		newRollbackCommand(cli),
		newListCommand(cli),
		newPsCommand(cli),
		newInspectCommand(cli),
		newLogsCommand(cli),
		newRemoveCommand(cli),
	)
}

// convergeHelp is appended to the help of the commands that wait.
const convergeHelp = `

Unless -d is given, the command follows the service until its tasks run
(the converge display, redrawn in place on a terminal). It gives up with an
error when no task has changed state for 10 minutes; the operation then
continues in the background. Ctrl-C stops following, not the operation.`

// waitOnService shows the converge display for one service; name is how
// the user named it. With quiet the display is not shown but still waited for.
func waitOnService(ctx context.Context, cli *command.Cli, c api.ControlClient, id, name string, quiet bool) error {
	out := cli.Out
	if quiet {
		out = io.Discard
	}
	return progress.Wait(ctx, c, id, name, progress.Options{
		Out:   out,
		TTY:   cli.OutIsTerminal && !quiet,
		Width: cli.TermWidth,
		Clock: cli.Clock,
	})
}

// printWarnings writes the daemon's warnings on stderr.
func printWarnings(cli *command.Cli, warnings []string) {
	for _, w := range warnings {
		_, _ = io.WriteString(cli.Err, w+"\n")
	}
}
