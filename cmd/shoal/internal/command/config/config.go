// Package config holds `shoal config create|ls|inspect|rm`, Docker's
// commands. Config data must be smaller than 1000 KB; unlike a secret's it
// is returned by the daemon and shown by `inspect --pretty`.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/secret"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

// NewCommand returns `shoal config`.
func NewCommand(cli *command.Cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Manage Swarm configs",
		Args:  cobra.ArbitraryArgs,
		RunE:  command.GroupRunE,
	}
	cmd.AddCommand(newCreateCommand(cli), newListCommand(cli), newInspectCommand(cli), newRemoveCommand(cli))
	return cmd
}

const defaultConfigTable = "table {{.ID}}\t{{.Name}}\t{{.CreatedAt}}\t{{.UpdatedAt}}"

var configHeader = formatter.Header{"ID": "ID", "Name": "NAME", "CreatedAt": "CREATED", "UpdatedAt": "UPDATED", "Labels": "LABELS"}

// configRow is one line of `config ls`.
type configRow struct {
	c   *api.Config
	now time.Time
}

func (r *configRow) ID() string        { return r.c.GetId() }
func (r *configRow) Name() string      { return r.c.GetSpec().GetAnnotations().GetName() }
func (r *configRow) CreatedAt() string { return secret.Ago(r.now, r.c.GetMeta().GetCreatedAt()) }
func (r *configRow) UpdatedAt() string { return secret.Ago(r.now, r.c.GetMeta().GetUpdatedAt()) }
func (r *configRow) Labels() string {
	return secret.JoinLabels(r.c.GetSpec().GetAnnotations().GetLabels())
}

// MarshalJSON prints every column, for --format json.
func (r *configRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"ID": r.ID(), "Name": r.Name(),
		"CreatedAt": r.CreatedAt(), "UpdatedAt": r.UpdatedAt(), "Labels": r.Labels()})
}

func newCreateCommand(cli *command.Cli) *cobra.Command {
	var (
		labels         = opts.NewListOpts(opts.ValidateLabel)
		templateDriver string
	)
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] CONFIG file|-",
		Short: "Create a config from a file or STDIN",
		Long:  "Create a config from a file or STDIN\n\nThe data must be smaller than 1000KB.",
		Args:  command.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := secret.ReadData(cli.In, args[1], "config", secret.MaxConfigSize)
			if err != nil {
				return err
			}
			c, err := cli.Control()
			if err != nil {
				return err
			}
			resp, err := c.CreateConfig(cmd.Context(), &api.CreateConfigRequest{Spec: &api.ConfigSpec{
				Annotations: &api.Annotations{Name: args[0], Labels: secret.Labels(labels)},
				Data:        data,
			}})
			if err != nil {
				return err
			}
			fmt.Fprintln(cli.Out, resp.GetConfig().GetId())
			return nil
		},
	}
	flags := cmd.Flags()
	flags.VarP(labels, "label", "l", "Config labels")
	flags.StringVar(&templateDriver, "template-driver", "", "Template driver (accepted for compatibility; shoal does not template configs)")
	return cmd
}

func newListCommand(cli *command.Cli) *cobra.Command {
	var (
		quiet  bool
		format string
		filter = opts.NewFilter()
	)
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List configs",
		Args:    command.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := filter.Validate("id", "label", "name"); err != nil {
				return err
			}
			f := formatter.Resolve(format, quiet, defaultConfigTable)
			if _, err := formatter.Parse(string(f)); err != nil {
				return err
			}
			c, err := cli.Control()
			if err != nil {
				return err
			}
			lf := &api.ListFilters{IdPrefixes: filter.Get("id"), NamePrefixes: filter.Get("name"), Labels: filter.Get("label")}
			resp, err := c.ListConfigs(cmd.Context(), &api.ListConfigsRequest{Filters: lf})
			if err != nil {
				return err
			}
			configs := resp.GetConfigs()
			sort.SliceStable(configs, func(i, j int) bool {
				return formatter.NaturalLess(configs[i].GetSpec().GetAnnotations().GetName(), configs[j].GetSpec().GetAnnotations().GetName())
			})
			now := cli.Clock.Now()
			var rows []any
			for _, cf := range configs {
				if secret.MatchAny(lf.IdPrefixes, cf.GetId()) && secret.MatchAny(lf.NamePrefixes, cf.GetSpec().GetAnnotations().GetName()) &&
					secret.MatchLabels(cf.GetSpec().GetAnnotations().GetLabels(), lf.Labels) {
					rows = append(rows, &configRow{c: cf, now: now})
				}
			}
			return formatter.Write(cli.Out, f, configHeader, rows)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&quiet, "quiet", "q", false, "Only display IDs")
	flags.StringVar(&format, "format", "", secret.FormatHelp)
	flags.VarP(filter, "filter", "f", "Filter output based on conditions provided")
	return cmd
}

func newInspectCommand(cli *command.Cli) *cobra.Command {
	var (
		format string
		pretty bool
	)
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] CONFIG [CONFIG...]",
		Short: "Display detailed information on one or more configs",
		Args:  command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pretty && format != "" {
				return errors.New("--format is incompatible with human friendly format")
			}
			if format != "" {
				if _, err := formatter.Parse(format); err != nil {
					return err
				}
			}
			c, err := cli.Control()
			if err != nil {
				return err
			}
			get := func(ref string) (proto.Message, error) {
				resp, err := c.GetConfig(cmd.Context(), &api.GetConfigRequest{ConfigId: ref})
				if err != nil {
					return nil, err
				}
				return resp.GetConfig(), nil
			}
			if !pretty {
				return command.Inspect(cli, args, format, get, func(ref string) string { return "Error: no such config: " + ref })
			}
			return secret.InspectPretty(cli, args, "config", get, func(m proto.Message) {
				cf := m.(*api.Config)
				w := cli.Out
				fmt.Fprintf(w, "ID:              %s\n", cf.GetId())
				fmt.Fprintf(w, "Name:            %s\n", cf.GetSpec().GetAnnotations().GetName())
				secret.PrettyLabels(w, cf.GetSpec().GetAnnotations().GetLabels())
				fmt.Fprintf(w, "Created at:      %s\n", secret.TimeString(cf.GetMeta().GetCreatedAt()))
				fmt.Fprintf(w, "Updated at:      %s\n", secret.TimeString(cf.GetMeta().GetUpdatedAt()))
				fmt.Fprintf(w, "Data:\n%s", cf.GetSpec().GetData())
				if d := cf.GetSpec().GetData(); len(d) > 0 && d[len(d)-1] != '\n' {
					fmt.Fprintln(w)
				}
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	cmd.Flags().BoolVar(&pretty, "pretty", false, "Print the information in a human friendly format")
	return cmd
}

func newRemoveCommand(cli *command.Cli) *cobra.Command {
	return &cobra.Command{
		Use:     "rm CONFIG [CONFIG...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more configs",
		Args:    command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cli.Control()
			if err != nil {
				return err
			}
			return secret.Remove(cli, args, func(ref string) error {
				_, err := c.RemoveConfig(cmd.Context(), &api.RemoveConfigRequest{ConfigId: ref})
				return err
			})
		},
	}
}
