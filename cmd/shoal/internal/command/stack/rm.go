package stack

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/stack"
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
		o, err := listObjects(ctx, c, name)
		if err != nil {
			return err
		}
		if len(o.services)+len(o.networks)+len(o.secrets)+len(o.configs) == 0 {
			fmt.Fprintf(cli.Err, "Nothing found in stack: %s\n", name)
			continue
		}
		failed := false
		var removed []string
		for _, s := range o.services {
			fmt.Fprintf(cli.Out, "Removing service %s\n", s.GetSpec().GetAnnotations().GetName())
			if _, err := c.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: s.GetId()}); err != nil {
				failed = reportFailure(cli, "service", s.GetId(), err)
				continue
			}
			removed = append(removed, s.GetId())
		}
		for _, s := range o.secrets {
			fmt.Fprintf(cli.Out, "Removing secret %s\n", s.GetSpec().GetAnnotations().GetName())
			if _, err := c.RemoveSecret(ctx, &api.RemoveSecretRequest{SecretId: s.GetId()}); err != nil {
				failed = reportFailure(cli, "secret", s.GetId(), err) || failed
			}
		}
		for _, cf := range o.configs {
			fmt.Fprintf(cli.Out, "Removing config %s\n", cf.GetSpec().GetAnnotations().GetName())
			if _, err := c.RemoveConfig(ctx, &api.RemoveConfigRequest{ConfigId: cf.GetId()}); err != nil {
				failed = reportFailure(cli, "config", cf.GetId(), err) || failed
			}
		}
		for _, n := range o.networks {
			fmt.Fprintf(cli.Out, "Removing network %s\n", n.GetSpec().GetAnnotations().GetName())
			if _, err := c.RemoveNetwork(ctx, &api.RemoveNetworkRequest{NetworkId: n.GetId()}); err != nil {
				failed = reportFailure(cli, "network", n.GetId(), err) || failed
			}
		}
		if failed {
			errs = append(errs, "Failed to remove some resources from stack: "+name)
			continue
		}
		if !detach {
			if err := waitTasksGone(ctx, cli, c, removed); err != nil {
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

// objects are what carries a stack's label.
type objects struct {
	services []*api.Service
	networks []*api.Network
	secrets  []*api.Secret
	configs  []*api.Config
}

// listObjects finds a stack's objects by its label, each kind sorted by
// name. The label is checked here too.
func listObjects(ctx context.Context, c api.ControlClient, name string) (*objects, error) {
	filters := &api.ListFilters{Labels: []string{stack.NamespaceFilter(name)}}
	o := &objects{}
	var err error
	if o.services, err = stackServices(ctx, c, name); err != nil {
		return nil, err
	}
	nets, err := c.ListNetworks(ctx, &api.ListNetworksRequest{Filters: filters})
	if err != nil {
		return nil, err
	}
	for _, n := range nets.GetNetworks() {
		if inStack(n.GetSpec().GetAnnotations().GetLabels(), name) {
			o.networks = append(o.networks, n)
		}
	}
	secrets, err := c.ListSecrets(ctx, &api.ListSecretsRequest{Filters: filters})
	if err != nil {
		return nil, err
	}
	for _, s := range secrets.GetSecrets() {
		if inStack(s.GetSpec().GetAnnotations().GetLabels(), name) {
			o.secrets = append(o.secrets, s)
		}
	}
	configs, err := c.ListConfigs(ctx, &api.ListConfigsRequest{Filters: filters})
	if err != nil {
		return nil, err
	}
	for _, cf := range configs.GetConfigs() {
		if inStack(cf.GetSpec().GetAnnotations().GetLabels(), name) {
			o.configs = append(o.configs, cf)
		}
	}
	sort.Slice(o.networks, func(i, j int) bool {
		return o.networks[i].GetSpec().GetAnnotations().GetName() < o.networks[j].GetSpec().GetAnnotations().GetName()
	})
	sort.Slice(o.secrets, func(i, j int) bool {
		return o.secrets[i].GetSpec().GetAnnotations().GetName() < o.secrets[j].GetSpec().GetAnnotations().GetName()
	})
	sort.Slice(o.configs, func(i, j int) bool {
		return o.configs[i].GetSpec().GetAnnotations().GetName() < o.configs[j].GetSpec().GetAnnotations().GetName()
	})
	return o, nil
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
