package node

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

func newPromoteCommand(cli *command.Cli) *cobra.Command {
	return &cobra.Command{
		Use:   "promote NODE [NODE...]",
		Short: "Promote one or more nodes to manager in the swarm",
		Args:  command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return changeRole(cmd, cli, args, api.NodeRole_MANAGER,
				"Node %s is already a manager.\n", "Node %s promoted to a manager in the swarm.\n")
		},
	}
}

func newDemoteCommand(cli *command.Cli) *cobra.Command {
	return &cobra.Command{
		Use:   "demote NODE [NODE...]",
		Short: "Demote one or more nodes from manager in the swarm",
		Args:  command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return changeRole(cmd, cli, args, api.NodeRole_WORKER,
				"Node %s is already a worker.\n", "Manager %s demoted in the swarm.\n")
		},
	}
}

// changeRole sets each node's desired role, saying so per node; a node that
// already has the role is left alone.
func changeRole(cmd *cobra.Command, cli *command.Cli, refs []string, role api.NodeRole, already, done string) error {
	c, err := cli.Control()
	if err != nil {
		return err
	}
	for _, ref := range refs {
		err := updateNode(cmd.Context(), cli, c, ref, func(_ *api.Node, spec *api.NodeSpec) error {
			if spec.GetDesiredRole() == role {
				fmt.Fprintf(cli.Out, already, ref)
				return errNoChange
			}
			spec.DesiredRole = role
			return nil
		})
		if errors.Is(err, errNoChange) {
			continue
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(cli.Out, done, ref)
	}
	return nil
}
