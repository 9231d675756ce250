package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

// updateOptions are the flags of `service update`: the shared scalars plus
// --X-add/--X-rm for every list.
type updateOptions struct {
	*serviceOptions
	image      string
	args       string
	force      bool
	doRollback bool

	envRm, labelRm, containerLabelRm *opts.ListOpts
	publishRm, networkRm, mountRm    *opts.ListOpts
	secretRm, configRm               *opts.ListOpts
	constraintRm, placementPrefRm    *opts.ListOpts
	dnsRm, dnsSearchRm, dnsOptionRm  *opts.ListOpts
	hostRm, sysctlRm, ulimitRm       *opts.ListOpts
	groupRm, genericResourceRm       *opts.ListOpts
	updCapAdd, updCapDrop            *opts.ListOpts
}

func validatePortSpec(v string) (string, error) {
	if _, err := opts.ParsePorts(v); err != nil {
		return "", err
	}
	return v, nil
}

func newUpdateOptions() *updateOptions {
	return &updateOptions{
		serviceOptions:    newServiceOptions(),
		envRm:             opts.NewListOpts(opts.ValidateNotEmpty),
		labelRm:           opts.NewListOpts(opts.ValidateNotEmpty),
		containerLabelRm:  opts.NewListOpts(opts.ValidateNotEmpty),
		publishRm:         opts.NewListOpts(validatePortSpec),
		networkRm:         opts.NewListOpts(opts.ValidateNotEmpty),
		mountRm:           opts.NewListOpts(opts.ValidateNotEmpty),
		secretRm:          opts.NewListOpts(opts.ValidateNotEmpty),
		configRm:          opts.NewListOpts(opts.ValidateNotEmpty),
		constraintRm:      opts.NewListOpts(opts.ValidateNotEmpty),
		placementPrefRm:   opts.NewListOpts(opts.ValidatePlacementPref),
		dnsRm:             opts.NewListOpts(opts.ValidateNotEmpty),
		dnsSearchRm:       opts.NewListOpts(opts.ValidateNotEmpty),
		dnsOptionRm:       opts.NewListOpts(opts.ValidateNotEmpty),
		hostRm:            opts.NewListOpts(opts.ValidateNotEmpty),
		sysctlRm:          opts.NewListOpts(opts.ValidateNotEmpty),
		ulimitRm:          opts.NewListOpts(opts.ValidateNotEmpty),
		groupRm:           opts.NewListOpts(opts.ValidateNotEmpty),
		genericResourceRm: opts.NewListOpts(opts.ValidateNotEmpty),
		updCapAdd:         opts.NewListOpts(opts.ValidateNotEmpty),
		updCapDrop:        opts.NewListOpts(opts.ValidateNotEmpty),
	}
}

func newUpdateCommand(cli *command.Cli) *cobra.Command {
	o := newUpdateOptions()
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] SERVICE",
		Short: "Update a service",
		Long:  "Update a service" + convergeHelp,
		Args:  command.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUpdate(cmd, cli, o, args[0])
		},
	}
	flags := cmd.Flags()
	addServiceFlags(flags, o.serviceOptions)
	flags.StringVar(&o.image, "image", "", "Service image tag")
	flags.StringVar(&o.args, "args", "", "Service command args")
	flags.BoolVar(&o.force, "force", false, "Force update even if no changes require it")
	flags.BoolVar(&o.doRollback, "rollback", false, "Rollback to previous specification")
	addUpdateListFlags(flags, o)
	return cmd
}

func addUpdateListFlags(flags *pflag.FlagSet, o *updateOptions) {
	pair := func(name string, add pflag.Value, rm *opts.ListOpts, addHelp, rmHelp string) {
		flags.Var(add, name+"-add", addHelp)
		flags.Var(rm, name+"-rm", rmHelp)
	}
	pair("env", o.env, o.envRm, "Add or update an environment variable", "Remove an environment variable")
	pair("label", o.labels, o.labelRm, "Add or update a service label", "Remove a label by its key")
	pair("container-label", o.containerLabels, o.containerLabelRm, "Add or update a container label", "Remove a container label by its key")
	pair("publish", o.publish, o.publishRm, "Add or update a published port", "Remove a published port by its target port")
	pair("network", o.networks, o.networkRm, "Add a network", "Remove a network")
	pair("mount", o.mounts, o.mountRm, "Add or update a mount on a service", "Remove a mount by its target path")
	pair("secret", o.secrets, o.secretRm, "Add or update a secret on a service", "Remove a secret")
	pair("config", o.configs, o.configRm, "Add or update a config file on a service", "Remove a configuration file")
	pair("constraint", o.constraints, o.constraintRm, "Add or update a placement constraint", "Remove a constraint")
	pair("placement-pref", o.placementPrefs, o.placementPrefRm, "Add a placement preference", "Remove a placement preference")
	pair("dns", o.dns, o.dnsRm, "Add or update a custom DNS server", "Remove a custom DNS server")
	pair("dns-search", o.dnsSearch, o.dnsSearchRm, "Add or update a custom DNS search domain", "Remove a DNS search domain")
	pair("dns-option", o.dnsOptions, o.dnsOptionRm, "Add or update a DNS option", "Remove a DNS option")
	pair("host", o.hosts, o.hostRm, "Add a custom host-to-IP mapping (host:ip)", "Remove a custom host-to-IP mapping (host:ip)")
	pair("sysctl", o.sysctls, o.sysctlRm, "Add or update a Sysctl option", "Remove a Sysctl option")
	pair("ulimit", o.ulimits, o.ulimitRm, "Add or update a ulimit option", "Remove a ulimit option")
	pair("group", o.groups, o.groupRm, "Add an additional supplementary user group to the container", "Remove a previously added supplementary user group from the container")
	pair("generic-resource", o.genericResources, o.genericResourceRm, "Add a Generic resource", "Remove a Generic resource")
	flags.Var(o.updCapAdd, "cap-add", "Add Linux capabilities")
	flags.Var(o.updCapDrop, "cap-drop", "Drop Linux capabilities")
}

// rollbackCompatible are the flags --rollback may come with.
var rollbackCompatible = map[string]bool{"rollback": true, flagDetach: true, flagQuiet: true}

func runUpdate(cmd *cobra.Command, cli *command.Cli, o *updateOptions, ref string) error {
	flags := cmd.Flags()
	if o.doRollback {
		other := false
		flags.Visit(func(f *pflag.Flag) {
			if !rollbackCompatible[f.Name] {
				other = true
			}
		})
		if other {
			return errors.New("other flags may not be combined with --rollback")
		}
	}
	if err := o.checkFlagLimits(flags); err != nil {
		return err
	}
	if _, err := o.healthConfig(flags, nil); err != nil {
		return err
	}
	for kind, refs := range map[string][]opts.FileRef{"secret": o.secrets.Value(), "config": o.configs.Value()} {
		if err := checkDuplicateTargets(kind, refs); err != nil {
			return err
		}
	}
	ctx := cmd.Context()
	c, err := cli.Control()
	if err != nil {
		return err
	}
	if o.doRollback {
		return updateService(ctx, cli, c, ref, o.detach, o.quiet, rollback)
	}
	return updateService(ctx, cli, c, ref, o.detach, o.quiet, func(svc *api.Service, req *api.UpdateServiceRequest) ([]string, error) {
		spec, _ := proto.Clone(svc.GetSpec()).(*api.ServiceSpec)
		if spec == nil {
			return nil, fmt.Errorf("service %s has no spec", ref)
		}
		if err := o.apply(flags, spec, cli.Env); err != nil {
			return nil, err
		}
		if err := o.applyResolved(ctx, c, spec); err != nil {
			return nil, err
		}
		req.Spec = spec
		// As docker: the registry is asked only when --image is given
		// (also with the same image: that re-reads the tag); --force,
		// --rollback and other flags keep the recorded digest.
		if !flags.Changed("image") {
			return nil, nil
		}
		if err := command.CheckText(req); err != nil {
			return nil, err // before the registry is asked
		}
		if w := PinImage(ctx, cli, spec, !o.noResolveImage); w != "" {
			return []string{w}, nil
		}
		return nil, nil
	})
}

// updateService reads the service ref names, lets change fill the update
// request (which carries the version read) and sends it; then, unless
// detach, it follows the service until it converges. The warnings change
// returns are printed after the daemon's, as docker prints its client's.
func updateService(ctx context.Context, cli *command.Cli, c api.ControlClient, ref string, detach, quiet bool,
	change func(svc *api.Service, req *api.UpdateServiceRequest) ([]string, error)) error {
	resp, err := c.GetService(ctx, &api.GetServiceRequest{ServiceId: ref})
	if err != nil {
		return err
	}
	svc := resp.GetService()
	req := &api.UpdateServiceRequest{ServiceId: svc.GetId(), ServiceVersion: svc.GetMeta().GetVersion()}
	warnings, err := change(svc, req)
	if err != nil {
		return err
	}
	uresp, err := c.UpdateService(ctx, req)
	if err != nil {
		return err
	}
	printWarnings(cli, uresp.GetWarnings())
	printWarnings(cli, warnings)
	fmt.Fprintln(cli.Out, ref)
	if detach {
		return nil
	}
	return waitOnService(ctx, cli, c, svc.GetId(), ref, quiet)
}

// rollback asks for the service's previous spec.
func rollback(svc *api.Service, req *api.UpdateServiceRequest) ([]string, error) {
	req.Spec = svc.GetSpec()
	req.Rollback = api.UpdateServiceRequest_PREVIOUS
	return nil, nil
}
