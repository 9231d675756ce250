package stack

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/stack"
)

type deployOptions struct {
	files            []string
	prune            bool
	resolveImage     string
	withRegistryAuth bool
	detach           bool
	quiet            bool
	// dependencyTimeout bounds the wait for a dependency to converge before
	// its dependants are created.
	dependencyTimeout time.Duration
}

// The values of --resolve-image.
const (
	resolveAlways  = "always"
	resolveChanged = "changed"
	resolveNever   = "never"
)

// DefaultDependencyTimeout bounds the wait for a dependency (depends_on).
const DefaultDependencyTimeout = 10 * time.Minute

const deployLong = `Deploy a new stack or update an existing stack

Objects are named <stack>_<name> and labelled io.shoal.stack.namespace=<stack>.
Networks, secrets and configs are created first, then services in depends_on
order. A service that exists is updated in place, and only when its spec
changed: redeploying an unchanged file starts no rolling update. Everything is
checked before anything is created: a missing external network, secret or
config, or a secret whose content changed, stops the deploy with nothing done.

Unless -d is given, the command waits: before creating a service it waits for
the services it depends on to converge (to be healthy, when they have a health
check: a task is running only once healthy), for at most 10 minutes each, and
at the end it follows every created or updated service with the converge
display, as "service create" does. With -d it creates everything in order
without waiting (docker stack deploy's default).

Images are pinned by digest as "service create" pins them, so every node runs
the same image: --resolve-image always (the default) asks the registry on every
deploy (a redeploy follows a tag that moved), changed only for a service whose
image in the file changed, never not at all. When the registry cannot be read,
a warning says so and the tag is kept.`

func newDeployCommand(cli *command.Cli) *cobra.Command {
	o := &deployOptions{dependencyTimeout: DefaultDependencyTimeout}
	cmd := &cobra.Command{
		Use:     "deploy [OPTIONS] STACK",
		Aliases: []string{"up"},
		Short:   "Deploy a new stack or update an existing stack",
		Long:    deployLong,
		Args:    command.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDeploy(cmd, cli, o, args[0])
		},
	}
	flags := cmd.Flags()
	flags.StringSliceVarP(&o.files, "compose-file", "c", nil, `Path to a Compose file, or "-" to read from stdin`)
	flags.BoolVar(&o.prune, "prune", false, "Prune services that are no longer referenced")
	flags.StringVar(&o.resolveImage, "resolve-image", resolveAlways,
		`Query the registry to resolve image digest and supported platforms ("always", "changed", "never")`)
	flags.BoolVar(&o.withRegistryAuth, "with-registry-auth", false, "Send registry authentication details to Swarm agents (accepted for compatibility; shoal has no registry credentials yet)")
	flags.BoolVarP(&o.detach, "detach", "d", false, "Exit immediately instead of waiting for the stack services to converge")
	flags.BoolVarP(&o.quiet, "quiet", "q", false, "Suppress progress output")
	return cmd
}

func runDeploy(cmd *cobra.Command, cli *command.Cli, o *deployOptions, name string) error {
	switch o.resolveImage {
	case resolveAlways, resolveChanged, resolveNever:
	default:
		return fmt.Errorf("Invalid option %s for flag --resolve-image", o.resolveImage)
	}
	ctx := cmd.Context()
	l, err := load(ctx, cli, o.files, name, false)
	if err != nil {
		return err
	}
	plan, err := l.Convert()
	if err != nil {
		return err
	}
	printAll(cli.Err, plan.Warnings)
	if err := plan.ReadSources(stack.ReadFileCapped); err != nil {
		return err
	}
	c, err := cli.Control()
	if err != nil {
		return err
	}
	d := newDeployer(cli, c, plan, o)
	return d.run(ctx)
}

// load reads the stack files and prints the loader's warnings.
func load(ctx context.Context, cli *command.Cli, files []string, name string, skipInterpolation bool) (*stack.Loaded, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("Please specify a Compose file (with --compose-file).")
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	l, err := stack.Load(ctx, stack.LoadOptions{
		Files:             files,
		Stdin:             cli.In,
		Cwd:               cwd,
		Environ:           os.Environ(),
		Stack:             name,
		SkipInterpolation: skipInterpolation,
	})
	if err != nil {
		return nil, err
	}
	printAll(cli.Err, l.Warnings)
	return l, nil
}

func printAll(w io.Writer, msgs []string) {
	for _, m := range msgs {
		_, _ = io.WriteString(w, m)
	}
}
