package service

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

func newListCommand(cli *command.Cli) *cobra.Command {
	var (
		quiet  bool
		format string
		filter = opts.NewFilter()
	)
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List services",
		Args:    command.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lf, err := serviceFilters(filter)
			if err != nil {
				return err
			}
			f := formatter.Resolve(format, quiet, formatter.DefaultServiceTable)
			if _, err := formatter.Parse(string(f)); err != nil {
				return err
			}
			c, err := cli.Control()
			if err != nil {
				return err
			}
			resp, err := c.ListServices(cmd.Context(), &api.ListServicesRequest{Filters: lf})
			if err != nil {
				return err
			}
			return formatter.Write(cli.Out, f, formatter.ServiceHeader, formatter.ServiceRows(resp.GetServices(), resp.GetCounts()))
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&quiet, "quiet", "q", false, "Only display IDs")
	flags.StringVar(&format, "format", "", "Format output using a custom template:\n'table':            Print output in table format with column headers (default)\n'table TEMPLATE':   Print output in table format using the given Go template\n'json':             Print in JSON format\n'TEMPLATE':         Print output using the given Go template")
	flags.VarP(filter, "filter", "f", "Filter output based on conditions provided")
	return cmd
}

func serviceFilters(f *opts.Filter) (*api.ListFilters, error) {
	if err := f.Validate("id", "label", "mode", "name"); err != nil {
		return nil, err
	}
	for _, m := range f.Get("mode") {
		switch m {
		case "replicated", "global", "replicated-job", "global-job":
		default:
			return nil, fmt.Errorf("invalid filter 'mode=%s': expected replicated, global, replicated-job or global-job", m)
		}
	}
	return &api.ListFilters{
		IdPrefixes:   f.Get("id"),
		NamePrefixes: f.Get("name"),
		Labels:       f.Get("label"),
		Modes:        f.Get("mode"),
	}, nil
}
