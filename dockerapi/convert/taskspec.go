package convert

import (
	"github.com/moby/moby/api/types/swarm"

	api "github.com/shoal-project/shoal/proto"
)

// TaskSpecToMoby returns Docker's TaskTemplate for t.
func TaskSpecToMoby(t *api.TaskSpec) swarm.TaskSpec {
	out := swarm.TaskSpec{
		ContainerSpec: ContainerSpecToMoby(t.GetContainer()),
		LogDriver:     driverToMoby(t.GetLogDriver()),
		ForceUpdate:   t.GetForceUpdate(),
		Runtime:       swarm.RuntimeContainer,
	}
	if r := t.GetResources(); r != nil {
		out.Resources = &swarm.ResourceRequirements{}
		if l := r.GetLimits(); l != nil {
			out.Resources.Limits = &swarm.Limit{NanoCPUs: l.GetNanoCpus(), MemoryBytes: l.GetMemoryBytes(), Pids: l.GetPids()}
		}
		if v := r.GetReservations(); v != nil {
			out.Resources.Reservations = &swarm.Resources{NanoCPUs: v.GetNanoCpus(), MemoryBytes: v.GetMemoryBytes(),
				GenericResources: genericToMoby(v.GetGeneric())}
		}
	}
	if r := t.GetRestart(); r != nil {
		out.RestartPolicy = &swarm.RestartPolicy{
			Condition:   restartConditions.toMoby(r.GetCondition()),
			Delay:       durPtr(r.GetDelay()),
			MaxAttempts: u64(r.GetMaxAttempts()),
			Window:      durPtr(r.GetWindow()),
		}
	}
	if p := t.GetPlacement(); p != nil {
		out.Placement = &swarm.Placement{Constraints: cloneStrings(p.GetConstraints()), MaxReplicas: p.GetMaxReplicas()}
		for _, pref := range p.GetPreferences() {
			out.Placement.Preferences = append(out.Placement.Preferences,
				swarm.PlacementPreference{Spread: &swarm.SpreadOver{SpreadDescriptor: pref.GetSpreadDescriptor()}})
		}
		for _, pl := range p.GetPlatforms() {
			out.Placement.Platforms = append(out.Placement.Platforms, swarm.Platform{Architecture: pl.GetArchitecture(), OS: pl.GetOs()})
		}
	}
	for _, n := range t.GetNetworks() {
		out.Networks = append(out.Networks, swarm.NetworkAttachmentConfig{Target: n.GetTarget(), Aliases: cloneStrings(n.GetAliases())})
	}
	return out
}

func genericToMoby(g []*api.GenericResource) []swarm.GenericResource {
	var out []swarm.GenericResource
	for _, r := range g {
		out = append(out, swarm.GenericResource{DiscreteResourceSpec: &swarm.DiscreteGenericResource{Kind: r.GetKind(), Value: r.GetValue()}})
	}
	return out
}

func genericFromMoby(p string, g []swarm.GenericResource) ([]*api.GenericResource, error) {
	var out []*api.GenericResource
	for i, r := range g {
		if r.NamedResourceSpec != nil {
			return nil, unsupported(idx(p, i)+".NamedResourceSpec", "shoal counts generic resources (DiscreteResourceSpec) and does not track named ones")
		}
		if r.DiscreteResourceSpec == nil {
			return nil, invalid(idx(p, i), "a generic resource needs DiscreteResourceSpec {Kind, Value}")
		}
		out = append(out, &api.GenericResource{Kind: r.DiscreteResourceSpec.Kind, Value: r.DiscreteResourceSpec.Value})
	}
	return out, nil
}

// TaskSpecFromMoby returns shoal's task spec for Docker's TaskTemplate.
// Network targets are kept as given (ID or name): the handler resolves them.
func TaskSpecFromMoby(t swarm.TaskSpec) (*api.TaskSpec, error) {
	const p = "TaskTemplate"
	if t.PluginSpec != nil {
		return nil, unsupported(p+".PluginSpec", "shoal runs containers, not plugins")
	}
	if t.NetworkAttachmentSpec != nil {
		return nil, unsupported(p+".NetworkAttachmentSpec", "network attachment tasks are made by the daemon, not by users")
	}
	if t.Runtime != "" && t.Runtime != swarm.RuntimeContainer {
		return nil, unsupported(p+".Runtime", "runtime "+string(t.Runtime)+" is not supported; shoal runs containers (leave it empty or \"container\")")
	}
	if t.ContainerSpec == nil {
		return nil, invalid(p+".ContainerSpec", "a service needs a ContainerSpec with an Image")
	}
	c, err := ContainerSpecFromMoby(t.ContainerSpec)
	if err != nil {
		return nil, err
	}
	out := &api.TaskSpec{Container: c, LogDriver: driverFromMoby(t.LogDriver), ForceUpdate: t.ForceUpdate}
	if r := t.Resources; r != nil {
		if r.SwapBytes != nil {
			return nil, unsupported(p+".Resources.SwapBytes", "shoal does not limit swap")
		}
		if r.MemorySwappiness != nil {
			return nil, unsupported(p+".Resources.MemorySwappiness", "shoal does not set memory swappiness")
		}
		out.Resources = &api.ResourceRequirements{}
		if l := r.Limits; l != nil {
			out.Resources.Limits = &api.Resources{NanoCpus: l.NanoCPUs, MemoryBytes: l.MemoryBytes, Pids: l.Pids}
		}
		if v := r.Reservations; v != nil {
			g, err := genericFromMoby(p+".Resources.Reservations.GenericResources", v.GenericResources)
			if err != nil {
				return nil, err
			}
			out.Resources.Reservations = &api.Resources{NanoCpus: v.NanoCPUs, MemoryBytes: v.MemoryBytes, Generic: g}
		}
	}
	if r := t.RestartPolicy; r != nil {
		cond, err := restartConditions.fromMoby(p+".RestartPolicy.Condition", r.Condition)
		if err != nil {
			return nil, err
		}
		out.Restart = &api.RestartPolicy{Condition: cond, Delay: durFromPtr(r.Delay), Window: durFromPtr(r.Window)}
		if r.MaxAttempts != nil {
			out.Restart.MaxAttempts = *r.MaxAttempts
		}
	}
	if pl := t.Placement; pl != nil {
		out.Placement = &api.Placement{Constraints: cloneStrings(pl.Constraints), MaxReplicas: pl.MaxReplicas}
		for i, pref := range pl.Preferences {
			if pref.Spread == nil {
				return nil, invalid(idx(p+".Placement.Preferences", i), "a placement preference needs Spread {SpreadDescriptor}")
			}
			out.Placement.Preferences = append(out.Placement.Preferences, &api.PlacementPreference{SpreadDescriptor: pref.Spread.SpreadDescriptor})
		}
		for _, x := range pl.Platforms {
			out.Placement.Platforms = append(out.Placement.Platforms, &api.Platform{Architecture: x.Architecture, Os: x.OS})
		}
	}
	for i, n := range t.Networks {
		if len(n.DriverOpts) > 0 {
			return nil, unsupported(idx(p+".Networks", i)+".DriverOpts", "overlay attachments take no driver options in shoal")
		}
		if n.Target == "" {
			return nil, invalid(idx(p+".Networks", i)+".Target", "a network attachment needs a Target (network ID or name)")
		}
		out.Networks = append(out.Networks, &api.NetworkAttachmentConfig{Target: n.Target, Aliases: cloneStrings(n.Aliases)})
	}
	return out, nil
}
