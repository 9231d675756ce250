package command

import (
	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
)

// ListOptions are the flags list commands share: -q/--quiet, --format and
// -f/--filter.
type ListOptions struct {
	Quiet  bool
	Format string
	Filter *opts.Filter
}

// NewListCommand returns an `ls` command (alias `list`, no arguments) with
// the list flags; quietHelp and filterHelp word -q and -f, and run does the
// listing.
func NewListCommand(short, quietHelp, filterHelp string, run func(cmd *cobra.Command, o *ListOptions) error) *cobra.Command {
	o := NewListOptions()
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   short,
		Args:    NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return run(cmd, o) },
	}
	o.AddFlags(cmd, quietHelp, filterHelp)
	return cmd
}

// NewListOptions returns options with an empty filter.
func NewListOptions() *ListOptions { return &ListOptions{Filter: opts.NewFilter()} }

// AddFlags registers the flags on cmd; quietHelp and filterHelp word -q and -f.
func (o *ListOptions) AddFlags(cmd *cobra.Command, quietHelp, filterHelp string) {
	flags := cmd.Flags()
	flags.BoolVarP(&o.Quiet, "quiet", "q", false, quietHelp)
	flags.StringVar(&o.Format, "format", "", formatter.ListFormatHelp)
	flags.VarP(o.Filter, "filter", "f", filterHelp)
}

// Template resolves -q and --format against defaultTable and checks the
// template parses (formatter.ParseList).
func (o *ListOptions) Template(defaultTable string) (formatter.Format, error) {
	return formatter.ParseList(o.Format, o.Quiet, defaultTable)
}
