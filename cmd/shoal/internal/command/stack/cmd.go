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
	"sort"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/stack"
	api "github.com/shoal-project/shoal/proto"
)

// NewCommand returns `shoal stack`.
func NewCommand(cli *command.Cli) *cobra.Command {
	return command.NewGroup("stack", "Manage Swarm stacks",
		newDeployCommand(cli),
		newListCommand(cli),
		newPsCommand(cli),
		newServicesCommand(cli),
		newRemoveCommand(cli),
		newConfigCommand(cli),
	)
}

// inStack tells whether an object's labels put it in stack.
func inStack(labels map[string]string, name string) bool {
	return labels[stack.LabelNamespace] == name
}

func serviceAnnotations(s *api.Service) *api.Annotations { return s.GetSpec().GetAnnotations() }
func networkAnnotations(n *api.Network) *api.Annotations { return n.GetSpec().GetAnnotations() }

// owned keeps the objects whose labels put them in stack name, sorted by
// name (ann gives an object's name and labels).
func owned[T any](objs []T, name string, ann func(T) *api.Annotations) []T {
	var out []T
	for _, o := range objs {
		if inStack(ann(o).GetLabels(), name) {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return ann(out[i]).GetName() < ann(out[j]).GetName() })
	return out
}
