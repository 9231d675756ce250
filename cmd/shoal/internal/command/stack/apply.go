package stack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
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
	newSecrets  []*stack.Secret
	newConfigs  []*stack.Config
	// existing are the stack's services, by name.
	existing map[string]*api.Service
	// changed are the services created or updated by this deploy, by
	// name, with their IDs; waited records those already waited for.
	changed map[string]string
	waited  map[string]bool
}

func newDeployer(cli *command.Cli, c api.ControlClient, plan *stack.Plan, o *deployOptions) *deployer {
	return &deployer{
		cli: cli, c: c, plan: plan, o: o,
		ids:      stack.IDs{Networks: map[string]string{}, Secrets: map[string]string{}, Configs: map[string]string{}},
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
	for _, s := range d.newSecrets {
		fmt.Fprintf(d.cli.Out, "Creating secret %s\n", s.Name)
		resp, err := d.c.CreateSecret(ctx, &api.CreateSecretRequest{Spec: s.Spec})
		if err != nil {
			return fmt.Errorf("failed to create secret %s: %w", s.Name, err)
		}
		d.ids.Secrets[s.Name] = resp.GetSecret().GetId()
	}
	for _, cf := range d.newConfigs {
		fmt.Fprintf(d.cli.Out, "Creating config %s\n", cf.Name)
		resp, err := d.c.CreateConfig(ctx, &api.CreateConfigRequest{Spec: cf.Spec})
		if err != nil {
			return fmt.Errorf("failed to create config %s: %w", cf.Name, err)
		}
		d.ids.Configs[cf.Name] = resp.GetConfig().GetId()
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
	if err := d.checkNetworks(ctx); err != nil {
		return err
	}
	if err := d.checkSecrets(ctx); err != nil {
		return err
	}
	if err := d.checkConfigs(ctx); err != nil {
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

func (d *deployer) checkSecrets(ctx context.Context) error {
	if len(d.plan.Secrets) == 0 {
		return nil
	}
	var names []string
	for _, s := range d.plan.Secrets {
		names = append(names, s.Name)
	}
	resp, err := d.c.ListSecrets(ctx, &api.ListSecretsRequest{Filters: &api.ListFilters{Names: names}})
	if err != nil {
		return err
	}
	byName := map[string]*api.Secret{}
	for _, s := range resp.GetSecrets() {
		byName[s.GetSpec().GetAnnotations().GetName()] = s
	}
	for _, s := range d.plan.Secrets {
		cur, ok := byName[s.Name]
		switch {
		case s.External && !ok:
			return fmt.Errorf("secret %s declared as external, but could not be found. You need to create a secret with the name %s first (shoal secret create %s FILE)", s.Name, s.Name, s.Name)
		case s.External:
			d.ids.Secrets[s.Name] = cur.GetId()
		case !ok:
			d.newSecrets = append(d.newSecrets, s)
		case !inStack(cur.GetSpec().GetAnnotations().GetLabels(), d.plan.Stack):
			return fmt.Errorf("secret %s already exists and is not part of stack %s: remove it, give the secret another name (name: in the file), or declare it external: true", s.Name, d.plan.Stack)
		default:
			sum := sha256.Sum256(s.Spec.GetData())
			if cur.GetDigest() != "" && cur.GetDigest() != hex.EncodeToString(sum[:]) {
				return fmt.Errorf("secret %s already exists with other content, and secrets cannot be changed: give the new version another name (e.g. name: %s_v2 under secrets.%s in the file) and deploy again", s.Name, s.Name, s.Key)
			}
			d.ids.Secrets[s.Name] = cur.GetId()
		}
	}
	return nil
}

func (d *deployer) checkConfigs(ctx context.Context) error {
	if len(d.plan.Configs) == 0 {
		return nil
	}
	var names []string
	for _, c := range d.plan.Configs {
		names = append(names, c.Name)
	}
	resp, err := d.c.ListConfigs(ctx, &api.ListConfigsRequest{Filters: &api.ListFilters{Names: names}})
	if err != nil {
		return err
	}
	byName := map[string]*api.Config{}
	for _, c := range resp.GetConfigs() {
		byName[c.GetSpec().GetAnnotations().GetName()] = c
	}
	for _, c := range d.plan.Configs {
		cur, ok := byName[c.Name]
		switch {
		case c.External && !ok:
			return fmt.Errorf("config %s declared as external, but could not be found. You need to create a config with the name %s first (shoal config create %s FILE)", c.Name, c.Name, c.Name)
		case c.External:
			d.ids.Configs[c.Name] = cur.GetId()
		case !ok:
			d.newConfigs = append(d.newConfigs, c)
		case !inStack(cur.GetSpec().GetAnnotations().GetLabels(), d.plan.Stack):
			return fmt.Errorf("config %s already exists and is not part of stack %s: remove it, give the config another name (name: in the file), or declare it external: true", c.Name, d.plan.Stack)
		default:
			if !bytes.Equal(cur.GetSpec().GetData(), c.Spec.GetData()) {
				return fmt.Errorf("config %s already exists with other content, and configs cannot be changed: give the new version another name (e.g. name: %s_v2 under configs.%s in the file) and deploy again", c.Name, c.Name, c.Key)
			}
			d.ids.Configs[c.Name] = cur.GetId()
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
	var out []*api.Service
	for _, s := range resp.GetServices() {
		if inStack(s.GetSpec().GetAnnotations().GetLabels(), name) {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].GetSpec().GetAnnotations().GetName() < out[j].GetSpec().GetAnnotations().GetName()
	})
	return out, nil
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
		resp, err := d.c.CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
		if err != nil {
			return fmt.Errorf("failed to create service %s: %w", svc.Name, err)
		}
		printAll(d.cli.Err, withNewlines(resp.GetWarnings()))
		d.changed[svc.Name] = resp.GetService().GetId()
		return nil
	}
	for attempt := 0; ; attempt++ {
		got, err := d.c.GetService(ctx, &api.GetServiceRequest{ServiceId: cur.GetId()})
		if err != nil {
			return fmt.Errorf("failed to inspect service %s: %w", svc.Name, err)
		}
		cur = got.GetService()
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
		printAll(d.cli.Err, withNewlines(resp.GetWarnings()))
		d.changed[svc.Name] = cur.GetId()
		return nil
	}
}

func withNewlines(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l + "\n"
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
