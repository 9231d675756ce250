package service

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

func newRemoveCommand(cli *command.Cli) *cobra.Command {
	return command.NewRemoveCommand(cli, "rm SERVICE [SERVICE...]", "Remove one or more services",
		func(ctx context.Context, c api.ControlClient, ref string) error {
			_, err := c.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: ref})
			return err
		})
}
