package containerd

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/logopt"
)

// Defaults of Config. Each applies when the field is left zero.
const (
	// DefaultAddress is containerd's socket as Debian's package runs it.
	DefaultAddress = "/run/containerd/containerd.sock"
	// DefaultNamespace is shoal's containerd namespace; never "moby" or
	// "default", so shoal's containers stay apart from anybody else's.
	DefaultNamespace = "shoal"
	// DefaultDataDir keeps the executor's files beside the daemon's state.
	DefaultDataDir = "/var/lib/shoal/executor"
	// DefaultBridge is the node-local bridge every task's veth attaches to.
	DefaultBridge = "shoal0"
	// DefaultSnapshotter unpacks images as overlay layers (the kernel here
	// has overlayfs; "native" copies every layer and is much slower).
	DefaultSnapshotter = "overlayfs"
	// DefaultRuntime is the runc shim v2, which survives daemon restarts.
	DefaultRuntime = "io.containerd.runc.v2"
	// DefaultMTU of the bridge and the veths.
	DefaultMTU = 1500
	// SubnetPool is where a node-local subnet is chosen when Config.Subnet
	// is empty: the first /LocalSubnetBits that no interface of the network
	// namespace uses.
	SubnetPool = "10.213.0.0/16"
	// LocalSubnetBits is the prefix length of a chosen node-local subnet:
	// a /20 gives a node 4,093 task addresses (every task has one, for
	// egress, as Docker's docker_gwbridge, a /16), and the pool 16 nodes
	// in one network namespace. A /24 capped a node at 253 tasks. A node
	// keeps the subnet it recorded at its first start.
	LocalSubnetBits = 20
)

// Config configures an Executor. It must not be changed after New.
type Config struct {
	// Address of containerd's gRPC socket. Default DefaultAddress.
	Address string
	// Namespace is the containerd namespace of the node's containers,
	// images and snapshots. Default DefaultNamespace; tests and simulated
	// hosts give each their own.
	Namespace string
	// DataDir holds logs, network namespaces, the IPAM state and per-task
	// files (see the package doc for the layout). Default DefaultDataDir.
	DataDir string
	// InsecureRegistries are registries pulled over plain HTTP: "host",
	// "host:port" or a CIDR of IP addresses. Loopback registries
	// (localhost, 127.0.0.0/8, ::1) are always plain HTTP, as in Docker.
	InsecureRegistries []string
	// NodeID labels every container (io.shoal.node.id) and fills the
	// {{.Node.ID}} template. It may be empty before the node joins a swarm.
	NodeID string
	// Hostname of the node for Describe and {{.Node.Hostname}}. Default
	// os.Hostname().
	Hostname string
	// Bridge is the name of the node-local bridge (at most 15 bytes).
	// Default DefaultBridge.
	Bridge string
	// Subnet is the IPv4 CIDR of the bridge, e.g. "10.213.7.0/24"; the
	// bridge takes its first address, tasks get the others. Empty: a free
	// /LocalSubnetBits of SubnetPool is chosen at the first start and kept in DataDir,
	// so the node keeps its subnet across restarts.
	Subnet string
	// MTU of the bridge and veths. Default DefaultMTU.
	MTU int
	// Nameservers written to each task's /etc/resolv.conf when its spec
	// names none. Default: the host's /etc/resolv.conf nameservers that are
	// reachable from a task (loopback ones are dropped).
	Nameservers []string
	// Snapshotter unpacks images and holds container root filesystems.
	// Default DefaultSnapshotter.
	Snapshotter string
	// Runtime is the containerd runtime (shim) name. Default DefaultRuntime.
	Runtime string
	// Version is shoald's version, reported as "shoald VERSION" by Describe.
	// Default "dev".
	Version string
	// LogDriver is the absolute path of the log driver binary,
	// shoal-logdriver (package logdriver); the shim starts it beside each
	// new task whose log driver is json-file or local, and the task's
	// output is kept as records with per-line times and streams, in files
	// rotated at the task's max-size, max-file of them. The daemon finds it
	// next to shoald. Empty: the shim writes stdout and stderr mixed into a
	// plain file (cio.LogFile), without times and without a size limit,
	// which is enough for tools and tests of other packages that have no
	// driver binary.
	LogDriver string
	// LogDir holds the tasks' log files. Default <DataDir>/logs; put it
	// on another filesystem to keep what containers write away from the
	// node's state. A task keeps the directory it was prepared with.
	LogDir string
	// LogMaxSize and LogMaxFile are the node's default limits of a task's
	// log (shoald --log-opt max-size=… max-file=…), which a service's own
	// --log-opt values override key by key. Defaults logopt.DefaultMaxSize
	// (10 MiB) and logopt.DefaultMaxFile (3).
	LogMaxSize int64
	LogMaxFile int
	// Overlay attaches tasks to their overlay networks (overlay.Agent,
	// owned by the caller: the executor neither starts nor closes it).
	// nil: the node has no overlay, and tasks with networks are rejected.
	Overlay Overlay
}

// identifier is containerd's rule for namespace names (the stricter of its
// identifier rules), so an invalid name fails in validate, not at first use.
var identifier = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$`)

// validate fills zero fields with their defaults and rejects contradictions.
func (c *Config) validate() error {
	if c.Address == "" {
		c.Address = DefaultAddress
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if !identifier.MatchString(c.Namespace) || len(c.Namespace) > 76 {
		return errdefs.InvalidArgument("containerd namespace %q: want letters, digits and single ._- between them, at most 76 bytes", c.Namespace)
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return errdefs.InvalidArgument("data dir %q: %v", c.DataDir, err)
	}
	c.DataDir = abs
	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return errdefs.InvalidArgument("no hostname given and os.Hostname failed: %v", err)
		}
		c.Hostname = h
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if len(c.Bridge) > 15 || strings.ContainsAny(c.Bridge, "/ \t\n:") {
		return errdefs.InvalidArgument("bridge name %q: at most 15 bytes, no '/', ':' or spaces", c.Bridge)
	}
	if c.Subnet != "" {
		p, err := netip.ParsePrefix(c.Subnet)
		if err != nil || !p.Addr().Is4() {
			return errdefs.InvalidArgument("subnet %q: want an IPv4 CIDR such as 10.213.7.0/24", c.Subnet)
		}
		if p.Bits() > 29 || p.Bits() < 8 {
			return errdefs.InvalidArgument("subnet %q: prefix length must be between /8 and /29", c.Subnet)
		}
		c.Subnet = p.Masked().String()
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.MTU < 576 || c.MTU > 65535 {
		return errdefs.InvalidArgument("mtu %d: want 576..65535", c.MTU)
	}
	for _, r := range c.InsecureRegistries {
		if r == "" || strings.Contains(r, "/") && !isCIDR(r) {
			return errdefs.InvalidArgument("insecure registry %q: want host, host:port or a CIDR", r)
		}
	}
	for _, ns := range c.Nameservers {
		if _, err := netip.ParseAddr(ns); err != nil {
			return errdefs.InvalidArgument("nameserver %q: not an IP address", ns)
		}
	}
	if c.Nameservers == nil {
		c.Nameservers = hostNameservers("/etc/resolv.conf")
	}
	if c.Snapshotter == "" {
		c.Snapshotter = DefaultSnapshotter
	}
	if c.Runtime == "" {
		c.Runtime = DefaultRuntime
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.LogDir == "" {
		c.LogDir = filepath.Join(c.DataDir, "logs")
	}
	if c.LogDir, err = filepath.Abs(c.LogDir); err != nil {
		return errdefs.InvalidArgument("log dir %q: %v", c.LogDir, err)
	}
	if c.LogMaxSize < 0 || c.LogMaxFile < 0 || c.LogMaxFile > logopt.MaxMaxFile {
		return errdefs.InvalidArgument("log limits max-size %d, max-file %d: want a positive size and 1 to %d files", c.LogMaxSize, c.LogMaxFile, logopt.MaxMaxFile)
	}
	if c.LogMaxSize == 0 {
		c.LogMaxSize = logopt.DefaultMaxSize
	}
	if c.LogMaxFile == 0 {
		c.LogMaxFile = logopt.DefaultMaxFile
	}
	if c.LogDriver != "" {
		if !filepath.IsAbs(c.LogDriver) {
			return errdefs.InvalidArgument("log driver %q: want an absolute path", c.LogDriver)
		}
		fi, err := os.Stat(c.LogDriver)
		if err != nil {
			return errdefs.InvalidArgument("log driver: %v", err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return errdefs.InvalidArgument("log driver %q: not an executable file", c.LogDriver)
		}
	}
	return nil
}

func isCIDR(s string) bool {
	_, err := netip.ParsePrefix(s)
	return err == nil
}

// plainHTTP tells whether host ("name" or "name:port") is pulled over plain
// HTTP: loopback always (Docker's default insecure range), otherwise when
// InsecureRegistries lists the host, the host with its port, or a CIDR
// holding its address.
func (c *Config) plainHTTP(host string) bool {
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.Trim(name, "[]")
	if name == "localhost" {
		return true
	}
	addr, addrErr := netip.ParseAddr(name)
	if addrErr == nil && addr.IsLoopback() {
		return true
	}
	for _, r := range c.InsecureRegistries {
		if r == host || r == name {
			return true
		}
		if p, err := netip.ParsePrefix(r); err == nil && addrErr == nil && p.Contains(addr.Unmap()) {
			return true
		}
	}
	return false
}

// hostNameservers reads the nameservers of a resolv.conf that a task can
// reach: loopback resolvers of the host are not reachable from a task's
// own network namespace.
func hostNameservers(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return []string{}
	}
	out := []string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil || a.IsLoopback() {
			continue
		}
		out = append(out, a.String())
	}
	return out
}

// Paths of the on-disk layout; see the package doc. logPath is the plain
// file of cio.LogFile, recordLogPath the log driver's current file (its
// rotated files add .1, .2…): ".log" and ".cri", so no task's file can be
// another's whatever dots their IDs hold.
func (c *Config) logPath(taskID string) string {
	return filepath.Join(c.LogDir, taskID+".log")
}
func (c *Config) recordLogPath(taskID string) string {
	return filepath.Join(c.LogDir, taskID+".cri")
}
func (c *Config) netnsPath(taskID string) string { return filepath.Join(c.DataDir, "netns", taskID) }
func (c *Config) taskDir(taskID string) string   { return filepath.Join(c.DataDir, "tasks", taskID) }
func (c *Config) volumeDir(name string) string {
	return filepath.Join(c.DataDir, "volumes", name, "_data")
}

func (c *Config) String() string {
	return fmt.Sprintf("containerd %s namespace %s data %s bridge %s", c.Address, c.Namespace, c.DataDir, c.Bridge)
}
