package service

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

func newScaleCommand(cli *command.Cli) *cobra.Command {
	var detach bool
	cmd := &cobra.Command{
		Use:   "scale SERVICE=REPLICAS [SERVICE=REPLICAS...]",
		Short: "Scale one or multiple replicated services",
		Long:  "Scale one or multiple replicated services" + convergeHelp,
		Args:  scaleArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runScale(cmd, cli, args, detach)
		},
	}
	cmd.Flags().BoolVarP(&detach, flagDetach, "d", false, "Exit immediately instead of waiting for the service to converge")
	return cmd
}

// scaleArgs checks every SERVICE=REPLICAS before anything is sent.
func scaleArgs(cmd *cobra.Command, args []string) error {
	if err := command.MinArgs(1)(cmd, args); err != nil {
		return err
	}
	for _, arg := range args {
		name, n, ok := strings.Cut(arg, "=")
		if !ok || name == "" || n == "" {
			return fmt.Errorf("invalid scale specifier '%s'.\nSee '%s --help'.\n\nUsage:  %s\n\n%s",
				arg, cmd.CommandPath(), cmd.UseLine(), cmd.Short)
		}
		v, err := strconv.ParseUint(n, 10, 64)
		if errors.Is(err, strconv.ErrRange) || err == nil && v > api.MaxReplicas {
			return fmt.Errorf("%s: replicas %s is too large: the maximum is %d", name, n, api.MaxReplicas)
		}
		if err != nil {
			return fmt.Errorf("%s: invalid replicas value %s: %v", name, n, err)
		}
	}
	return nil
}

func runScale(cmd *cobra.Command, cli *command.Cli, args []string, detach bool) error {
	ctx := cmd.Context()
	c, err := cli.Control()
	if err != nil {
		return err
	}
	type scaled struct{ id, name string }
	var (
		done []scaled
		errs []string
	)
	for _, arg := range args {
		name, n, _ := strings.Cut(arg, "=")
		replicas, _ := strconv.ParseUint(n, 10, 64)
		id, warnings, err := scaleOne(cmd, c, name, replicas)
		if err != nil {
			if command.IsConnectError(err) {
				return err
			}
			errs = append(errs, fmt.Sprintf("%s: %s", name, err))
			continue
		}
		printWarnings(cli, warnings)
		fmt.Fprintf(cli.Out, "%s scaled to %d\n", name, replicas)
		done = append(done, scaled{id, name})
	}
	if !detach {
		for _, s := range done {
			if err := waitOnService(ctx, cli, c, s.id, s.name, false); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %s", s.name, err))
			}
			if ctx.Err() != nil {
				break
			}
		}
	}
	return command.JoinErrors(errs)
}

func scaleOne(cmd *cobra.Command, c api.ControlClient, ref string, replicas uint64) (string, []string, error) {
	ctx := cmd.Context()
	resp, err := c.GetService(ctx, &api.GetServiceRequest{ServiceId: ref})
	if err != nil {
		return "", nil, err
	}
	svc := resp.GetService()
	spec := svc.GetSpec()
	switch m := spec.GetMode().(type) {
	case *api.ServiceSpec_Replicated:
		m.Replicated.Replicas = replicas
	case *api.ServiceSpec_ReplicatedJob:
		m.ReplicatedJob.TotalCompletions = replicas
	default:
		return "", nil, errors.New("scale can only be used with replicated or replicated-job mode")
	}
	uresp, err := c.UpdateService(ctx, &api.UpdateServiceRequest{
		ServiceId: svc.GetId(), ServiceVersion: svc.GetMeta().GetVersion(), Spec: spec,
	})
	if err != nil {
		return "", nil, err
	}
	return svc.GetId(), uresp.GetWarnings(), nil
}
