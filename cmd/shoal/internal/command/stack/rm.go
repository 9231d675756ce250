package stack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/config"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/secret"
	"github.com/shoal-project/shoal/cmd/shoal/internal/stack"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// removeWait bounds `stack rm -d=false`'s wait for the tasks to go.
const removeWait = 10 * time.Minute

func newRemoveCommand(cli *command.Cli) *cobra.Command {
	detach := true
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] STACK [STACK...]",
		Aliases: []string{"remove", "down"},
		Short:   "Remove one or more stacks",
		Long: "Remove one or more stacks\n\n" +
			"Removes the services, then the secrets, configs and networks labelled\n" +
			"io.shoal.stack.namespace=<stack>; external objects are never removed.",
		Args: command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRemove(cmd.Context(), cli, args, detach)
		},
	}
	cmd.Flags().BoolVarP(&detach, "detach", "d", true, "Do not wait for stack removal")
	return cmd
}

func runRemove(ctx context.Context, cli *command.Cli, names []string, detach bool) error {
	for _, n := range names {
		if err := stack.ValidateName(n); err != nil {
			return err
		}
	}
	c, err := cli.Control()
	if err != nil {
		return err
	}
	var errs []string
	for _, name := range names {
		groups, err := listObjects(ctx, c, name)
		if err != nil {
			return err
		}
		if groups.empty() {
			fmt.Fprintf(cli.Err, "Nothing found in stack: %s\n", name)
			continue
		}
		failed := false
		removed := map[string][]string{}
		for _, g := range groups {
			for _, r := range g.refs {
				fmt.Fprintf(cli.Out, "Removing %s %s\n", g.kind, r.name)
				remove := g.remove
				if g.kind == "network" {
					remove = func(ctx context.Context, c api.ControlClient, id string) error {
						return removeNetworkRetrying(ctx, cli, c, id, r.name)
					}
				}
				if err := remove(ctx, c, r.id); err != nil {
					failed = reportFailure(cli, g.kind, r.id, err) || failed
					continue
				}
				removed[g.kind] = append(removed[g.kind], r.id)
			}
		}
		if failed {
			errs = append(errs, "Failed to remove some resources from stack: "+name)
			continue
		}
		if !detach {
			if err := waitTasksGone(ctx, cli, c, removed["service"]); err != nil {
				errs = append(errs, fmt.Sprintf("Failed to wait on tasks of stack: %s: %s", name, err))
			}
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

func reportFailure(cli *command.Cli, kind, id string, err error) bool {
	if command.IsConnectError(err) {
		fmt.Fprintln(cli.Err, err)
		return true
	}
	fmt.Fprintf(cli.Err, "Failed to remove %s %s: %s\n", kind, id, err)
	return true
}

// ref names one object of a stack.
type ref struct{ name, id string }

// group is a stack's objects of one kind, with how to remove one.
type group struct {
	kind   string
	refs   []ref
	remove func(ctx context.Context, c api.ControlClient, id string) error
}

// groups are what carries a stack's label, in the order rm removes them.
type groups []group

func (gs groups) empty() bool {
	for _, g := range gs {
		if len(g.refs) > 0 {
			return false
		}
	}
	return true
}

// refsOf names objs (already the stack's, sorted) by name and ID.
func refsOf[T interface{ GetId() string }](objs []T, ann func(T) *api.Annotations) []ref {
	out := make([]ref, 0, len(objs))
	for _, o := range objs {
		out = append(out, ref{ann(o).GetName(), o.GetId()})
	}
	return out
}

// listObjects finds a stack's objects by its label: services, secrets,
// configs and networks, each kind sorted by name. The label is checked
// here too.
func listObjects(ctx context.Context, c api.ControlClient, name string) (groups, error) {
	filters := &api.ListFilters{Labels: []string{stack.NamespaceFilter(name)}}
	services, err := stackServices(ctx, c, name)
	if err != nil {
		return nil, err
	}
	nets, err := c.ListNetworks(ctx, &api.ListNetworksRequest{Filters: filters})
	if err != nil {
		return nil, err
	}
	secrets, err := secret.Kind.List(ctx, c, filters)
	if err != nil {
		return nil, err
	}
	configs, err := config.Kind.List(ctx, c, filters)
	if err != nil {
		return nil, err
	}
	return groups{
		{"service", refsOf(services, serviceAnnotations), removeService},
		{"secret", refsOf(owned(secrets, name, secret.Kind.Annotations), secret.Kind.Annotations), secret.Kind.Remove},
		{"config", refsOf(owned(configs, name, config.Kind.Annotations), config.Kind.Annotations), config.Kind.Remove},
		{"network", refsOf(owned(nets.GetNetworks(), name, networkAnnotations), networkAnnotations), removeNetwork},
	}, nil
}

func removeService(ctx context.Context, c api.ControlClient, id string) error {
	_, err := c.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: id})
	return err
}

func removeNetwork(ctx context.Context, c api.ControlClient, id string) error {
	_, err := c.RemoveNetwork(ctx, &api.RemoveNetworkRequest{NetworkId: id})
	return err
}

// networkRemoveWait bounds how long `stack rm` retries removing a network
// the swarm still says is in use: the tasks of the services just removed
// release their attachments while they shut down.
const networkRemoveWait = 30 * time.Second

// removeNetworkRetrying removes a network, retrying every second while the
// swarm answers that it is in use, for at most networkRemoveWait; the last
// answer (which names the users) is returned with how long it waited.
func removeNetworkRetrying(ctx context.Context, cli *command.Cli, c api.ControlClient, id, name string) error {
	deadline := cli.Clock.Now().Add(networkRemoveWait)
	for {
		err := removeNetwork(ctx, c, id)
		if err == nil || !networkInUse(err) {
			return err
		}
		if !cli.Clock.Now().Before(deadline) {
			return fmt.Errorf("%w (still in use after %s; remove what uses it, then run 'shoal network rm %s')", err, networkRemoveWait, name)
		}
		select {
		case <-cli.Clock.After(time.Second):
		case <-ctx.Done():
			return err
		}
	}
}

// networkInUse tells the swarm's refusal to remove a network that
// services or tasks still use.
func networkInUse(err error) bool {
	return errors.Is(err, errdefs.ErrFailedPrecondition) && strings.Contains(err.Error(), "in use")
}

// waitTasksGone polls until the removed services have no tasks left.
func waitTasksGone(ctx context.Context, cli *command.Cli, c api.ControlClient, serviceIDs []string) error {
	if len(serviceIDs) == 0 {
		return nil
	}
	deadline := cli.Clock.Now().Add(removeWait)
	for {
		resp, err := c.ListTasks(ctx, &api.ListTasksRequest{Filters: &api.ListFilters{ServiceIds: serviceIDs}})
		if err != nil {
			return err
		}
		if len(resp.GetTasks()) == 0 {
			return nil
		}
		if !cli.Clock.Now().Before(deadline) {
			return fmt.Errorf("%d tasks still there after %s", len(resp.GetTasks()), removeWait)
		}
		select {
		case <-cli.Clock.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
