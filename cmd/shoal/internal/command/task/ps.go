package task

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

// filterKeys are the -f keys of the ps commands.
var filterKeys = []string{"id", "name", "node", "desired-state"}

// PsOptions are the flags of `service ps`, `node ps` and `stack ps`: the
// display flags and -f.
type PsOptions struct {
	PrintOptions
	Filter *opts.Filter
}

// NewPsOptions returns options with an empty filter.
func NewPsOptions() *PsOptions { return &PsOptions{Filter: opts.NewFilter()} }

// AddFlags registers the flags on cmd; formatHelp words --format.
func (o *PsOptions) AddFlags(cmd *cobra.Command, formatHelp string) {
	flags := cmd.Flags()
	flags.BoolVarP(&o.Quiet, "quiet", "q", false, "Only display task IDs")
	flags.BoolVar(&o.NoTrunc, "no-trunc", false, "Do not truncate output")
	flags.BoolVar(&o.NoResolve, "no-resolve", false, "Do not map IDs to Names")
	flags.StringVar(&o.Format, "format", "", formatHelp)
	flags.VarP(o.Filter, "filter", "f", "Filter output based on conditions provided")
}

// ValidateFilter refuses -f keys the ps commands do not know, before
// anything is asked of the daemon.
func (o *PsOptions) ValidateFilter() error { return o.Filter.Validate(filterKeys...) }

// List asks the daemon for the tasks matching -f, within what scope adds to
// the filters (the command's services or nodes). The -f name filter is kept
// for Print.
func (o *PsOptions) List(ctx context.Context, cli *command.Cli, c api.ControlClient, scope func(*api.ListFilters)) ([]*api.Task, error) {
	lf, names, err := Filters(ctx, cli, c, o.Filter)
	if err != nil {
		return nil, err
	}
	scope(lf)
	resp, err := c.ListTasks(ctx, &api.ListTasksRequest{Filters: lf})
	if err != nil {
		return nil, err
	}
	o.NameFilter = names
	return resp.GetTasks(), nil
}

// Of is `service ps` and `node ps`: it prints the tasks of the objects refs
// name. id resolves a ref to the object's ID and scope narrows the filters
// to the IDs found. Refs the daemon does not know are reported after the
// list as "no such <kind>: <ref>"; when none is found nothing is listed.
func (o *PsOptions) Of(ctx context.Context, cli *command.Cli, kind string, refs []string,
	id func(c api.ControlClient, ref string) (string, error), scope func(lf *api.ListFilters, ids []string)) error {
	if err := o.ValidateFilter(); err != nil {
		return err
	}
	c, err := cli.Control()
	if err != nil {
		return err
	}
	var ids []string
	missing, err := command.EachFound(refs, func(ref string) (string, error) { return id(c, ref) },
		func(ref string) string { return "no such " + kind + ": " + command.Ref(ref) },
		func(_ int, id string) { ids = append(ids, id) })
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return command.JoinErrors(missing)
	}
	tasks, err := o.List(ctx, cli, c, func(lf *api.ListFilters) { scope(lf, ids) })
	if err != nil {
		return err
	}
	if err := Print(ctx, cli, c, tasks, o.PrintOptions); err != nil {
		return err
	}
	return command.JoinErrors(missing)
}
