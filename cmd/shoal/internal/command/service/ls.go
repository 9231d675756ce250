package service

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

func newListCommand(cli *command.Cli) *cobra.Command {
	return command.NewListCommand("List services", "Only display IDs", "Filter output based on conditions provided",
		func(cmd *cobra.Command, o *command.ListOptions) error {
			lf, err := ListFilters(o.Filter)
			if err != nil {
				return err
			}
			f, resp, err := List(cmd.Context(), cli, o, lf)
			if err != nil {
				return err
			}
			return formatter.Write(cli.Out, f, formatter.ServiceHeader, formatter.ServiceRows(resp.GetServices(), resp.GetCounts()))
		})
}

// List resolves the list format and asks the daemon for the services
// matching lf, with their task counts: `service ls` and `stack services`.
func List(ctx context.Context, cli *command.Cli, o *command.ListOptions, lf *api.ListFilters) (formatter.Format, *api.ListServicesResponse, error) {
	f, err := o.Template(formatter.DefaultServiceTable)
	if err != nil {
		return "", nil, err
	}
	c, err := cli.Control()
	if err != nil {
		return "", nil, err
	}
	resp, err := c.ListServices(ctx, &api.ListServicesRequest{Filters: lf})
	if err != nil {
		return "", nil, err
	}
	return f, resp, nil
}

// ListFilters checks `service ls` -f flags (id, label, mode, name) and
// turns them into the request's filters; `stack services` shares them.
func ListFilters(f *opts.Filter) (*api.ListFilters, error) {
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
