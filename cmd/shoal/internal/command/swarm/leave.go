package swarm

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

func newLeaveCommand(cli *command.Cli) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "leave [OPTIONS]",
		Short: "Leave the swarm",
		Args:  command.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := cli.Client()
			if err != nil {
				return err
			}
			if _, err := cl.Local.Leave(cmd.Context(), &api.LeaveRequest{Force: force}); err != nil {
				return err
			}
			fmt.Fprintln(cli.Out, "Node left the swarm.")
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force this node to leave the swarm, ignoring warnings")
	return cmd
}
