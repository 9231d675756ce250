package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/shoal-project/shoal/cmd/shoal/internal/progress"
	"github.com/shoal-project/shoal/cmd/shoal/internal/stack"
)

// waitForDependencies waits, before svc is created or updated, for the
// services it depends on that this deploy created or updated, each for at
// most the dependency timeout. Nothing waits with -d.
func (d *deployer) waitForDependencies(ctx context.Context, svc *stack.Service) error {
	if d.o.detach {
		return nil
	}
	for _, dep := range svc.DependsOn {
		id, changed := d.changed[dep]
		if !changed || d.waited[dep] {
			continue
		}
		what := "converge"
		if d.hasHealthcheck(dep) {
			what = "become healthy"
		}
		if !d.o.quiet {
			fmt.Fprintf(d.cli.Out, "Waiting for %s to %s before deploying %s (depends_on)\n", dep, what, svc.Name)
		}
		depCtx, cancel := context.WithTimeout(ctx, d.o.dependencyTimeout)
		err := d.wait(depCtx, id, dep)
		cancel()
		d.waited[dep] = true
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(depCtx.Err(), context.DeadlineExceeded):
			return fmt.Errorf("service %s did not %s within %s, so %s was not deployed; check `shoal service ps %s`, then deploy again",
				dep, what, d.o.dependencyTimeout, svc.Name, dep)
		case err != nil:
			return fmt.Errorf("%w\n%s depends on %s and was not deployed; fix %s, then deploy again", err, svc.Name, dep, dep)
		}
	}
	return nil
}

func (d *deployer) hasHealthcheck(name string) bool {
	for _, s := range d.plan.Services {
		if s.Name == name {
			return s.Healthcheck
		}
	}
	return false
}

// waitForTheRest follows, in deploy order, every service created or
// updated that nothing waited for yet; failures are reported together.
func (d *deployer) waitForTheRest(ctx context.Context) error {
	if d.o.detach {
		return nil
	}
	var errs []string
	for _, svc := range d.plan.Services {
		id, changed := d.changed[svc.Name]
		if !changed || d.waited[svc.Name] {
			continue
		}
		d.waited[svc.Name] = true
		err := d.wait(ctx, id, svc.Name)
		if ctx.Err() != nil {
			return nil // the display said the operation continues
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// wait shows the converge display of one service (quietly with -q).
func (d *deployer) wait(ctx context.Context, id, name string) error {
	out := d.cli.Out
	if d.o.quiet {
		out = io.Discard
	}
	return progress.Wait(ctx, d.c, id, name, progress.Options{
		Out:   out,
		TTY:   d.cli.OutIsTerminal && !d.o.quiet,
		Width: d.cli.TermWidth,
		Clock: d.cli.Clock,
	})
}
