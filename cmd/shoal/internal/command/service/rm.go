package service

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

func newRemoveCommand(cli *command.Cli) *cobra.Command {
	cmd := command.NewRemoveCommand(cli, "rm SERVICE [SERVICE...]", "Remove one or more services",
		func(ctx context.Context, c api.ControlClient, ref string) error {
			_, err := c.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: ref})
			return err
		})
	cmd.Long = "Remove one or more services" + removeHelp
	return cmd
}

// removeHelp states the bound on a removal (worker.Config.RemovedServiceStopGrace).
const removeHelp = `

The service's containers get their stop signal and stop grace period, but
at most 1 minute: a container still running a minute after the removal
reached its node is killed, then removed.`
