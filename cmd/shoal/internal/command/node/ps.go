package node

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/task"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

type psOptions struct {
	noTrunc   bool
	noResolve bool
	quiet     bool
	format    string
	filter    *opts.Filter
}

func newPsCommand(cli *command.Cli) *cobra.Command {
	o := &psOptions{filter: opts.NewFilter()}
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS] [NODE...]",
		Short: "List tasks running on one or more nodes, defaults to current node",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"self"}
			}
			return runPs(cmd, cli, o, args)
		},
	}
	flags := cmd.Flags()
	flags.BoolVar(&o.noTrunc, "no-trunc", false, "Do not truncate output")
	flags.BoolVar(&o.noResolve, "no-resolve", false, "Do not map IDs to Names")
	flags.VarP(o.filter, "filter", "f", "Filter output based on conditions provided")
	flags.StringVar(&o.format, "format", "", "Pretty-print tasks using a Go template")
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Only display task IDs")
	return cmd
}

func runPs(cmd *cobra.Command, cli *command.Cli, o *psOptions, refs []string) error {
	if err := o.filter.Validate("id", "name", "node", "desired-state"); err != nil {
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
	for _, ref := range refs {
		n, err := getNode(ctx, cli, c, ref)
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				errs = append(errs, "no such node: "+ref)
				continue
			}
			return err
		}
		ids = append(ids, n.GetId())
	}
	if len(ids) == 0 {
		return command.JoinErrors(errs)
	}
	lf, names, err := task.Filters(ctx, cli, c, o.filter)
	if err != nil {
		return err
	}
	lf.NodeIds = append(lf.NodeIds, ids...)
	resp, err := c.ListTasks(ctx, &api.ListTasksRequest{Filters: lf})
	if err != nil {
		return err
	}
	err = task.Print(ctx, cli, c, resp.GetTasks(), task.PrintOptions{
		NoTrunc: o.noTrunc, NoResolve: o.noResolve, Quiet: o.quiet, Format: o.format, NameFilter: names,
	})
	if err != nil {
		return err
	}
	return command.JoinErrors(errs)
}
