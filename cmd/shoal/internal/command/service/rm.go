package service

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

func newRemoveCommand(cli *command.Cli) *cobra.Command {
	return &cobra.Command{
		Use:     "rm SERVICE [SERVICE...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more services",
		Args:    command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cli.Control()
			if err != nil {
				return err
			}
			var errs []string
			for _, ref := range args {
				if _, err := c.RemoveService(cmd.Context(), &api.RemoveServiceRequest{ServiceId: ref}); err != nil {
					if command.IsConnectError(err) {
						return err
					}
					errs = append(errs, err.Error())
					continue
				}
				fmt.Fprintln(cli.Out, ref)
			}
			return command.JoinErrors(errs)
		},
	}
}
