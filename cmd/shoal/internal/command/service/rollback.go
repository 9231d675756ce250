package service

import (
	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
)

func newRollbackCommand(cli *command.Cli) *cobra.Command {
	var detach, quiet bool
	cmd := &cobra.Command{
		Use:   "rollback [OPTIONS] SERVICE",
		Short: "Revert changes to a service's configuration",
		Long:  "Revert changes to a service's configuration" + convergeHelp,
		Args:  command.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := args[0]
			ctx := cmd.Context()
			c, err := cli.Control()
			if err != nil {
				return err
			}
			return updateService(ctx, cli, c, ref, detach, quiet, rollback)
		},
	}
	cmd.Flags().BoolVarP(&detach, flagDetach, "d", false, "Exit immediately instead of waiting for the service to converge")
	cmd.Flags().BoolVarP(&quiet, flagQuiet, "q", false, "Suppress progress output")
	return cmd
}
