package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"

	"github.com/moby/moby/api/types/network"
	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/dockerapi/convert"
	api "github.com/shoal-project/shoal/proto"
)

// Docker's option keys shown under Options.
const (
	optMTU = "com.docker.network.driver.mtu"
)

func newInspectCommand(cli *command.Cli) *cobra.Command {
	var (
		format  string
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Long: "Display detailed information on one or more networks\n\n" +
			"The JSON is Docker's (the Engine API's network, as `docker network inspect`\n" +
			"prints it). --verbose fills in what shoal knows across the cluster: Containers,\n" +
			"the running tasks attached to the network on every node; Peers, the nodes\n" +
			"serving it and their data-path addresses; Services, each service's virtual IP\n" +
			"on the network and its tasks.",
		Args: command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := command.CheckInspectFormat(format, false); err != nil {
				return err
			}
			c, err := cli.Control()
			if err != nil {
				return err
			}
			ins := &inspector{ctx: cmd.Context(), c: c, verbose: verbose}
			return command.InspectDocker(cli, args, format, ins.get, func(ref string) string {
				return "Error response from daemon: network " + command.Ref(ref) + " not found"
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "Verbose output for diagnostics")
	return cmd
}

// inspector builds resources, reading the tasks, nodes and services once
// for all the networks of one command.
type inspector struct {
	ctx     context.Context
	c       api.ControlClient
	verbose bool

	loaded   bool
	tasks    []*api.Task
	nodes    map[string]*api.Node
	services []*api.Service
}

func (ins *inspector) load() error {
	if ins.loaded {
		return nil
	}
	tasks, err := ins.c.ListTasks(ins.ctx, &api.ListTasksRequest{Filters: &api.ListFilters{DesiredStates: []api.TaskState{api.TaskState_RUNNING}}})
	if err != nil {
		return err
	}
	nodes, err := ins.c.ListNodes(ins.ctx, &api.ListNodesRequest{})
	if err != nil {
		return err
	}
	ins.nodes = map[string]*api.Node{}
	for _, n := range nodes.GetNodes() {
		ins.nodes[n.GetId()] = n
	}
	for _, t := range tasks.GetTasks() {
		if t.GetDesiredState() == api.TaskState_RUNNING {
			ins.tasks = append(ins.tasks, t)
		}
	}
	sort.Slice(ins.tasks, func(i, j int) bool { return taskName(ins.tasks[i]) < taskName(ins.tasks[j]) })
	if ins.verbose {
		svcs, err := ins.c.ListServices(ins.ctx, &api.ListServicesRequest{})
		if err != nil {
			return err
		}
		ins.services = svcs.GetServices()
	}
	ins.loaded = true
	return nil
}

func (ins *inspector) get(ref string) (network.Inspect, error) {
	resp, err := ins.c.GetNetwork(ins.ctx, &api.GetNetworkRequest{NetworkId: ref})
	if err != nil {
		return network.Inspect{}, err
	}
	n := resp.GetNetwork()
	r := convert.NetworkInspectToMoby(n)
	if !ins.verbose {
		return r, nil
	}
	if err := ins.load(); err != nil {
		return network.Inspect{}, err
	}
	peers := map[string]bool{}
	for _, t := range ins.tasks {
		att := attachment(t, n.GetId())
		if att == nil {
			continue
		}
		key := t.GetStatus().GetContainer().GetContainerId()
		if key == "" {
			key = t.GetId()
		}
		v4, v6 := splitAddrs(att.GetAddresses())
		ep := network.EndpointResource{Name: taskName(t), EndpointID: t.GetId(), IPv4Address: v4, IPv6Address: v6}
		if mac, err := net.ParseMAC(att.GetMac()); err == nil {
			ep.MacAddress = network.HardwareAddr(mac)
		}
		r.Containers[key] = ep
		if t.GetNodeId() != "" {
			peers[t.GetNodeId()] = true
		}
	}
	for id, node := range ins.nodes {
		for _, a := range node.GetAttachments() {
			if a.GetNetworkId() == n.GetId() {
				peers[id] = true
			}
		}
	}
	for id := range peers {
		p := network.PeerInfo{Name: id}
		if node := ins.nodes[id]; node != nil {
			if h := node.GetDescription().GetHostname(); h != "" {
				p.Name = h
			}
			p.IP = hostAddr(dataPathAddr(node))
		}
		r.Peers = append(r.Peers, p)
	}
	sort.Slice(r.Peers, func(i, j int) bool { return r.Peers[i].Name < r.Peers[j].Name })
	r.Services = ins.servicesOn(n)
	return r, nil
}

// servicesOn lists the services attached to n: by their spec, their VIP or
// their running tasks.
func (ins *inspector) servicesOn(n *api.Network) map[string]network.ServiceInfo {
	out := map[string]network.ServiceInfo{}
	name := n.GetSpec().GetAnnotations().GetName()
	for _, s := range ins.services {
		info := network.ServiceInfo{Ports: []string{}, Tasks: []network.Task{}}
		on := false
		for _, a := range s.GetSpec().GetTask().GetNetworks() {
			if a.GetTarget() == n.GetId() || a.GetTarget() == name {
				on = true
			}
		}
		for _, v := range s.GetEndpoint().GetVirtualIps() {
			if v.GetNetworkId() == n.GetId() {
				info.VIP, on = prefixAddr(v.GetAddr()), true
			}
		}
		for _, p := range s.GetEndpoint().GetPorts() {
			info.Ports = append(info.Ports, fmt.Sprintf("Target: %d, Publish: %d", p.GetTargetPort(), p.GetPublishedPort()))
		}
		for _, t := range ins.tasks {
			if t.GetServiceId() != s.GetId() {
				continue
			}
			att := attachment(t, n.GetId())
			if att == nil {
				continue
			}
			on = true
			v4, v6 := splitAddrs(att.GetAddresses())
			ip := v4.Addr()
			if !ip.IsValid() {
				ip = v6.Addr()
			}
			info.Tasks = append(info.Tasks, network.Task{Name: taskName(t), EndpointID: t.GetId(), EndpointIP: ip,
				Info: map[string]string{"Host IP": dataPathAddr(ins.nodes[t.GetNodeId()])}})
		}
		if on {
			out[s.GetSpec().GetAnnotations().GetName()] = info
		}
	}
	return out
}

// attachment is t's attachment to the network netID, or nil.
func attachment(t *api.Task, netID string) *api.NetworkAttachment {
	for _, a := range t.GetNetworks() {
		if a.GetNetworkId() == netID {
			return a
		}
	}
	return nil
}

// taskName is the task's container name, as Docker names it:
// service.slot.taskid, or service.nodeid.taskid for a global service.
func taskName(t *api.Task) string {
	svc := t.GetServiceAnnotations().GetName()
	if svc == "" {
		svc = t.GetServiceId()
	}
	if t.GetSlot() != 0 {
		return fmt.Sprintf("%s.%d.%s", svc, t.GetSlot(), t.GetId())
	}
	return fmt.Sprintf("%s.%s.%s", svc, t.GetNodeId(), t.GetId())
}

// splitAddrs returns the first IPv4 and the first IPv6 address of an
// attachment, in CIDR form as allocated.
func splitAddrs(addrs []string) (v4, v6 netip.Prefix) {
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			continue
		}
		if p.Addr().Is4() && !v4.IsValid() {
			v4 = p
		} else if p.Addr().Is6() && !v6.IsValid() {
			v6 = p
		}
	}
	return v4, v6
}

// prefixAddr is the address of a CIDR ("10.0.1.2/24" -> 10.0.1.2), or of a
// bare address; the zero Addr when s is neither.
func prefixAddr(s string) netip.Addr {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr()
	}
	a, _ := netip.ParseAddr(s)
	return a
}

// hostAddr is the IP of "ip" or "ip:port"; the zero Addr when s is neither.
func hostAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr()
	}
	a, _ := netip.ParseAddr(s)
	return a
}

// dataPathAddr is where other nodes send node's VXLAN traffic: its
// --data-path-addr, else the address it reports.
func dataPathAddr(node *api.Node) string {
	if a := node.GetDescription().GetDataPathAddr(); a != "" {
		return a
	}
	return node.GetStatus().GetAddr()
}
