package convert

import (
	"net/netip"
	"os"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/swarm"

	api "github.com/shoal-project/shoal/proto"
)

const pathContainer = "TaskTemplate.ContainerSpec"

// ContainerSpecToMoby returns Docker's form of c (nil for nil).
func ContainerSpecToMoby(c *api.ContainerSpec) *swarm.ContainerSpec {
	if c == nil {
		return nil
	}
	out := &swarm.ContainerSpec{
		Image:           c.GetImage(),
		Labels:          copyMap(StackLabelsToMoby(c.GetLabels())),
		Command:         cloneStrings(c.GetCommand()),
		Args:            cloneStrings(c.GetArgs()),
		Hostname:        c.GetHostname(),
		Env:             cloneStrings(c.GetEnv()),
		Dir:             c.GetDir(),
		User:            c.GetUser(),
		Groups:          cloneStrings(c.GetGroups()),
		StopSignal:      c.GetStopSignal(),
		TTY:             c.GetTty(),
		OpenStdin:       c.GetOpenStdin(),
		ReadOnly:        c.GetReadOnly(),
		StopGracePeriod: durPtr(c.GetStopGracePeriod()),
		Hosts:           cloneStrings(c.GetHosts()),
		Sysctls:         copyMap(c.GetSysctls()),
		CapabilityAdd:   cloneStrings(c.GetCapAdd()),
		CapabilityDrop:  cloneStrings(c.GetCapDrop()),
		// What Docker's Linux daemon shows for every service.
		Isolation: container.IsolationDefault,
	}
	if c.GetInit() {
		t := true
		out.Init = &t
	}
	for _, m := range c.GetMounts() {
		out.Mounts = append(out.Mounts, mountToMoby(m))
	}
	if h := c.GetHealthcheck(); h != nil {
		out.Healthcheck = &container.HealthConfig{
			Test:          cloneStrings(h.GetTest()),
			Interval:      dur(h.GetInterval()),
			Timeout:       dur(h.GetTimeout()),
			StartPeriod:   dur(h.GetStartPeriod()),
			StartInterval: dur(h.GetStartInterval()),
			Retries:       int(h.GetRetries()),
		}
	}
	if d := c.GetDnsConfig(); d != nil {
		out.DNSConfig = &swarm.DNSConfig{Search: cloneStrings(d.GetSearch()), Options: cloneStrings(d.GetOptions())}
		for _, ns := range d.GetNameservers() {
			if a, err := netip.ParseAddr(ns); err == nil {
				out.DNSConfig.Nameservers = append(out.DNSConfig.Nameservers, a)
			}
		}
	}
	for _, s := range c.GetSecrets() {
		r := &swarm.SecretReference{SecretID: s.GetSecretId(), SecretName: s.GetSecretName()}
		if f := s.GetFile(); f != nil {
			r.File = &swarm.SecretReferenceFileTarget{Name: f.GetName(), UID: f.GetUid(), GID: f.GetGid(), Mode: os.FileMode(f.GetMode())}
		}
		out.Secrets = append(out.Secrets, r)
	}
	for _, s := range c.GetConfigs() {
		r := &swarm.ConfigReference{ConfigID: s.GetConfigId(), ConfigName: s.GetConfigName()}
		if f := s.GetFile(); f != nil {
			r.File = &swarm.ConfigReferenceFileTarget{Name: f.GetName(), UID: f.GetUid(), GID: f.GetGid(), Mode: os.FileMode(f.GetMode())}
		}
		out.Configs = append(out.Configs, r)
	}
	for _, u := range c.GetUlimits() {
		out.Ulimits = append(out.Ulimits, &container.Ulimit{Name: u.GetName(), Soft: u.GetSoft(), Hard: u.GetHard()})
	}
	return out
}

func mountToMoby(m *api.Mount) mount.Mount {
	out := mount.Mount{
		Type:     mountTypes.toMoby(m.GetType()),
		Source:   m.GetSource(),
		Target:   m.GetTarget(),
		ReadOnly: m.GetReadOnly(),
	}
	if m.GetTmpfsSizeBytes() != 0 || m.GetTmpfsMode() != 0 {
		out.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: m.GetTmpfsSizeBytes(), Mode: os.FileMode(m.GetTmpfsMode())}
	}
	return out
}

// ContainerSpecFromMoby returns shoal's form of c, or an error naming the
// first field shoal cannot honour.
func ContainerSpecFromMoby(c *swarm.ContainerSpec) (*api.ContainerSpec, error) {
	if c == nil {
		return nil, nil
	}
	p := pathContainer
	if err := checkPrivileges(p+".Privileges", c.Privileges); err != nil {
		return nil, err
	}
	if c.Isolation != "" && c.Isolation != container.IsolationDefault {
		return nil, unsupported(p+".Isolation", "isolation "+string(c.Isolation)+" exists only on Windows; leave it empty or \"default\"")
	}
	if c.OomScoreAdj != 0 {
		return nil, unsupported(p+".OomScoreAdj", "shoal does not set the OOM score of task processes; leave it 0")
	}
	out := &api.ContainerSpec{
		Image:           c.Image,
		Labels:          StackLabelsFromMoby(c.Labels),
		Command:         cloneStrings(c.Command),
		Args:            cloneStrings(c.Args),
		Hostname:        c.Hostname,
		Env:             cloneStrings(c.Env),
		Dir:             c.Dir,
		User:            c.User,
		Groups:          cloneStrings(c.Groups),
		Tty:             c.TTY,
		OpenStdin:       c.OpenStdin,
		ReadOnly:        c.ReadOnly,
		StopSignal:      c.StopSignal,
		StopGracePeriod: durFromPtr(c.StopGracePeriod),
		Init:            c.Init != nil && *c.Init,
		CapAdd:          cloneStrings(c.CapabilityAdd),
		CapDrop:         cloneStrings(c.CapabilityDrop),
		Sysctls:         copyMap(c.Sysctls),
		Hosts:           cloneStrings(c.Hosts),
	}
	for i, m := range c.Mounts {
		sm, err := mountFromMoby(idx(p+".Mounts", i), m)
		if err != nil {
			return nil, err
		}
		out.Mounts = append(out.Mounts, sm)
	}
	if h := c.Healthcheck; h != nil {
		out.Healthcheck = &api.HealthConfig{
			Test:          cloneStrings(h.Test),
			Interval:      durFrom(h.Interval),
			Timeout:       durFrom(h.Timeout),
			StartPeriod:   durFrom(h.StartPeriod),
			StartInterval: durFrom(h.StartInterval),
			Retries:       int32(h.Retries),
		}
	}
	if d := c.DNSConfig; d != nil {
		out.DnsConfig = &api.DNSConfig{Search: cloneStrings(d.Search), Options: cloneStrings(d.Options)}
		for i, a := range d.Nameservers {
			if !a.IsValid() {
				return nil, invalid(idx(p+".DNSConfig.Nameservers", i), "a nameserver must be an IP address")
			}
			out.DnsConfig.Nameservers = append(out.DnsConfig.Nameservers, a.String())
		}
	}
	for i, s := range c.Secrets {
		if s == nil {
			return nil, invalid(idx(p+".Secrets", i), "null secret reference")
		}
		r := &api.SecretReference{SecretId: s.SecretID, SecretName: s.SecretName}
		if f := s.File; f != nil {
			r.File = &api.FileTarget{Name: f.Name, Uid: f.UID, Gid: f.GID, Mode: uint32(f.Mode)}
		}
		out.Secrets = append(out.Secrets, r)
	}
	for i, s := range c.Configs {
		if s == nil {
			return nil, invalid(idx(p+".Configs", i), "null config reference")
		}
		if s.Runtime != nil {
			return nil, unsupported(idx(p+".Configs", i)+".Runtime", "runtime config targets exist only for Windows credential specs; use File")
		}
		r := &api.ConfigReference{ConfigId: s.ConfigID, ConfigName: s.ConfigName}
		if f := s.File; f != nil {
			r.File = &api.FileTarget{Name: f.Name, Uid: f.UID, Gid: f.GID, Mode: uint32(f.Mode)}
		}
		out.Configs = append(out.Configs, r)
	}
	for i, u := range c.Ulimits {
		if u == nil {
			return nil, invalid(idx(p+".Ulimits", i), "null ulimit")
		}
		out.Ulimits = append(out.Ulimits, &api.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	return out, nil
}

// checkPrivileges accepts what Docker's CLI sends by default (null
// CredentialSpec and SELinuxContext, NoNewPrivileges false, default seccomp
// and AppArmor) and refuses any real setting: shoal runs tasks with
// containerd's default profile and no SELinux labels.
func checkPrivileges(p string, v *swarm.Privileges) error {
	if v == nil {
		return nil
	}
	if c := v.CredentialSpec; c != nil && (c.Config != "" || c.File != "" || c.Registry != "") {
		return unsupported(p+".CredentialSpec", "credential specs are for Windows gMSA accounts")
	}
	if s := v.SELinuxContext; s != nil && (*s != swarm.SELinuxContext{}) {
		return unsupported(p+".SELinuxContext", "shoal does not label task processes or mounts for SELinux")
	}
	if s := v.Seccomp; s != nil && ((s.Mode != "" && s.Mode != swarm.SeccompModeDefault) || len(s.Profile) > 0) {
		return unsupported(p+".Seccomp", "tasks run with the runtime's default seccomp profile; leave Mode empty or \"default\"")
	}
	if a := v.AppArmor; a != nil && a.Mode != "" && a.Mode != swarm.AppArmorModeDefault {
		return unsupported(p+".AppArmor", "tasks run with the runtime's default AppArmor profile; leave Mode empty or \"default\"")
	}
	if v.NoNewPrivileges {
		return unsupported(p+".NoNewPrivileges", "shoal does not set no_new_privs on task processes yet")
	}
	return nil
}

func mountFromMoby(p string, m mount.Mount) (*api.Mount, error) {
	if m.Type == "" {
		return nil, invalid(p+".Type", "a mount needs a Type: bind, volume or tmpfs")
	}
	t, err := mountTypes.fromMoby(p+".Type", m.Type)
	if err != nil {
		return nil, err
	}
	out := &api.Mount{Type: t, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
	// Consistency is a Docker Desktop (macOS) hint that Linux daemons ignore.
	if b := m.BindOptions; b != nil {
		if t != api.Mount_BIND {
			return nil, invalid(p+".BindOptions", "only a bind mount takes BindOptions")
		}
		if b.Propagation != "" && b.Propagation != mount.PropagationRPrivate {
			return nil, unsupported(p+".BindOptions.Propagation", "bind mounts are rprivate in shoal")
		}
		if b.NonRecursive || b.ReadOnlyNonRecursive || b.ReadOnlyForceRecursive || b.CreateMountpoint {
			return nil, unsupported(p+".BindOptions", "only Propagation rprivate is supported; NonRecursive, ReadOnlyNonRecursive, ReadOnlyForceRecursive and CreateMountpoint are not")
		}
	}
	if v := m.VolumeOptions; v != nil {
		if t != api.Mount_VOLUME {
			return nil, invalid(p+".VolumeOptions", "only a volume mount takes VolumeOptions")
		}
		if v.NoCopy || len(v.Labels) > 0 || v.Subpath != "" {
			return nil, unsupported(p+".VolumeOptions", "shoal's local volumes take no NoCopy, Labels or Subpath")
		}
		if d := v.DriverConfig; d != nil && ((d.Name != "" && d.Name != "local") || len(d.Options) > 0) {
			return nil, unsupported(p+".VolumeOptions.DriverConfig", "shoal has only the local volume driver, without options")
		}
	}
	if m.ImageOptions != nil {
		return nil, unsupported(p+".ImageOptions", "image mounts are not supported")
	}
	if m.ClusterOptions != nil {
		return nil, unsupported(p+".ClusterOptions", "cluster (CSI) volumes are not supported")
	}
	if o := m.TmpfsOptions; o != nil {
		if t != api.Mount_TMPFS {
			return nil, invalid(p+".TmpfsOptions", "only a tmpfs mount takes TmpfsOptions")
		}
		if len(o.Options) > 0 {
			return nil, unsupported(p+".TmpfsOptions.Options", "shoal sets only SizeBytes and Mode of a tmpfs")
		}
		if o.SizeBytes < 0 {
			return nil, invalid(p+".TmpfsOptions.SizeBytes", "%d is negative", o.SizeBytes)
		}
		out.TmpfsSizeBytes = o.SizeBytes
		out.TmpfsMode = uint32(o.Mode)
	}
	return out, nil
}
