// Package node holds `shoal node ls|inspect|ps|update|promote|demote|rm`.
package node

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

// NewCommand returns `shoal node`.
func NewCommand(cli *command.Cli) *cobra.Command {
	return command.NewGroup("node", "Manage Swarm nodes",
		newListCommand(cli),
		newInspectCommand(cli),
		newPsCommand(cli),
		newUpdateCommand(cli),
		newPromoteCommand(cli),
		newDemoteCommand(cli),
		newRemoveCommand(cli),
	)
}

// nodeID maps "self" to the local node's ID; other refs go to the daemon
// as they are (ID, unique prefix or hostname).
func nodeID(ctx context.Context, cli *command.Cli, ref string) (string, error) {
	if ref == "self" {
		return cli.SelfNodeID(ctx)
	}
	return ref, nil
}

// getNode fetches a node by ID, prefix, hostname or "self".
func getNode(ctx context.Context, cli *command.Cli, c api.ControlClient, ref string) (*api.Node, error) {
	id, err := nodeID(ctx, cli, ref)
	if err != nil {
		return nil, err
	}
	resp, err := c.GetNode(ctx, &api.GetNodeRequest{NodeId: id})
	if err != nil {
		return nil, err
	}
	return resp.GetNode(), nil
}
