package node

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/hostinfo"
	api "github.com/shoal-project/shoal/proto"
)

// describe is this node's description before the agent reports its own.
func (n *Node) describe() *api.NodeDescription {
	host, _ := os.Hostname()
	return &api.NodeDescription{
		Hostname:  host,
		Platform:  &api.Platform{Os: runtime.GOOS, Architecture: runtime.GOARCH},
		Resources: &api.Resources{NanoCpus: int64(runtime.NumCPU()) * 1e9, MemoryBytes: memTotal()},
		Engine:    &api.EngineDescription{EngineVersion: n.cfg.Version},
	}
}

// memTotal is the machine's memory, or 0 when /proc cannot say (the
// node then advertises no memory, and the scheduler places no memory
// reservation on it).
func memTotal() int64 {
	v, _ := hostinfo.MemTotal(hostinfo.Meminfo)
	return v
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// chooseAdvertise picks the address other nodes use: the one given (an IP,
// IP:port or interface name), else the listen address when it is specific,
// else the node's only non-loopback IPv4 address.
func chooseAdvertise(given, listen string) (string, error) {
	_, port, _ := net.SplitHostPort(listen)
	if given != "" {
		host, p, err := net.SplitHostPort(given)
		if err != nil {
			host, p = given, port
		}
		if net.ParseIP(host) == nil {
			ip, err := interfaceIP(host)
			if err != nil {
				return "", errdefs.InvalidArgument("advertise address %q: %v", given, err)
			}
			host = ip
		}
		return net.JoinHostPort(host, p), nil
	}
	host, _, _ := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return listen, nil
	}
	var found []string
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || strings.HasPrefix(ifc.Name, "shoal") {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				found = append(found, ipn.IP.String())
			}
		}
	}
	switch len(found) {
	case 1:
		return net.JoinHostPort(found[0], port), nil
	case 0:
		return "", errdefs.InvalidArgument("could not find an address to advertise: use --advertise-addr")
	}
	return "", errdefs.InvalidArgument("could not choose an IP address to advertise since this system has multiple addresses (%s): use --advertise-addr", strings.Join(found, ", "))
}

func interfaceIP(name string) (string, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return "", fmt.Errorf("not an IP address or a network interface")
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
	}
	return "", fmt.Errorf("interface %s has no IPv4 address", name)
}
