package service

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

func newCreateCommand(cli *command.Cli) *cobra.Command {
	o := newServiceOptions()
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new service",
		Long:  "Create a new service" + convergeHelp,
		Args:  command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCreate(cmd, cli, o, args)
		},
	}
	flags := cmd.Flags()
	flags.SetInterspersed(false)
	flags.StringVar(&o.name, flagName, "", "Service name")
	flags.Var(o.mode, flagMode, `Service mode ("replicated", "global", "replicated-job", "global-job")`)
	addServiceFlags(flags, o)
	addCreateListFlags(flags, o)
	return cmd
}

// addCreateListFlags defines the list flags as `service create` has them.
func addCreateListFlags(flags *pflag.FlagSet, o *serviceOptions) {
	flags.VarP(o.env, "env", "e", "Set environment variables")
	flags.Var(o.envFile, "env-file", "Read in a file of environment variables")
	flags.VarP(o.labels, "label", "l", "Service labels")
	flags.Var(o.containerLabels, "container-label", "Container labels")
	flags.Var(o.capAdd, "cap-add", "Add Linux capabilities")
	flags.Var(o.capDrop, "cap-drop", "Drop Linux capabilities")
	flags.Var(o.sysctls, "sysctl", "Sysctl options")
	flags.Var(o.ulimits, "ulimit", "Ulimit options")
	flags.VarP(o.publish, "publish", "p", "Publish a port as a node port")
	flags.Var(o.networks, "network", "Network attachments")
	flags.Var(o.mounts, "mount", "Attach a filesystem mount to the service")
	flags.Var(o.secrets, "secret", "Specify secrets to expose to the service")
	flags.Var(o.configs, "config", "Specify configurations to expose to the service")
	flags.Var(o.constraints, "constraint", "Placement constraints")
	flags.Var(o.placementPrefs, "placement-pref", "Add a placement preference")
	flags.Var(o.dns, "dns", "Set custom DNS servers")
	flags.Var(o.dnsSearch, "dns-search", "Set custom DNS search domains")
	flags.Var(o.dnsOptions, "dns-option", "Set DNS options")
	flags.Var(o.hosts, "host", "Set one or more custom host-to-IP mappings (host:ip)")
	flags.Var(o.groups, "group", "Set one or more supplementary user groups for the container")
	flags.Var(o.genericResources, "generic-resource", "User defined resources")
}

func runCreate(cmd *cobra.Command, cli *command.Cli, o *serviceOptions, args []string) error {
	spec, err := o.toSpec(cmd.Flags(), args[0], args[1:], cli.Env)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	c, err := cli.Control()
	if err != nil {
		return err
	}
	if spec.Task.Container.Secrets, err = resolveSecrets(ctx, c, o.secrets.Value()); err != nil {
		return err
	}
	if spec.Task.Container.Configs, err = resolveConfigs(ctx, c, o.configs.Value()); err != nil {
		return err
	}
	if err := resolveNetworks(ctx, c, spec.Task.Networks); err != nil {
		return err
	}
	req := &api.CreateServiceRequest{Spec: spec}
	if err := command.CheckText(req); err != nil {
		return err // before the registry is asked, as CreateService would
	}
	pinWarning := PinImage(ctx, cli, spec, !o.noResolveImage)
	resp, err := c.CreateService(ctx, req)
	if err != nil {
		return err
	}
	printWarnings(cli, resp.GetWarnings())
	if pinWarning != "" {
		printWarnings(cli, []string{pinWarning})
	}
	id := resp.GetService().GetId()
	fmt.Fprintln(cli.Out, id)
	if o.detach {
		return nil
	}
	return waitOnService(ctx, cli, c, id, id, o.quiet)
}
