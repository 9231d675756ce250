package service

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/task"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func newPsCommand(cli *command.Cli) *cobra.Command {
	var (
		po     task.PrintOptions
		filter = opts.NewFilter()
	)
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS] SERVICE [SERVICE...]",
		Short: "List the tasks of one or more services",
		Args:  command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := filter.Validate("id", "name", "node", "desired-state"); err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := cli.Control()
			if err != nil {
				return err
			}
			var (
				ids  []string
				errs []string
			)
			for _, ref := range args {
				resp, err := c.GetService(ctx, &api.GetServiceRequest{ServiceId: ref})
				if err != nil {
					if errors.Is(err, errdefs.ErrNotFound) {
						errs = append(errs, "no such service: "+ref)
						continue
					}
					return err
				}
				ids = append(ids, resp.GetService().GetId())
			}
			if len(ids) == 0 {
				return command.JoinErrors(errs)
			}
			lf, names, err := task.Filters(ctx, cli, c, filter)
			if err != nil {
				return err
			}
			lf.ServiceIds = ids
			resp, err := c.ListTasks(ctx, &api.ListTasksRequest{Filters: lf})
			if err != nil {
				return err
			}
			po.NameFilter = names
			if err := task.Print(ctx, cli, c, resp.GetTasks(), po); err != nil {
				return err
			}
			return command.JoinErrors(errs)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&po.Quiet, "quiet", "q", false, "Only display task IDs")
	flags.BoolVar(&po.NoTrunc, "no-trunc", false, "Do not truncate output")
	flags.BoolVar(&po.NoResolve, "no-resolve", false, "Do not map IDs to Names")
	flags.StringVar(&po.Format, "format", "", "Pretty-print tasks using a Go template")
	flags.VarP(filter, "filter", "f", "Filter output based on conditions provided")
	return cmd
}
