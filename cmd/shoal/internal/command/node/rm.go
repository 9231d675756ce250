package node

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

func newRemoveCommand(cli *command.Cli) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] NODE [NODE...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more nodes from the swarm",
		Args:    command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := cli.Control()
			if err != nil {
				return err
			}
			var errs []string
			for _, ref := range args {
				id, err := nodeID(ctx, cli, ref)
				if err == nil {
					_, err = c.RemoveNode(ctx, &api.RemoveNodeRequest{NodeId: id, Force: force})
				}
				if err != nil {
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
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force remove a node from the swarm")
	return cmd
}
