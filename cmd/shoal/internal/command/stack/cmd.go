// Package stack holds `shoal stack deploy|ls|ps|services|rm|config`.
//
// A stack exists only through a label: every network, secret, config and
// service a deploy creates carries io.shoal.stack.namespace=<stack>, and
// every other command finds the stack's objects with that label filter
// (ListFilters.labels). The conversion of Compose files lives in
// cmd/shoal/internal/stack; this package talks to the daemon.
//
// Server-side behaviour relied on: List* calls honour the labels and names
// filters (results are filtered again here, so that a daemon that ignores a
// filter cannot make rm or --prune touch another stack); GetService gives
// meta.version for UpdateService; ListSecrets returns each secret's digest
// (SHA-256 of the data, hex) but never its data; ListConfigs returns the
// data; network targets, secret and config references are sent as IDs.
package stack

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/stack"
)

// NewCommand returns `shoal stack`.
func NewCommand(cli *command.Cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stack",
		Short: "Manage Swarm stacks",
		Args:  cobra.ArbitraryArgs,
		RunE:  command.GroupRunE,
	}
	cmd.AddCommand(
		newDeployCommand(cli),
		newListCommand(cli),
		newPsCommand(cli),
		newServicesCommand(cli),
		newRemoveCommand(cli),
		newConfigCommand(cli),
	)
	return cmd
}

// formatHelp is the --format help of list commands.
const formatHelp = "Format output using a custom template:\n" +
	"'table':            Print output in table format with column headers (default)\n" +
	"'table TEMPLATE':   Print output in table format using the given Go template\n" +
	"'json':             Print in JSON format\n" +
	"'TEMPLATE':         Print output using the given Go template"

// inStack tells whether an object's labels put it in stack.
func inStack(labels map[string]string, name string) bool {
	return labels[stack.LabelNamespace] == name
}

// hasLabels applies "key" / "key=value" label filters, as the daemon does.
func hasLabels(labels map[string]string, filters []string) bool {
	for _, f := range filters {
		k, v, withValue := strings.Cut(f, "=")
		got, ok := labels[k]
		if !ok || withValue && got != v {
			return false
		}
	}
	return true
}
