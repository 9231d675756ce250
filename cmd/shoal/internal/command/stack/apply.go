package stack

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/service"
	"github.com/shoal-project/shoal/cmd/shoal/internal/stack"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// deployer applies a plan: it first looks at what exists and checks
// everything, then creates and updates.
type deployer struct {
	cli  *command.Cli
	c    api.ControlClient
	plan *stack.Plan
	o    *deployOptions
	ids  stack.IDs

	newNetworks []*stack.Network
	secrets     *dataObjects[*stack.Secret, *api.Secret]
	configs     *dataObjects[*stack.Config, *api.Config]
	// existing are the stack's services, by name.
	existing map[string]*api.Service
	// changed are the services created or updated by this deploy, by
	// name, with their IDs; waited records those already waited for.
	changed map[string]string
	waited  map[string]bool
}

func newDeployer(cli *command.Cli, c api.ControlClient, plan *stack.Plan, o *deployOptions) *deployer {
	ids := stack.IDs{Networks: map[string]string{}, Secrets: map[string]string{}, Configs: map[string]string{}}
	return &deployer{
		cli: cli, c: c, plan: plan, o: o, ids: ids,
		secrets:  newSecrets(plan.Secrets, ids.Secrets),
		configs:  newConfigs(plan.Configs, ids.Configs),
		existing: map[string]*api.Service{},
		changed:  map[string]string{},
		waited:   map[string]bool{},
	}
}

func (d *deployer) run(ctx context.Context) error {
	if err := d.check(ctx); err != nil {
		return err
	}
	if d.o.prune {
		d.pruneServices(ctx)
	}
	for _, n := range d.newNetworks {
		fmt.Fprintf(d.cli.Out, "Creating network %s\n", n.Name)
		resp, err := d.c.CreateNetwork(ctx, &api.CreateNetworkRequest{Spec: n.Spec})
		if err != nil {
			return fmt.Errorf("failed to create network %s: %w", n.Name, err)
		}
		d.ids.Networks[n.Name] = resp.GetNetwork().GetId()
	}
	if err := d.secrets.create(ctx, d); err != nil {
		return err
	}
	if err := d.configs.create(ctx, d); err != nil {
		return err
	}
	for _, svc := range d.plan.Services {
		if err := d.waitForDependencies(ctx, svc); err != nil {
			return err
		}
		if err := d.deployService(ctx, svc); err != nil {
			return err
		}
	}
	return d.waitForTheRest(ctx)
}

// check looks at what exists and refuses, before anything is created, a
// plan that cannot be applied.
func (d *deployer) check(ctx context.Context) error {
	// The daemon's own validation, run here on every service first: a
	// stack is created whole or not at all.
	if err := d.plan.Validate(); err != nil {
		return err
	}
	if err := d.checkNetworks(ctx); err != nil {
		return err
	}
	if err := d.secrets.check(ctx, d); err != nil {
		return err
	}
	if err := d.configs.check(ctx, d); err != nil {
		return err
	}
	return d.checkServices(ctx)
}

func (d *deployer) checkNetworks(ctx context.Context) error {
	if len(d.plan.Networks) == 0 {
		return nil
	}
	resp, err := d.c.ListNetworks(ctx, &api.ListNetworksRequest{})
	if err != nil {
		return err
	}
	byName := map[string]*api.Network{}
	for _, n := range resp.GetNetworks() {
		byName[n.GetSpec().GetAnnotations().GetName()] = n
		byName[n.GetId()] = n
	}
	for _, n := range d.plan.Networks {
		cur, ok := byName[n.Name]
		switch {
		case n.External && !ok:
			return fmt.Errorf("network %s declared as external, but could not be found. You need to create a network with the name %s first (shoal network create -d overlay %s)", n.Name, n.Name, n.Name)
		case n.External:
			d.ids.Networks[n.Name] = cur.GetId()
		case !ok:
			d.newNetworks = append(d.newNetworks, n)
		case !inStack(cur.GetSpec().GetAnnotations().GetLabels(), d.plan.Stack):
			return fmt.Errorf("network %s already exists and is not part of stack %s: remove it, give the network another name (name: in the file), or declare it external: true", n.Name, d.plan.Stack)
		default:
			d.ids.Networks[n.Name] = cur.GetId()
			if !proto.Equal(cur.GetSpec(), n.Spec) {
				fmt.Fprintf(d.cli.Err, "Network %s exists with other settings; networks cannot be updated, the existing one is kept (remove the stack to recreate it)\n", n.Name)
			}
		}
	}
	return nil
}

func (d *deployer) checkServices(ctx context.Context) error {
	services, err := stackServices(ctx, d.c, d.plan.Stack)
	if err != nil {
		return err
	}
	for _, s := range services {
		d.existing[s.GetSpec().GetAnnotations().GetName()] = s
	}
	var others []string
	for _, svc := range d.plan.Services {
		cur, ok := d.existing[svc.Name]
		if !ok {
			others = append(others, svc.Name)
			continue
		}
		if from, to := cur.GetSpec().ModeName(), svc.Spec.ModeName(); from != to {
			return fmt.Errorf("service %s: the mode changes from %s to %s, and a service's mode cannot change: remove the service (shoal service rm %s) and deploy again",
				svc.Name, from, to, svc.Name)
		}
	}
	if len(others) == 0 {
		return nil
	}
	resp, err := d.c.ListServices(ctx, &api.ListServicesRequest{Filters: &api.ListFilters{Names: others}})
	if err != nil {
		return err
	}
	for _, s := range resp.GetServices() {
		name := s.GetSpec().GetAnnotations().GetName()
		for _, want := range others {
			if name == want {
				return fmt.Errorf("service %s already exists and is not part of stack %s: remove it (shoal service rm %s) or deploy the stack under another name", name, d.plan.Stack, name)
			}
		}
	}
	return nil
}

// stackServices lists the services labelled for stack, sorted by name.
func stackServices(ctx context.Context, c api.ControlClient, name string) ([]*api.Service, error) {
	resp, err := c.ListServices(ctx, &api.ListServicesRequest{Filters: &api.ListFilters{Labels: []string{stack.NamespaceFilter(name)}}})
	if err != nil {
		return nil, err
	}
	return owned(resp.GetServices(), name, serviceAnnotations), nil
}

// pruneServices removes the stack's services that the file no longer has.
func (d *deployer) pruneServices(ctx context.Context) {
	keep := map[string]bool{}
	for _, svc := range d.plan.Services {
		keep[svc.Name] = true
	}
	for _, name := range sortedNames(d.existing) {
		if keep[name] {
			continue
		}
		s := d.existing[name]
		fmt.Fprintf(d.cli.Out, "Removing service %s\n", name)
		if _, err := d.c.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: s.GetId()}); err != nil {
			fmt.Fprintf(d.cli.Err, "Failed to remove service %s: %s\n", s.GetId(), err)
		}
	}
}

// deployService creates the service or updates it when its spec changed.
func (d *deployer) deployService(ctx context.Context, svc *stack.Service) error {
	spec, err := svc.Resolve(d.ids)
	if err != nil {
		return err
	}
	cur, ok := d.existing[svc.Name]
	if !ok {
		fmt.Fprintf(d.cli.Out, "Creating service %s\n", svc.Name)
		pinWarning := service.PinImage(ctx, d.cli, spec, d.o.resolveImage != resolveNever)
		resp, err := d.c.CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
		if err != nil {
			return fmt.Errorf("failed to create service %s: %w", svc.Name, err)
		}
		printAll(d.cli.Err, withNewlines(append(resp.GetWarnings(), pinWarning)))
		d.changed[svc.Name] = resp.GetService().GetId()
		return nil
	}
	// As docker: "always" asks the registry on every deploy (an update
	// follows a tag that moved), "changed" only when the file names
	// another image than the last deploy did, "never" never; an image
	// not asked for keeps the digest (and platforms) recorded before when
	// the file's image is the same.
	image := spec.GetTask().GetContainer().GetImage()
	sameImage := image == cur.GetSpec().GetAnnotations().GetLabels()[stack.LabelImage]
	keepPinned := d.o.resolveImage == resolveNever && sameImage || d.o.resolveImage == resolveChanged && sameImage
	var pinWarning string
	if !keepPinned {
		pinWarning = service.PinImage(ctx, d.cli, spec, d.o.resolveImage != resolveNever)
	}
	for attempt := 0; ; attempt++ {
		got, err := d.c.GetService(ctx, &api.GetServiceRequest{ServiceId: cur.GetId()})
		if err != nil {
			return fmt.Errorf("failed to inspect service %s: %w", svc.Name, err)
		}
		cur = got.GetService()
		if keepPinned {
			keepImage(spec, cur.GetSpec())
		}
		// A stack file cannot ask for a forced redeploy: keep the count
		// `service update --force` left, as Docker does.
		spec.Task.ForceUpdate = cur.GetSpec().GetTask().GetForceUpdate()
		if proto.Equal(cur.GetSpec(), spec) {
			return nil // unchanged: nothing is sent, nothing rolls
		}
		if attempt == 0 {
			fmt.Fprintf(d.cli.Out, "Updating service %s (id: %s)\n", svc.Name, cur.GetId())
		}
		resp, err := d.c.UpdateService(ctx, &api.UpdateServiceRequest{
			ServiceId: cur.GetId(), ServiceVersion: cur.GetMeta().GetVersion(), Spec: spec,
		})
		if errors.Is(err, errdefs.ErrConflict) && attempt == 0 {
			continue // changed since it was read: read it again, once
		}
		if err != nil {
			return fmt.Errorf("failed to update service %s: %w", svc.Name, err)
		}
		printAll(d.cli.Err, withNewlines(append(resp.GetWarnings(), pinWarning)))
		d.changed[svc.Name] = cur.GetId()
		return nil
	}
}

// keepImage puts cur's image and platforms, recorded by an earlier deploy
// that asked the registry, into spec.
func keepImage(spec, cur *api.ServiceSpec) {
	spec.Task.Container.Image = cur.GetTask().GetContainer().GetImage()
	platforms := cur.GetTask().GetPlacement().GetPlatforms()
	if spec.Task.Placement == nil {
		if len(platforms) == 0 {
			return
		}
		spec.Task.Placement = &api.Placement{}
	}
	spec.Task.Placement.Platforms = platforms
}

// withNewlines ends each line with a newline, as docker's Println of
// each warning does; empty lines are left out.
func withNewlines(lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		if l != "" {
			out = append(out, l+"\n")
		}
	}
	return out
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
