package service

import (
	"context"
	"errors"
	"slices"
	"strings"

	units "github.com/docker/go-units"

	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// updateList removes the entries whose key is in rm, then adds each of add,
// replacing an entry with the same key.
func updateList(cur, add, rm []string, key func(string) string) []string {
	var out []string
	for _, v := range cur {
		if !slices.Contains(mapKeys(rm, key), key(v)) {
			out = append(out, v)
		}
	}
	for _, a := range add {
		out = slices.DeleteFunc(out, func(v string) bool { return key(v) == key(a) })
		out = append(out, a)
	}
	return out
}

func mapKeys(values []string, key func(string) string) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = key(v)
	}
	return out
}

func identity(s string) string { return s }

// updateMap removes keys in rm, then sets each k=v of add.
func updateMap(cur map[string]string, add, rm []string) map[string]string {
	if cur == nil && len(add) > 0 {
		cur = map[string]string{}
	}
	for _, k := range rm {
		delete(cur, k)
	}
	for k, v := range opts.KVMap(add) {
		cur[k] = v
	}
	return cur
}

// applyLists applies every --X-add/--X-rm that needs no daemon lookup.
func (o *updateOptions) applyLists(spec *api.ServiceSpec, getenv func(string) string) error {
	task, c := spec.Task, spec.Task.Container
	lookup := func(k string) (string, bool) { v := getenv(k); return v, v != "" }
	var envAdd []string
	for _, e := range o.env.GetAll() {
		envAdd = append(envAdd, expandEnv(e, lookup))
	}
	c.Env = updateList(c.Env, envAdd, o.envRm.GetAll(), opts.KeyOf)
	spec.Annotations.Labels = updateMap(spec.Annotations.Labels, o.labels.GetAll(), o.labelRm.GetAll())
	c.Labels = updateMap(c.Labels, o.containerLabels.GetAll(), o.containerLabelRm.GetAll())
	c.Sysctls = updateMap(c.Sysctls, o.sysctls.GetAll(), o.sysctlRm.GetAll())
	c.Groups = updateList(c.Groups, o.groups.GetAll(), o.groupRm.GetAll(), identity)

	c.CapAdd = updateList(c.CapAdd, o.updCapAdd.GetAll(), o.updCapDrop.GetAll(), strings.ToUpper)
	c.CapDrop = updateList(c.CapDrop, o.updCapDrop.GetAll(), o.updCapAdd.GetAll(), strings.ToUpper)

	if len(o.dns.GetAll())+len(o.dnsRm.GetAll())+len(o.dnsSearch.GetAll())+len(o.dnsSearchRm.GetAll())+
		len(o.dnsOptions.GetAll())+len(o.dnsOptionRm.GetAll()) > 0 {
		if c.DnsConfig == nil {
			c.DnsConfig = &api.DNSConfig{}
		}
		d := c.DnsConfig
		d.Nameservers = updateList(d.Nameservers, o.dns.GetAll(), o.dnsRm.GetAll(), identity)
		d.Search = updateList(d.Search, o.dnsSearch.GetAll(), o.dnsSearchRm.GetAll(), identity)
		d.Options = updateList(d.Options, o.dnsOptions.GetAll(), o.dnsOptionRm.GetAll(), identity)
	}
	c.Hosts = updateHosts(c.Hosts, o.hosts.GetAll(), o.hostRm.GetAll())

	if err := o.updateUlimits(c); err != nil {
		return err
	}
	c.Mounts = updateMounts(c.Mounts, o.mounts.Value(), o.mountRm.GetAll())

	if len(o.constraints.GetAll())+len(o.constraintRm.GetAll())+len(o.placementPrefs.GetAll())+len(o.placementPrefRm.GetAll()) > 0 {
		p := placement(task)
		p.Constraints = updateList(p.Constraints, o.constraints.GetAll(), o.constraintRm.GetAll(), identity)
		var cur []string
		for _, pp := range p.Preferences {
			cur = append(cur, "spread="+pp.GetSpreadDescriptor())
		}
		p.Preferences = prefs(updateList(cur, o.placementPrefs.GetAll(), o.placementPrefRm.GetAll(), identity))
	}
	if len(o.genericResources.GetAll())+len(o.genericResourceRm.GetAll()) > 0 {
		if task.Resources == nil {
			task.Resources = &api.ResourceRequirements{}
		}
		if task.Resources.Reservations == nil {
			task.Resources.Reservations = &api.Resources{}
		}
		r := task.Resources.Reservations
		r.Generic = slices.DeleteFunc(r.Generic, func(g *api.GenericResource) bool {
			return slices.Contains(o.genericResourceRm.GetAll(), g.GetKind()) ||
				slices.Contains(mapKeys(o.genericResources.GetAll(), opts.KeyOf), g.GetKind())
		})
		r.Generic = append(r.Generic, genericResources(o.genericResources.GetAll())...)
	}
	return o.updatePorts(spec)
}

func updateHosts(cur, add, rm []string) []string {
	out := slices.DeleteFunc(slices.Clone(cur), func(entry string) bool {
		for _, r := range rm {
			host, ip, hasIP := strings.Cut(r, ":")
			fields := strings.Fields(entry)
			if hasIP && entry == ip+" "+host {
				return true
			}
			if !hasIP && len(fields) > 1 && slices.Contains(fields[1:], host) {
				return true
			}
		}
		return false
	})
	for _, a := range add {
		if e := opts.HostsEntry(a); !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

func (o *updateOptions) updateUlimits(c *api.ContainerSpec) error {
	rm := append(o.ulimitRm.GetAll(), mapKeys(o.ulimits.GetAll(), opts.KeyOf)...)
	c.Ulimits = slices.DeleteFunc(c.Ulimits, func(u *api.Ulimit) bool { return slices.Contains(rm, u.GetName()) })
	for _, v := range o.ulimits.GetAll() {
		u, err := units.ParseUlimit(v)
		if err != nil {
			return err
		}
		c.Ulimits = append(c.Ulimits, &api.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	return nil
}

func updateMounts(cur, add []*api.Mount, rmTargets []string) []*api.Mount {
	out := slices.DeleteFunc(slices.Clone(cur), func(m *api.Mount) bool {
		if slices.Contains(rmTargets, m.GetTarget()) {
			return true
		}
		return slices.ContainsFunc(add, func(a *api.Mount) bool { return a.GetTarget() == m.GetTarget() })
	})
	return append(out, add...)
}

// updatePorts removes ports matching --publish-rm (by target port, and by
// published port when given), then adds --publish-add, replacing a port
// published on the same number and protocol.
func (o *updateOptions) updatePorts(spec *api.ServiceSpec) error {
	if len(o.publish.Value()) == 0 && o.publishRm.Len() == 0 {
		return nil
	}
	if spec.Endpoint == nil {
		spec.Endpoint = &api.EndpointSpec{}
	}
	var rm []*api.PortConfig
	for _, v := range o.publishRm.GetAll() {
		ports, err := opts.ParsePorts(v)
		if err != nil {
			return err
		}
		rm = append(rm, ports...)
	}
	ports := slices.DeleteFunc(slices.Clone(spec.Endpoint.Ports), func(p *api.PortConfig) bool {
		for _, r := range rm {
			if r.GetTargetPort() == p.GetTargetPort() && r.GetProtocol() == p.GetProtocol() &&
				(r.GetPublishedPort() == 0 || r.GetPublishedPort() == p.GetPublishedPort()) {
				return true
			}
		}
		for _, a := range o.publish.Value() {
			if a.GetPublishedPort() != 0 && a.GetPublishedPort() == p.GetPublishedPort() && a.GetProtocol() == p.GetProtocol() {
				return true
			}
		}
		return false
	})
	spec.Endpoint.Ports = append(ports, o.publish.Value()...)
	return nil
}

// applyResolved applies the list flags that name daemon objects: networks,
// secrets and configs are looked up by name.
func (o *updateOptions) applyResolved(ctx context.Context, c api.ControlClient, spec *api.ServiceSpec) error {
	task, cs := spec.Task, spec.Task.Container
	if o.networkRm.Len() > 0 || len(o.networks.Value()) > 0 {
		rmIDs := map[string]bool{}
		for _, ref := range o.networkRm.GetAll() {
			rmIDs[ref] = true
			resp, err := c.GetNetwork(ctx, &api.GetNetworkRequest{NetworkId: ref})
			if err == nil {
				rmIDs[resp.GetNetwork().GetId()] = true
			} else if !errors.Is(err, errdefs.ErrNotFound) {
				return err
			}
		}
		add := o.networks.Value()
		if err := resolveNetworks(ctx, c, add); err != nil {
			return err
		}
		task.Networks = slices.DeleteFunc(task.Networks, func(n *api.NetworkAttachmentConfig) bool {
			return rmIDs[n.GetTarget()] || slices.ContainsFunc(add, func(a *api.NetworkAttachmentConfig) bool { return a.GetTarget() == n.GetTarget() })
		})
		task.Networks = append(task.Networks, add...)
	}
	if o.secretRm.Len() > 0 || len(o.secrets.Value()) > 0 {
		add, err := resolveSecrets(ctx, c, o.secrets.Value())
		if err != nil {
			return err
		}
		cs.Secrets = slices.DeleteFunc(cs.Secrets, func(s *api.SecretReference) bool {
			return slices.Contains(o.secretRm.GetAll(), s.GetSecretName()) || slices.Contains(o.secretRm.GetAll(), s.GetSecretId()) ||
				slices.ContainsFunc(add, func(a *api.SecretReference) bool { return a.GetFile().GetName() == s.GetFile().GetName() })
		})
		cs.Secrets = append(cs.Secrets, add...)
	}
	if o.configRm.Len() > 0 || len(o.configs.Value()) > 0 {
		add, err := resolveConfigs(ctx, c, o.configs.Value())
		if err != nil {
			return err
		}
		cs.Configs = slices.DeleteFunc(cs.Configs, func(s *api.ConfigReference) bool {
			return slices.Contains(o.configRm.GetAll(), s.GetConfigName()) || slices.Contains(o.configRm.GetAll(), s.GetConfigId()) ||
				slices.ContainsFunc(add, func(a *api.ConfigReference) bool { return a.GetFile().GetName() == s.GetFile().GetName() })
		})
		cs.Configs = append(cs.Configs, add...)
	}
	return nil
}
