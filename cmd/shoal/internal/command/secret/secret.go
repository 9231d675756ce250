// Package secret holds `shoal secret create|ls|inspect|rm`, Docker's
// commands. Secret data is read from a file or stdin, checked against the
// daemon's limit (smaller than 500 KB) before it is sent, and never
// printed: the daemon returns a secret's metadata and digest, not its data.
//
// The helpers here (ReadData, Created, UpdatedAt…) are shared with
// `shoal config`.
package secret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// Limits of the daemon: data must be smaller than these.
const (
	MaxSecretSize = 500 * 1024
	MaxConfigSize = 1000 * 1024
)

// NewCommand returns `shoal secret`.
func NewCommand(cli *command.Cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Manage Swarm secrets",
		Args:  cobra.ArbitraryArgs,
		RunE:  command.GroupRunE,
	}
	cmd.AddCommand(newCreateCommand(cli), newListCommand(cli), newInspectCommand(cli), newRemoveCommand(cli))
	return cmd
}

// FormatHelp is the --format help of the list commands.
const FormatHelp = "Format output using a custom template:\n" +
	"'table':            Print output in table format with column headers (default)\n" +
	"'table TEMPLATE':   Print output in table format using the given Go template\n" +
	"'json':             Print in JSON format\n" +
	"'TEMPLATE':         Print output using the given Go template"

// ReadData reads the data of a secret or config from path, or from in when
// path is "-", refusing kind data of limit bytes or more and empty data.
func ReadData(in io.Reader, path, kind string, limit int) ([]byte, error) {
	r, source := in, "STDIN"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("error reading content from %q: %w", path, err)
		}
		defer f.Close()
		r, source = f, fmt.Sprintf("%q", path)
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("error reading content from %s: %w", source, err)
	}
	if len(data) >= limit {
		return nil, fmt.Errorf("the content of %s is too large: %s data must be smaller than %dKB", source, kind, limit/1024)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("the content of %s is empty: a %s needs data", source, kind)
	}
	return data, nil
}

// Ago words a timestamp as Docker's lists do: "About an hour ago".
func Ago(now time.Time, ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return units.HumanDuration(now.Sub(ts.AsTime())) + " ago"
}

// Labels returns labels given with -l/--label as a map.
func Labels(l *opts.ListOpts) map[string]string {
	if l.Len() == 0 {
		return nil
	}
	return opts.KVMap(l.GetAll())
}

// MatchLabels applies "key" / "key=value" filters.
func MatchLabels(labels map[string]string, filters []string) bool {
	for _, f := range filters {
		k, v, withValue := strings.Cut(f, "=")
		got, ok := labels[k]
		if !ok || withValue && got != v {
			return false
		}
	}
	return true
}

// MatchAny tells whether s starts with one of prefixes (true when none).
func MatchAny(prefixes []string, s string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// PrettyLabels writes the "Labels:" block of --pretty.
func PrettyLabels(w io.Writer, labels map[string]string) {
	if len(labels) == 0 {
		return
	}
	fmt.Fprintln(w, "Labels:")
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := labels[k]; v != "" {
			fmt.Fprintf(w, " - %s=%s\n", k, v)
		} else {
			fmt.Fprintf(w, " - %s\n", k)
		}
	}
}

// Remove removes each ref with rm, printing the ref on success; failures
// are reported together.
func Remove(cli *command.Cli, refs []string, rm func(string) error) error {
	var errs []string
	for _, ref := range refs {
		if err := rm(ref); err != nil {
			if command.IsConnectError(err) {
				return err
			}
			errs = append(errs, err.Error())
			continue
		}
		fmt.Fprintln(cli.Out, ref)
	}
	return command.JoinErrors(errs)
}

// InspectPretty prints objects with print, separated by blank lines, and
// reports the refs not found together.
func InspectPretty(cli *command.Cli, refs []string, kind string, get func(string) (proto.Message, error), print func(proto.Message)) error {
	var errs []string
	n := 0
	for _, ref := range refs {
		obj, err := get(ref)
		if err != nil {
			if !errors.Is(err, errdefs.ErrNotFound) {
				return err
			}
			errs = append(errs, fmt.Sprintf("Error: no such %s: %s", kind, ref))
			continue
		}
		if n > 0 {
			fmt.Fprintln(cli.Out)
		}
		n++
		print(obj)
	}
	if len(errs) > 0 {
		return command.StatusError{Status: strings.Join(errs, "\n"), Code: 1}
	}
	return nil
}

// TimeString prints a timestamp as the pretty inspect shows it.
func TimeString(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().String()
}

// secretRow is one line of `secret ls`.
type secretRow struct {
	s   *api.Secret
	now time.Time
}

func (r *secretRow) ID() string        { return r.s.GetId() }
func (r *secretRow) Name() string      { return r.s.GetSpec().GetAnnotations().GetName() }
func (r *secretRow) Driver() string    { return "" }
func (r *secretRow) CreatedAt() string { return Ago(r.now, r.s.GetMeta().GetCreatedAt()) }
func (r *secretRow) UpdatedAt() string { return Ago(r.now, r.s.GetMeta().GetUpdatedAt()) }
func (r *secretRow) Labels() string    { return JoinLabels(r.s.GetSpec().GetAnnotations().GetLabels()) }

// MarshalJSON prints every column, for --format json.
func (r *secretRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"ID": r.ID(), "Name": r.Name(), "Driver": r.Driver(),
		"CreatedAt": r.CreatedAt(), "UpdatedAt": r.UpdatedAt(), "Labels": r.Labels()})
}

// JoinLabels prints labels as k=v,k2=v2, sorted.
func JoinLabels(labels map[string]string) string {
	parts := make([]string, 0, len(labels))
	for k, v := range labels {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

const defaultSecretTable = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.CreatedAt}}\t{{.UpdatedAt}}"

var secretHeader = formatter.Header{"ID": "ID", "Name": "NAME", "Driver": "DRIVER", "CreatedAt": "CREATED", "UpdatedAt": "UPDATED", "Labels": "LABELS"}

func newCreateCommand(cli *command.Cli) *cobra.Command {
	var (
		labels         = opts.NewListOpts(opts.ValidateLabel)
		templateDriver string
	)
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] SECRET [file|-]",
		Short: "Create a secret from a file or STDIN as content",
		Long: "Create a secret from a file or STDIN as content\n\n" +
			"The data must be smaller than 500KB. It is stored encrypted and never printed.",
		Args: command.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := ReadData(cli.In, args[1], "secret", MaxSecretSize)
			if err != nil {
				return err
			}
			c, err := cli.Control()
			if err != nil {
				return err
			}
			resp, err := c.CreateSecret(cmd.Context(), &api.CreateSecretRequest{Spec: &api.SecretSpec{
				Annotations: &api.Annotations{Name: args[0], Labels: Labels(labels)},
				Data:        data,
			}})
			if err != nil {
				return err
			}
			fmt.Fprintln(cli.Out, resp.GetSecret().GetId())
			return nil
		},
	}
	flags := cmd.Flags()
	flags.VarP(labels, "label", "l", "Secret labels")
	flags.StringVar(&templateDriver, "template-driver", "", "Template driver (accepted for compatibility; shoal does not template secrets)")
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
		Short:   "List secrets",
		Args:    command.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := filter.Validate("id", "label", "name"); err != nil {
				return err
			}
			f := formatter.Resolve(format, quiet, defaultSecretTable)
			if _, err := formatter.Parse(string(f)); err != nil {
				return err
			}
			c, err := cli.Control()
			if err != nil {
				return err
			}
			lf := &api.ListFilters{IdPrefixes: filter.Get("id"), NamePrefixes: filter.Get("name"), Labels: filter.Get("label")}
			resp, err := c.ListSecrets(cmd.Context(), &api.ListSecretsRequest{Filters: lf})
			if err != nil {
				return err
			}
			secrets := resp.GetSecrets()
			sort.SliceStable(secrets, func(i, j int) bool {
				return formatter.NaturalLess(secrets[i].GetSpec().GetAnnotations().GetName(), secrets[j].GetSpec().GetAnnotations().GetName())
			})
			now := cli.Clock.Now()
			var rows []any
			for _, s := range secrets {
				if MatchAny(lf.IdPrefixes, s.GetId()) && MatchAny(lf.NamePrefixes, s.GetSpec().GetAnnotations().GetName()) &&
					MatchLabels(s.GetSpec().GetAnnotations().GetLabels(), lf.Labels) {
					rows = append(rows, &secretRow{s: s, now: now})
				}
			}
			return formatter.Write(cli.Out, f, secretHeader, rows)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&quiet, "quiet", "q", false, "Only display IDs")
	flags.StringVar(&format, "format", "", FormatHelp)
	flags.VarP(filter, "filter", "f", "Filter output based on conditions provided")
	return cmd
}

func newInspectCommand(cli *command.Cli) *cobra.Command {
	var (
		format string
		pretty bool
	)
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] SECRET [SECRET...]",
		Short: "Display detailed information on one or more secrets",
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
				return getSecret(cmd.Context(), c, ref)
			}
			if !pretty {
				return command.Inspect(cli, args, format, get, func(ref string) string { return "Error: no such secret: " + ref })
			}
			return InspectPretty(cli, args, "secret", get, func(m proto.Message) {
				s := m.(*api.Secret)
				w := cli.Out
				fmt.Fprintf(w, "ID:              %s\n", s.GetId())
				fmt.Fprintf(w, "Name:            %s\n", s.GetSpec().GetAnnotations().GetName())
				PrettyLabels(w, s.GetSpec().GetAnnotations().GetLabels())
				fmt.Fprintf(w, "Driver:          \n")
				fmt.Fprintf(w, "Created at:      %s\n", TimeString(s.GetMeta().GetCreatedAt()))
				fmt.Fprintf(w, "Updated at:      %s\n", TimeString(s.GetMeta().GetUpdatedAt()))
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	cmd.Flags().BoolVar(&pretty, "pretty", false, "Print the information in a human friendly format")
	return cmd
}

// getSecret fetches a secret and makes sure no data is kept.
func getSecret(ctx context.Context, c api.ControlClient, ref string) (*api.Secret, error) {
	resp, err := c.GetSecret(ctx, &api.GetSecretRequest{SecretId: ref})
	if err != nil {
		return nil, err
	}
	s := resp.GetSecret()
	if s.GetSpec() != nil {
		s.Spec.Data = nil
	}
	s.Sealed = nil
	return s, nil
}

func newRemoveCommand(cli *command.Cli) *cobra.Command {
	return &cobra.Command{
		Use:     "rm SECRET [SECRET...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more secrets",
		Args:    command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cli.Control()
			if err != nil {
				return err
			}
			return Remove(cli, args, func(ref string) error {
				_, err := c.RemoveSecret(cmd.Context(), &api.RemoveSecretRequest{SecretId: ref})
				return err
			})
		},
	}
}
