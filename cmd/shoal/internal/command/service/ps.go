package service

import (
	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/task"
	api "github.com/shoal-project/shoal/proto"
)

func newPsCommand(cli *command.Cli) *cobra.Command {
	o := task.NewPsOptions()
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS] SERVICE [SERVICE...]",
		Short: "List the tasks of one or more services",
		Args:  command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			id := func(c api.ControlClient, ref string) (string, error) {
				resp, err := c.GetService(ctx, &api.GetServiceRequest{ServiceId: ref})
				return resp.GetService().GetId(), err
			}
			return o.Of(ctx, cli, "service", args, id, func(lf *api.ListFilters, ids []string) { lf.ServiceIds = ids })
		},
	}
	o.AddFlags(cmd, "Pretty-print tasks using a Go template")
	return cmd
}
