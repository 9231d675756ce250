package service

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	units "github.com/docker/go-units"

	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	api "github.com/shoal-project/shoal/proto"
)

// pw writes aligned "Key: value" lines for `inspect --pretty`.
type pw struct{ out io.Writer }

func (p pw) kv(key string, value any) { fmt.Fprintf(p.out, "%-21s%v\n", key+":", value) }
func (p pw) title(t string)           { fmt.Fprintln(p.out, t+":") }

func (p pw) labels(title, indent string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	p.title(title)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(p.out, "%s%s=%s\n", indent, k, m[k])
	}
}

func lower(s fmt.Stringer) string { return strings.ToLower(strings.ReplaceAll(s.String(), "_", "-")) }

// printPretty writes `service inspect --pretty`; netName names a network
// by its ID (the ID itself when the network is gone).
func printPretty(out io.Writer, s *api.Service, now time.Time, netName func(string) string) {
	p := pw{out}
	spec := s.GetSpec()
	fmt.Fprintln(out)
	p.kv("ID", s.GetId())
	p.kv("Name", spec.GetAnnotations().GetName())
	p.labels("Labels", " ", spec.GetAnnotations().GetLabels())
	switch m := spec.GetMode().(type) {
	case *api.ServiceSpec_Global:
		p.kv("Service Mode", "Global")
	case *api.ServiceSpec_ReplicatedJob:
		p.kv("Service Mode", "Replicated Job")
		p.kv(" Max Concurrent", m.ReplicatedJob.GetMaxConcurrent())
		p.kv(" Total Completions", m.ReplicatedJob.GetTotalCompletions())
	case *api.ServiceSpec_GlobalJob:
		p.kv("Service Mode", "Global Job")
	default:
		p.kv("Service Mode", "Replicated")
		p.kv(" Replicas", spec.GetReplicated().GetReplicas())
	}
	if us := s.GetUpdateStatus(); us != nil {
		p.title("UpdateStatus")
		p.kv(" State", lower(us.GetState()))
		if ts := us.GetStartedAt(); ts != nil {
			p.kv(" Started", formatter.HumanAgo(now, ts.AsTime()))
		}
		if ts := us.GetCompletedAt(); ts != nil {
			p.kv(" Completed", formatter.HumanAgo(now, ts.AsTime()))
		}
		p.kv(" Message", us.GetMessage())
	}
	task := spec.GetTask()
	if pl := task.GetPlacement(); pl != nil {
		p.title("Placement")
		if len(pl.GetConstraints()) > 0 {
			p.kv(" Constraints", fmt.Sprint(pl.GetConstraints()))
		}
		var prefs []string
		for _, pp := range pl.GetPreferences() {
			prefs = append(prefs, "Spread="+pp.GetSpreadDescriptor())
		}
		if len(prefs) > 0 {
			p.kv(" Preferences", fmt.Sprint(prefs))
		}
		if pl.GetMaxReplicas() > 0 {
			p.kv(" Max Replicas Per Node", pl.GetMaxReplicas())
		}
	}
	if rp := task.GetRestart(); rp != nil {
		p.title("RestartPolicy")
		p.kv(" Condition", lower(rp.GetCondition()))
		if rp.GetDelay() != nil {
			p.kv(" Delay", rp.GetDelay().AsDuration())
		}
		if rp.GetMaxAttempts() > 0 {
			p.kv(" Max Attempts", rp.GetMaxAttempts())
		}
		if rp.GetWindow() != nil {
			p.kv(" Window", rp.GetWindow().AsDuration())
		}
	}
	printUpdateConfig(p, "UpdateConfig", "Update order", spec.GetUpdate())
	printUpdateConfig(p, "RollbackConfig", "Rollback order", spec.GetRollback())
	printContainer(p, task.GetContainer())
	printLogDriver(p, task.GetLogDriver())
	printResources(p, task.GetResources())
	if len(task.GetNetworks()) > 0 {
		var nets []string
		for _, n := range task.GetNetworks() {
			nets = append(nets, netName(n.GetTarget()))
		}
		p.kv("Networks", strings.Join(nets, " "))
	}
	p.kv("Endpoint Mode", lower(spec.GetEndpoint().GetMode()))
	// Not in Docker's --pretty: the service's virtual IP on each network.
	if vips := s.GetEndpoint().GetVirtualIps(); len(vips) > 0 {
		p.title("Virtual IPs")
		for _, v := range vips {
			fmt.Fprintf(out, " %s: %s\n", netName(v.GetNetworkId()), v.GetAddr())
		}
	}
	ports := s.GetEndpoint().GetPorts()
	if len(ports) == 0 {
		ports = spec.GetEndpoint().GetPorts()
	}
	if len(ports) > 0 {
		p.title("Ports")
		for _, port := range ports {
			fmt.Fprintf(out, " PublishedPort = %d\n  Protocol = %s\n  TargetPort = %d\n  PublishMode = %s\n",
				port.GetPublishedPort(), lower(port.GetProtocol()), port.GetTargetPort(), lower(port.GetPublishMode()))
		}
	}
	fmt.Fprintln(out)
}

func printUpdateConfig(p pw, title, orderKey string, u *api.UpdateConfig) {
	if u == nil {
		return
	}
	p.title(title)
	p.kv(" Parallelism", u.GetParallelism())
	if d := u.GetDelay().AsDuration(); d > 0 {
		p.kv(" Delay", d)
	}
	p.kv(" On failure", lower(u.GetFailureAction()))
	if u.GetMonitor() != nil {
		p.kv(" Monitoring Period", u.GetMonitor().AsDuration())
	}
	p.kv(" Max failure ratio", u.GetMaxFailureRatio())
	p.kv(" "+orderKey, lower(u.GetOrder()))
}

func printContainer(p pw, c *api.ContainerSpec) {
	p.title("ContainerSpec")
	p.kv(" Image", c.GetImage())
	if len(c.GetCommand()) > 0 {
		p.kv(" Command", strings.Join(c.GetCommand(), " "))
	}
	if len(c.GetArgs()) > 0 {
		p.kv(" Args", strings.Join(c.GetArgs(), " "))
	}
	if len(c.GetEnv()) > 0 {
		p.kv(" Env", strings.Join(c.GetEnv(), " "))
	}
	if c.GetDir() != "" {
		p.kv(" Dir", c.GetDir())
	}
	if c.GetUser() != "" {
		p.kv(" User", c.GetUser())
	}
	if c.GetHostname() != "" {
		p.kv(" Hostname", c.GetHostname())
	}
	p.kv(" Init", c.GetInit())
	if c.GetReadOnly() {
		p.kv(" Read Only", true)
	}
	if c.GetStopGracePeriod() != nil {
		p.kv(" StopGracePeriod", c.GetStopGracePeriod().AsDuration())
	}
	if c.GetStopSignal() != "" {
		p.kv(" StopSignal", c.GetStopSignal())
	}
	if len(c.GetCapAdd()) > 0 {
		p.kv(" Capability Add", strings.Join(c.GetCapAdd(), ", "))
	}
	if len(c.GetCapDrop()) > 0 {
		p.kv(" Capability Drop", strings.Join(c.GetCapDrop(), ", "))
	}
	if hc := c.GetHealthcheck(); hc != nil {
		p.title(" Healthcheck")
		p.kv("  Test", strings.Join(hc.GetTest(), " "))
		if hc.GetInterval() != nil {
			p.kv("  Interval", hc.GetInterval().AsDuration())
		}
		if hc.GetTimeout() != nil {
			p.kv("  Timeout", hc.GetTimeout().AsDuration())
		}
		if hc.GetRetries() > 0 {
			p.kv("  Retries", hc.GetRetries())
		}
	}
	if len(c.GetMounts()) > 0 {
		p.title("Mounts")
		for _, m := range c.GetMounts() {
			fmt.Fprintf(p.out, " Target: %s\n  Source: %s\n  ReadOnly: %t\n  Type: %s\n", m.GetTarget(), m.GetSource(), m.GetReadOnly(), lower(m.GetType()))
		}
	}
	if len(c.GetSecrets()) > 0 {
		p.title("Secrets")
		for _, s := range c.GetSecrets() {
			fmt.Fprintf(p.out, " Target: %s\n  Source: %s\n", s.GetFile().GetName(), s.GetSecretName())
		}
	}
	if len(c.GetConfigs()) > 0 {
		p.title("Configs")
		for _, s := range c.GetConfigs() {
			fmt.Fprintf(p.out, " Target: %s\n  Source: %s\n", s.GetFile().GetName(), s.GetConfigName())
		}
	}
}

// printLogDriver shows the service's log driver as Docker's --pretty does:
// its name when it has one, then its options.
func printLogDriver(p pw, d *api.Driver) {
	if d == nil {
		return
	}
	p.title("Log Driver")
	if d.GetName() != "" {
		p.kv(" Name", d.GetName())
	}
	if len(d.GetOptions()) == 0 {
		return
	}
	p.title(" LogOpts")
	keys := make([]string, 0, len(d.GetOptions()))
	for k := range d.GetOptions() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.kv("  "+k, d.GetOptions()[k])
	}
}

func printResources(p pw, r *api.ResourceRequirements) {
	if r == nil {
		return
	}
	p.title("Resources")
	show := func(title string, res *api.Resources) {
		if res == nil {
			return
		}
		p.title(" " + title)
		if res.GetNanoCpus() > 0 {
			p.kv("  CPU", fmt.Sprintf("%g", float64(res.GetNanoCpus())/1e9))
		}
		if res.GetMemoryBytes() > 0 {
			p.kv("  Memory", units.BytesSize(float64(res.GetMemoryBytes())))
		}
		if res.GetPids() > 0 {
			p.kv("  PIDs", res.GetPids())
		}
		for _, g := range res.GetGeneric() {
			p.kv("  "+g.GetKind(), g.GetValue())
		}
	}
	show("Limits", r.GetLimits())
	show("Reservations", r.GetReservations())
}
