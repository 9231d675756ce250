package stack

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/service"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/task"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	"github.com/shoal-project/shoal/cmd/shoal/internal/stack"
	api "github.com/shoal-project/shoal/proto"
)

const defaultStackTable = "table {{.Name}}\t{{.Services}}"

var stackHeader = formatter.Header{"Name": "NAME", "Services": "SERVICES"}

// stackRow is one line of `stack ls`.
type stackRow struct {
	name     string
	services int
}

// Name is the stack's name.
func (r *stackRow) Name() string { return r.name }

// Services counts the stack's services.
func (r *stackRow) Services() string { return fmt.Sprint(r.services) }

// MarshalJSON prints the columns, for --format json.
func (r *stackRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"Name": r.Name(), "Services": r.Services()})
}

func newListCommand(cli *command.Cli) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List stacks",
		Args:    command.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := formatter.ParseList(format, false, defaultStackTable)
			if err != nil {
				return err
			}
			c, err := cli.Control()
			if err != nil {
				return err
			}
			resp, err := c.ListServices(cmd.Context(), &api.ListServicesRequest{Filters: &api.ListFilters{Labels: []string{stack.LabelNamespace}}})
			if err != nil {
				return err
			}
			counts := map[string]int{}
			for _, s := range resp.GetServices() {
				if name, ok := s.GetSpec().GetAnnotations().GetLabels()[stack.LabelNamespace]; ok {
					counts[name]++
				}
			}
			names := sortedNames(counts)
			formatter.SortNatural(names, func(n string) string { return n })
			rows := make([]any, 0, len(names))
			for _, n := range names {
				rows = append(rows, &stackRow{name: n, services: counts[n]})
			}
			return formatter.Write(cli.Out, f, stackHeader, rows)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", formatter.ListFormatHelp)
	return cmd
}

func newPsCommand(cli *command.Cli) *cobra.Command {
	o := task.NewPsOptions()
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS] STACK",
		Short: "List the tasks in the stack",
		Args:  command.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := stack.ValidateName(name); err != nil {
				return err
			}
			if err := o.ValidateFilter(); err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := cli.Control()
			if err != nil {
				return err
			}
			services, err := stackServices(ctx, c, name)
			if err != nil {
				return err
			}
			if len(services) == 0 {
				return fmt.Errorf("nothing found in stack: %s", name)
			}
			tasks, err := o.List(ctx, cli, c, func(lf *api.ListFilters) {
				for _, s := range services {
					lf.ServiceIds = append(lf.ServiceIds, s.GetId())
				}
			})
			if err != nil {
				return err
			}
			if len(tasks) == 0 {
				return fmt.Errorf("nothing found in stack: %s", name)
			}
			return task.Print(ctx, cli, c, tasks, o.PrintOptions)
		},
	}
	o.AddFlags(cmd, "Format output using a custom template")
	return cmd
}

func newServicesCommand(cli *command.Cli) *cobra.Command {
	o := command.NewListOptions()
	cmd := &cobra.Command{
		Use:   "services [OPTIONS] STACK",
		Short: "List the services in the stack",
		Args:  command.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := stack.ValidateName(name); err != nil {
				return err
			}
			lf, err := servicesFilters(o.Filter, name)
			if err != nil {
				return err
			}
			f, resp, err := service.List(cmd.Context(), cli, o, lf)
			if err != nil {
				return err
			}
			var services []*api.Service
			for _, s := range resp.GetServices() {
				if inStack(s.GetSpec().GetAnnotations().GetLabels(), name) {
					services = append(services, s)
				}
			}
			if len(services) == 0 {
				fmt.Fprintf(cli.Err, "Nothing found in stack: %s\n", name)
				return nil
			}
			return formatter.Write(cli.Out, f, formatter.ServiceHeader, formatter.ServiceRows(services, resp.GetCounts()))
		},
	}
	o.AddFlags(cmd, "Only display IDs", "Filter output based on conditions provided")
	return cmd
}

// servicesFilters are `service ls`'s filters plus the stack's label. A name
// filter matches service names as given or within the stack: "web" finds
// <stack>_web.
func servicesFilters(f *opts.Filter, name string) (*api.ListFilters, error) {
	lf, err := service.ListFilters(f)
	if err != nil {
		return nil, err
	}
	lf.Labels = append(lf.Labels, stack.NamespaceFilter(name))
	lf.NamePrefixes = nil
	for _, n := range f.Get("name") {
		lf.NamePrefixes = append(lf.NamePrefixes, n)
		if !strings.HasPrefix(n, name+"_") {
			lf.NamePrefixes = append(lf.NamePrefixes, name+"_"+n)
		}
	}
	return lf, nil
}

func newConfigCommand(cli *command.Cli) *cobra.Command {
	var (
		files             []string
		skipInterpolation bool
	)
	cmd := &cobra.Command{
		Use:   "config [OPTIONS]",
		Short: "Outputs the final config file, after doing merges and interpolations",
		Long: "Outputs the final config file, after doing merges and interpolations\n\n" +
			"The output is what stack deploy would deploy: keys shoal ignores are left out\n" +
			"(the warnings name them), env_file entries are merged into environment, and\n" +
			"secret data is never printed.",
		Args: command.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := load(cmd.Context(), cli, files, "stack", skipInterpolation)
			if err != nil {
				return err
			}
			out, err := l.MarshalYAML()
			if err != nil {
				return err
			}
			_, err = cli.Out.Write(out)
			return err
		},
	}
	flags := cmd.Flags()
	flags.StringSliceVarP(&files, "compose-file", "c", nil, `Path to a Compose file, or "-" to read from stdin`)
	flags.BoolVar(&skipInterpolation, "skip-interpolation", false, "Skip interpolation and output only merged config")
	return cmd
}
