package node

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

func newRemoveCommand(cli *command.Cli) *cobra.Command {
	var force bool
	cmd := command.NewRemoveCommand(cli, "rm [OPTIONS] NODE [NODE...]", "Remove one or more nodes from the swarm",
		func(ctx context.Context, c api.ControlClient, ref string) error {
			id, err := nodeID(ctx, cli, ref)
			if err == nil {
				_, err = c.RemoveNode(ctx, &api.RemoveNodeRequest{NodeId: id, Force: force})
			}
			return err
		})
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force remove a node from the swarm")
	return cmd
}
