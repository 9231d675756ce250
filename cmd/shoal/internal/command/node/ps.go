package node

import (
	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/task"
	api "github.com/shoal-project/shoal/proto"
)

func newPsCommand(cli *command.Cli) *cobra.Command {
	o := task.NewPsOptions()
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS] [NODE...]",
		Short: "List tasks running on one or more nodes, defaults to current node",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"self"}
			}
			ctx := cmd.Context()
			id := func(c api.ControlClient, ref string) (string, error) {
				n, err := getNode(ctx, cli, c, ref)
				return n.GetId(), err
			}
			return o.Of(ctx, cli, "node", args, id, func(lf *api.ListFilters, ids []string) {
				lf.NodeIds = append(lf.NodeIds, ids...)
			})
		},
	}
	o.AddFlags(cmd, "Pretty-print tasks using a Go template")
	return cmd
}
