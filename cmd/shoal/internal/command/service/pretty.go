package service

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/swarm"
)

// prettyWriter builds `service inspect --pretty` the way docker 28.2 lays
// it out: every line is written as "\n" + text (docker's template starts
// each line that way), and keys are aligned with the same tabs and spaces
// docker's template uses, so the output is byte for byte docker's.
type prettyWriter struct{ b strings.Builder }

func (p *prettyWriter) line(format string, a ...any) {
	p.b.WriteString("\n")
	fmt.Fprintf(&p.b, format, a...)
}

func (p *prettyWriter) raw(s string) { p.b.WriteString(s) }

// printPretty writes `service inspect --pretty` for s (in Docker's schema,
// defaults filled in); netName names a network by its ID (the ID itself
// when the network is gone); now dates the update status.
func printPretty(out io.Writer, s swarm.Service, now time.Time, netName func(string) string) {
	p := &prettyWriter{}
	spec := s.Spec
	p.line("ID:\t\t%s", s.ID)
	p.line("Name:\t\t%s", spec.Name)
	if len(spec.Labels) > 0 {
		p.line("Labels:")
		for _, k := range sortedKeys(spec.Labels) {
			if v := spec.Labels[k]; v != "" {
				p.line(" %s=%s", k, v)
			} else {
				p.line(" %s", k)
			}
		}
	}
	p.line("Service Mode:")
	switch m := spec.Mode; {
	case m.Global != nil:
		p.raw("\tGlobal")
	case m.Replicated != nil:
		p.raw("\tReplicated")
		if m.Replicated.Replicas != nil {
			p.line(" Replicas:\t%d", *m.Replicated.Replicas)
		}
	}
	if us := s.UpdateStatus; us != nil && us.State != "" {
		p.line("UpdateStatus:")
		p.line(" State:\t\t%s", us.State)
		if us.StartedAt != nil {
			p.line(" Started:\t%s ago", units.HumanDuration(now.Sub(*us.StartedAt)))
		}
		if us.State == swarm.UpdateStateCompleted && us.CompletedAt != nil {
			p.line(" Completed:\t%s ago", units.HumanDuration(now.Sub(*us.CompletedAt)))
		}
		p.line(" Message:\t%s", us.Message)
	}
	task := spec.TaskTemplate
	p.line("Placement:")
	if pl := task.Placement; pl != nil {
		if len(pl.Constraints) > 0 {
			p.line(" Constraints:\t%v", pl.Constraints)
		}
		var prefs []string
		for _, pref := range pl.Preferences {
			if pref.Spread != nil {
				prefs = append(prefs, "spread="+pref.Spread.SpreadDescriptor)
			}
		}
		if len(prefs) > 0 {
			p.line(" Preferences:   %v", prefs)
		}
		if pl.MaxReplicas > 0 {
			p.line(" Max Replicas Per Node:   %d", pl.MaxReplicas)
		}
	}
	p.updateConfig("UpdateConfig", "Update order:      ", spec.UpdateConfig)
	p.updateConfig("RollbackConfig", "Rollback order:    ", spec.RollbackConfig)
	p.container(task.ContainerSpec)
	if d := task.LogDriver; d != nil {
		p.line("Log Driver:")
		if d.Name != "" {
			p.line(" Name:\t\t%s", d.Name)
		}
		if len(d.Options) > 0 {
			p.line(" LogOpts:")
			for _, k := range sortedKeys(d.Options) {
				if v := d.Options[k]; v != "" {
					p.line("  %s:       %s", k, v)
				} else {
					p.line("  %s", k)
				}
			}
		}
		p.raw("\n") // docker leaves an empty line after the log driver
	}
	p.resources(task.Resources)
	if len(task.Networks) > 0 {
		p.line("Networks:")
		for _, n := range task.Networks {
			p.raw(" " + netName(n.Target))
		}
		p.raw(" ")
	}
	mode := ""
	if spec.EndpointSpec != nil {
		mode = string(spec.EndpointSpec.Mode)
	}
	p.line("Endpoint Mode:\t%s", mode)
	if ports := s.Endpoint.Ports; len(ports) > 0 {
		p.line("Ports:")
		for _, port := range ports {
			p.line(" PublishedPort = %d", port.PublishedPort)
			p.line("  Protocol = %s", port.Protocol)
			p.line("  TargetPort = %d", port.TargetPort)
			p.line("  PublishMode = %s", port.PublishMode)
		}
		p.raw(" ")
	}
	if c := task.ContainerSpec; c != nil && c.Healthcheck != nil {
		hc := c.Healthcheck
		p.line(" Healthcheck:")
		p.line("  Interval = %s", hc.Interval)
		p.line("  Retries = %d", hc.Retries)
		p.line("  StartPeriod =\t%s", hc.StartPeriod)
		p.line("  Timeout =\t%s", hc.Timeout)
		if len(hc.Test) > 0 {
			p.line("  Tests:")
			for _, t := range hc.Test {
				p.line("\t Test = %s", t)
			}
			p.raw(" ")
		}
	}
	p.raw("\n\n")
	_, _ = io.WriteString(out, p.b.String())
}

func (p *prettyWriter) updateConfig(title, orderKey string, u *swarm.UpdateConfig) {
	if u == nil {
		return
	}
	p.line("%s:", title)
	p.line(" Parallelism:\t%d", u.Parallelism)
	if u.Delay > 0 {
		p.line(" Delay:\t\t%s", u.Delay)
	}
	p.line(" On failure:\t%s", u.FailureAction)
	if u.Monitor > 0 {
		p.line(" Monitoring Period: %s", u.Monitor)
	}
	p.line(" Max failure ratio: %v", u.MaxFailureRatio)
	p.line(" %s%s", orderKey, u.Order)
}

func (p *prettyWriter) container(c *swarm.ContainerSpec) {
	if c == nil {
		c = &swarm.ContainerSpec{}
	}
	p.line("ContainerSpec:")
	p.line(" Image:\t\t%s", c.Image)
	if len(c.Args) > 0 {
		p.line(" Args:\t\t%s ", strings.Join(c.Args, " "))
	}
	if len(c.Env) > 0 {
		p.line(" Env:\t\t%s ", strings.Join(c.Env, " "))
	}
	if c.Dir != "" {
		p.line(" Dir:\t\t%s", c.Dir)
	}
	if c.Init != nil {
		p.line(" Init:\t\t%t", *c.Init)
	}
	if c.User != "" {
		p.line(" User: %s", c.User)
	}
	if len(c.CapabilityAdd) > 0 || len(c.CapabilityDrop) > 0 {
		p.line("Capabilities:")
		if len(c.CapabilityAdd) > 0 {
			p.line(" Add: %s", strings.Join(c.CapabilityAdd, ", "))
		}
		if len(c.CapabilityDrop) > 0 {
			p.line(" Drop: %s", strings.Join(c.CapabilityDrop, ", "))
		}
	}
	if len(c.Sysctls) > 0 {
		p.line("SysCtls:")
		for _, k := range sortedKeys(c.Sysctls) {
			if v := c.Sysctls[k]; v != "" {
				p.line(" %s: %s", k, v)
			} else {
				p.line(" %s", k)
			}
		}
	}
	if len(c.Ulimits) > 0 {
		limits := map[string]string{}
		for _, u := range c.Ulimits {
			limits[u.Name] = fmt.Sprintf("%d:%d", u.Soft, u.Hard)
		}
		p.line("Ulimits:")
		for _, k := range sortedKeys(limits) {
			p.line(" %s: %s", k, limits[k])
		}
	}
	if len(c.Mounts) > 0 {
		p.line("Mounts:")
		for _, m := range c.Mounts {
			p.line(" Target:\t%s", m.Target)
			p.line("  Source:\t%s", m.Source)
			p.line("  ReadOnly:\t%t", m.ReadOnly)
			p.line("  Type:\t\t%s", m.Type)
		}
	}
	if len(c.Configs) > 0 {
		p.line("Configs:")
		for _, r := range c.Configs {
			p.line(" Target:\t%s", fileName(r.File))
			p.line("  Source:\t%s", r.ConfigName)
		}
	}
	if len(c.Secrets) > 0 {
		p.line("Secrets:")
		for _, r := range c.Secrets {
			p.line(" Target:\t%s", fileName(r.File))
			p.line("  Source:\t%s", r.SecretName)
		}
	}
}

func fileName[F interface {
	*swarm.ConfigReferenceFileTarget | *swarm.SecretReferenceFileTarget
}](f F) string {
	switch t := any(f).(type) {
	case *swarm.ConfigReferenceFileTarget:
		if t != nil {
			return t.Name
		}
	case *swarm.SecretReferenceFileTarget:
		if t != nil {
			return t.Name
		}
	}
	return ""
}

func (p *prettyWriter) resources(r *swarm.ResourceRequirements) {
	if r == nil {
		return
	}
	p.line("Resources:")
	if res := r.Reservations; res != nil && (res.NanoCPUs > 0 || res.MemoryBytes > 0) {
		p.line(" Reservations:")
		if res.NanoCPUs > 0 {
			p.line("  CPU:\t\t%v", float64(res.NanoCPUs)/1e9)
		}
		if res.MemoryBytes > 0 {
			p.line("  Memory:\t%s", units.BytesSize(float64(res.MemoryBytes)))
		}
	}
	if l := r.Limits; l != nil && (l.NanoCPUs > 0 || l.MemoryBytes > 0 || l.Pids > 0) {
		p.line(" Limits:")
		if l.NanoCPUs > 0 {
			p.line("  CPU:\t\t%v", float64(l.NanoCPUs)/1e9)
		}
		if l.MemoryBytes > 0 {
			p.line("  Memory:\t%s", units.BytesSize(float64(l.MemoryBytes)))
		}
	}
	if l := r.Limits; l != nil && l.Pids > 0 {
		p.line("  PIDs:\t\t%d", l.Pids)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
