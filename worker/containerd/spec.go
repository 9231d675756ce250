package containerd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	api "github.com/shoal-project/shoal/proto"
)

// Label keys every shoal container carries. User labels cannot override them.
const (
	LabelNodeID    = "io.shoal.node.id"
	LabelServiceID = "io.shoal.service.id"
	LabelTaskID    = "io.shoal.task.id"
)

// Docker's labels on swarm task containers, set too so that tools written
// for Docker (ctr/nerdctl filters, log shippers, cAdvisor) find tasks by
// service and task name as they do on a Docker swarm node.
const (
	labelSwarmNodeID      = "com.docker.swarm.node.id"
	labelSwarmServiceID   = "com.docker.swarm.service.id"
	labelSwarmServiceName = "com.docker.swarm.service.name"
	labelSwarmTask        = "com.docker.swarm.task"
	labelSwarmTaskID      = "com.docker.swarm.task.id"
	labelSwarmTaskName    = "com.docker.swarm.task.name"
)

const (
	// defaultStopGrace is Docker's and swarm's stop_grace_period.
	defaultStopGrace = 10 * time.Second
	// cfsPeriod is the CFS period nano_cpus are turned into a quota over
	// (100 ms, as Docker uses).
	cfsPeriod = 100_000
	// minMemory is Docker's smallest memory limit; below it runc's own
	// start-up is OOM killed, which reads as a confusing task failure.
	minMemory = 6 << 20
	// defaultPathEnv is set when neither the image nor the spec sets PATH.
	defaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// imageDefaults is the part of an image config a container inherits.
type imageDefaults struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
	StopSignal string
	// Healthcheck is Docker's image health check, nil when none.
	Healthcheck *imageHealth
}

// runSpec is a task's container spec resolved against its image and with
// templates expanded: everything the OCI spec is built from. It is computed
// by resolveSpec, a pure function, so the Docker compatibility rules are
// tested without a runtime.
type runSpec struct {
	Image      string
	Args       []string
	Env        []string
	Cwd        string
	User       string
	Groups     []string
	Hostname   string
	ReadOnly   bool
	Mounts     []specs.Mount
	VolumeDirs []string // directories to create for volume mounts
	Memory     int64
	CPUQuota   int64
	Pids       int64
	StopSignal syscall.Signal
	StopGrace  time.Duration
	Labels     map[string]string
	CapAdd     []string
	CapDrop    []string
	Sysctls    map[string]string
	Rlimits    []specs.POSIXRlimit
	// Hosts, DNS: inputs of the task's /etc files.
	Hosts      []string
	DNS        []string
	DNSSearch  []string
	DNSOptions []string
	etcTargets map[string]bool // mount targets taken: /etc files the user mounts over and more
	// Health is the health check, nil when none (health.go).
	Health *healthConfig
	// Deps are the secret and config files (secrets.go).
	Deps []depFile
}

var volumeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// resolveSpec validates t's container spec and combines it with the image
// defaults as Docker does. Every error it returns is a fault of the spec.
func resolveSpec(t *api.Task, tc *templateContext, img imageDefaults, cfg *Config) (*runSpec, error) {
	cs := t.GetSpec().GetContainer()
	if cs == nil {
		return nil, errors.New("task spec has no container spec")
	}
	if cs.GetImage() == "" {
		return nil, errors.New("container spec has no image")
	}
	rs := &runSpec{Image: cs.GetImage(), ReadOnly: cs.GetReadOnly(), etcTargets: map[string]bool{}}

	// Docker: an entrypoint override (command) drops the image's Cmd too;
	// args replace the Cmd only.
	entrypoint, cmd := img.Entrypoint, img.Cmd
	if len(cs.GetCommand()) > 0 {
		entrypoint, cmd = cs.GetCommand(), nil
	}
	if len(cs.GetArgs()) > 0 {
		cmd = cs.GetArgs()
	}
	rs.Args = append(append([]string{}, entrypoint...), cmd...)
	if len(rs.Args) == 0 {
		return nil, errors.New("no command specified: the image has no entrypoint or cmd and the spec sets none")
	}

	var err error
	rs.Hostname = t.GetId()
	if len(rs.Hostname) > 12 {
		rs.Hostname = rs.Hostname[:12]
	}
	if cs.GetHostname() != "" {
		if rs.Hostname, err = tc.expand("hostname", cs.GetHostname()); err != nil {
			return nil, err
		}
		if len(rs.Hostname) > 64 || strings.ContainsAny(rs.Hostname, " \t\n/") {
			return nil, fmt.Errorf("invalid hostname %q", rs.Hostname)
		}
	}

	env := []string{defaultPathEnv, "HOSTNAME=" + rs.Hostname}
	env = append(env, img.Env...)
	for _, e := range cs.GetEnv() {
		k, v, hasValue := strings.Cut(e, "=")
		if k == "" {
			return nil, fmt.Errorf("invalid environment variable %q", e)
		}
		if !hasValue {
			// "NAME" alone unsets, as in Docker's API.
			env = append(env, k)
			continue
		}
		if v, err = tc.expand("env "+k, v); err != nil {
			return nil, err
		}
		env = append(env, k+"="+v)
	}
	rs.Env = mergeEnv(env)

	rs.Cwd = cs.GetDir()
	if rs.Cwd == "" {
		rs.Cwd = img.WorkingDir
	}
	if rs.Cwd == "" {
		rs.Cwd = "/"
	}
	if !path.IsAbs(rs.Cwd) {
		return nil, fmt.Errorf("working directory %q is not absolute", rs.Cwd)
	}
	rs.User = cs.GetUser()
	if rs.User == "" {
		rs.User = img.User
	}
	rs.Groups = cs.GetGroups()

	if err := resolveMounts(t, tc, cfg, rs); err != nil {
		return nil, err
	}
	if rs.Deps, err = planDeps(cs, rs.etcTargets); err != nil {
		return nil, err
	}
	if rs.Health, err = resolveHealth(cs.GetHealthcheck(), img.Healthcheck); err != nil {
		return nil, err
	}

	lim := t.GetSpec().GetResources().GetLimits()
	if m := lim.GetMemoryBytes(); m != 0 {
		if m < minMemory {
			return nil, fmt.Errorf("memory limit %d bytes: the minimum is 6MB", m)
		}
		rs.Memory = m
	}
	if n := lim.GetNanoCpus(); n != 0 {
		if n < 0 {
			return nil, fmt.Errorf("invalid nano CPUs %d", n)
		}
		// 1e9 nano CPUs is one full period.
		rs.CPUQuota = max(n*cfsPeriod/1e9, 1000) // the kernel's minimum quota is 1 ms
	}
	if p := lim.GetPids(); p != 0 {
		rs.Pids = p
	}

	sig := cs.GetStopSignal()
	if sig == "" {
		sig = img.StopSignal
	}
	if rs.StopSignal, err = parseSignal(sig); err != nil {
		return nil, err
	}
	rs.StopGrace = defaultStopGrace
	if g := cs.GetStopGracePeriod(); g != nil {
		if rs.StopGrace = g.AsDuration(); rs.StopGrace < 0 {
			return nil, fmt.Errorf("negative stop grace period %s", rs.StopGrace)
		}
	}

	rs.Labels = map[string]string{}
	for k, v := range cs.GetLabels() {
		rs.Labels[k] = v
	}
	rs.Labels[LabelNodeID] = tc.Node.ID
	rs.Labels[LabelServiceID] = t.GetServiceId()
	rs.Labels[LabelTaskID] = t.GetId()
	rs.Labels[labelSwarmNodeID] = tc.Node.ID
	rs.Labels[labelSwarmServiceID] = t.GetServiceId()
	rs.Labels[labelSwarmServiceName] = t.GetServiceAnnotations().GetName()
	rs.Labels[labelSwarmTask] = ""
	rs.Labels[labelSwarmTaskID] = t.GetId()
	rs.Labels[labelSwarmTaskName] = TaskName(t)

	for _, c := range cs.GetCapAdd() {
		rs.CapAdd = append(rs.CapAdd, capName(c))
	}
	for _, c := range cs.GetCapDrop() {
		rs.CapDrop = append(rs.CapDrop, capName(c))
	}
	rs.Sysctls = cs.GetSysctls()
	for _, u := range cs.GetUlimits() {
		if u.GetName() == "" || u.GetSoft() > u.GetHard() {
			return nil, fmt.Errorf("invalid ulimit %s=%d:%d", u.GetName(), u.GetSoft(), u.GetHard())
		}
		rs.Rlimits = append(rs.Rlimits, specs.POSIXRlimit{
			Type: "RLIMIT_" + strings.ToUpper(u.GetName()), Soft: uint64(u.GetSoft()), Hard: uint64(u.GetHard()),
		})
	}
	rs.Hosts = cs.GetHosts()
	rs.DNS = cfg.Nameservers
	if dc := cs.GetDnsConfig(); dc != nil {
		if len(dc.GetNameservers()) > 0 {
			rs.DNS = dc.GetNameservers()
		}
		rs.DNSSearch, rs.DNSOptions = dc.GetSearch(), dc.GetOptions()
	}
	return rs, nil
}

func resolveMounts(t *api.Task, tc *templateContext, cfg *Config, rs *runSpec) error {
	seen := map[string]bool{}
	for _, m := range t.GetSpec().GetContainer().GetMounts() {
		target := path.Clean(m.GetTarget())
		if !path.IsAbs(m.GetTarget()) || target == "/" {
			return fmt.Errorf("invalid mount target %q: must be an absolute path other than /", m.GetTarget())
		}
		if seen[target] {
			return fmt.Errorf("duplicate mount point: %s", target)
		}
		seen[target] = true
		rs.etcTargets[target] = true
		src, err := tc.expand("mount source", m.GetSource())
		if err != nil {
			return err
		}
		rw := "rw"
		if m.GetReadOnly() {
			rw = "ro"
		}
		switch m.GetType() {
		case api.Mount_BIND:
			if !filepath.IsAbs(src) {
				return fmt.Errorf("invalid mount config for type \"bind\": invalid mount path: %q mount path must be absolute", src)
			}
			if _, err := os.Stat(src); err != nil {
				return fmt.Errorf("invalid mount config for type \"bind\": bind source path does not exist: %s", src)
			}
			rs.Mounts = append(rs.Mounts, specs.Mount{Destination: target, Type: "bind", Source: src, Options: []string{"rbind", "rprivate", rw}})
		case api.Mount_TMPFS:
			if src != "" {
				return fmt.Errorf("invalid mount config for type \"tmpfs\": source must be empty, not %q", src)
			}
			opts := []string{"nosuid", "nodev", "noexec", rw}
			if s := m.GetTmpfsSizeBytes(); s > 0 {
				opts = append(opts, "size="+strconv.FormatInt(s, 10))
			} else if s < 0 {
				return fmt.Errorf("invalid tmpfs size %d", s)
			}
			if mode := m.GetTmpfsMode(); mode != 0 {
				opts = append(opts, "mode="+strconv.FormatUint(uint64(mode&0o7777), 8))
			}
			rs.Mounts = append(rs.Mounts, specs.Mount{Destination: target, Type: "tmpfs", Source: "tmpfs", Options: opts})
		case api.Mount_VOLUME:
			// Local volumes only: a named volume is a directory that outlives
			// its tasks; an anonymous one lives and dies with its task.
			var dir string
			if src == "" {
				h := sha256.Sum256([]byte(target))
				dir = filepath.Join(cfg.taskDir(t.GetId()), "volumes", hex.EncodeToString(h[:8]))
			} else {
				if !volumeName.MatchString(src) {
					return fmt.Errorf("invalid volume name %q: want [A-Za-z0-9][A-Za-z0-9_.-]*", src)
				}
				dir = cfg.volumeDir(src)
			}
			rs.VolumeDirs = append(rs.VolumeDirs, dir)
			rs.Mounts = append(rs.Mounts, specs.Mount{Destination: target, Type: "bind", Source: dir, Options: []string{"rbind", "rprivate", rw}})
		default:
			return fmt.Errorf("unsupported mount type %v", m.GetType())
		}
	}
	return nil
}

// mergeEnv keeps one entry per name, at its first position, with its last
// value; a bare "NAME" removes the variable.
func mergeEnv(env []string) []string {
	idx := map[string]int{}
	var out []string
	removed := map[string]bool{}
	for _, e := range env {
		k, _, hasValue := strings.Cut(e, "=")
		if !hasValue {
			removed[k] = true
			continue
		}
		delete(removed, k)
		if i, ok := idx[k]; ok {
			out[i] = e
			continue
		}
		idx[k] = len(out)
		out = append(out, e)
	}
	if len(removed) == 0 {
		return out
	}
	kept := out[:0]
	for _, e := range out {
		k, _, _ := strings.Cut(e, "=")
		if !removed[k] {
			kept = append(kept, e)
		}
	}
	return kept
}

// parseSignal reads "SIGTERM", "TERM", "sigterm" or "15"; "" is SIGTERM.
func parseSignal(s string) (syscall.Signal, error) {
	if s == "" {
		return unix.SIGTERM, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid stop signal %q", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("invalid stop signal %q", s)
}

func capName(c string) string {
	c = strings.ToUpper(c)
	if c == "ALL" || strings.HasPrefix(c, "CAP_") {
		return c
	}
	return "CAP_" + c
}

// ociOpts turns a resolved spec into containerd spec options, applied by
// client.WithNewSpec over containerd's default spec (its default mounts,
// capabilities, masked paths and namespaces).
func (rs *runSpec) ociOpts(netnsPath, taskDir string) []oci.SpecOpts {
	opts := []oci.SpecOpts{
		// Docker's defaults where containerd's differ: the standard devices
		// allowed, and setuid binaries working (no_new_privs off).
		oci.WithDefaultUnixDevices,
		oci.WithNewPrivileges,
		oci.WithProcessArgs(rs.Args...),
		oci.WithEnv(rs.Env),
		oci.WithProcessCwd(rs.Cwd),
		oci.WithHostname(rs.Hostname),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: netnsPath}),
	}
	if rs.User != "" {
		opts = append(opts, oci.WithUser(rs.User), withAdditionalGIDsOf(rs.User))
	} else {
		opts = append(opts, oci.WithAdditionalGIDs("root"))
	}
	if len(rs.Groups) > 0 {
		opts = append(opts, oci.WithAppendAdditionalGroups(rs.Groups...))
	}
	if rs.ReadOnly {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	mounts := append([]specs.Mount{}, rs.Mounts...)
	mounts = append(mounts, depMounts(filepath.Join(taskDir, secretsDirName), rs.Deps)...)
	for _, f := range []string{"hosts", "resolv.conf", "hostname"} {
		if target := "/etc/" + f; !rs.etcTargets[target] {
			mounts = append(mounts, specs.Mount{Destination: target, Type: "bind", Source: filepath.Join(taskDir, f), Options: []string{"rbind", "rprivate", "ro"}})
		}
	}
	opts = append(opts, oci.WithMounts(mounts))
	if rs.Memory > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(rs.Memory)))
	}
	if rs.CPUQuota > 0 {
		opts = append(opts, oci.WithCPUCFS(rs.CPUQuota, cfsPeriod))
	}
	if rs.Pids > 0 {
		opts = append(opts, oci.WithPidsLimit(rs.Pids))
	}
	if len(rs.CapAdd) > 0 {
		opts = append(opts, oci.WithAddedCapabilities(rs.CapAdd))
	}
	if len(rs.CapDrop) > 0 {
		opts = append(opts, oci.WithDroppedCapabilities(rs.CapDrop))
	}
	if len(rs.Sysctls) > 0 || len(rs.Rlimits) > 0 {
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			if len(rs.Sysctls) > 0 {
				if s.Linux.Sysctl == nil {
					s.Linux.Sysctl = map[string]string{}
				}
				for k, v := range rs.Sysctls {
					s.Linux.Sysctl[k] = v
				}
			}
			for _, r := range rs.Rlimits {
				replaced := false
				for i := range s.Process.Rlimits {
					if s.Process.Rlimits[i].Type == r.Type {
						s.Process.Rlimits[i], replaced = r, true
					}
				}
				if !replaced {
					s.Process.Rlimits = append(s.Process.Rlimits, r)
				}
			}
			return nil
		})
	}
	return opts
}

// withAdditionalGIDsOf adds the supplementary groups of the user part of
// "user[:group]", as Docker does for a USER.
func withAdditionalGIDsOf(user string) oci.SpecOpts {
	u, _, _ := strings.Cut(user, ":")
	return oci.WithAdditionalGIDs(u)
}
