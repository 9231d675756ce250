package network

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	api "github.com/shoal-project/shoal/proto"
)

// Docker's option keys shown under Options.
const (
	optVXLANIDs = "com.docker.network.driver.overlay.vxlanid_list"
	optMTU      = "com.docker.network.driver.mtu"
)

// resource is `network inspect`'s view of a network, with the field names
// Docker prints (its NetworkResource). Containers are the cluster's running
// tasks on the network (Docker shows only the local node's), Peers the nodes
// that serve it.
type resource struct {
	Name       string
	ID         string `json:"Id"`
	Created    time.Time
	Scope      string
	Driver     string
	EnableIPv6 bool
	IPAM       ipamInfo
	Internal   bool
	Attachable bool
	Ingress    bool
	ConfigFrom configRef
	ConfigOnly bool
	Containers map[string]endpointInfo
	Options    map[string]string
	Labels     map[string]string
	Peers      []peerInfo             `json:",omitempty"`
	Services   map[string]serviceInfo `json:",omitempty"` // --verbose only
}

type ipamInfo struct {
	Driver  string
	Options map[string]string
	Config  []ipamConfig
}

type ipamConfig struct {
	Subnet  string `json:",omitempty"`
	IPRange string `json:",omitempty"`
	Gateway string `json:",omitempty"`
}

type configRef struct{ Network string }

// endpointInfo is one task on the network. EndpointID is the task's ID: a
// task has one attachment per network, so it names the endpoint.
type endpointInfo struct {
	Name        string
	EndpointID  string
	MacAddress  string
	IPv4Address string
	IPv6Address string
}

// peerInfo is a node serving the network and the address its VXLAN traffic
// goes to.
type peerInfo struct {
	Name string
	IP   string
}

// serviceInfo is a service on the network (--verbose): its VIP (empty in
// dnsrr mode), its published ports and its running tasks.
type serviceInfo struct {
	VIP   string
	Ports []string
	Tasks []taskInfo
}

type taskInfo struct {
	Name       string
	EndpointID string
	EndpointIP string
	Info       map[string]string
}

func newInspectCommand(cli *command.Cli) *cobra.Command {
	var (
		format  string
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Long: "Display detailed information on one or more networks\n\n" +
			"Containers lists the running tasks attached to the network, on every node;\n" +
			"Peers the nodes serving it and their data-path addresses. --verbose adds\n" +
			"Services: each service's virtual IP on the network and its tasks.",
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
			return command.InspectJSON(cli, args, format, ins.get, func(ref string) string { return "Error: No such network: " + command.Ref(ref) })
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

func (ins *inspector) get(ref string) (*resource, error) {
	resp, err := ins.c.GetNetwork(ins.ctx, &api.GetNetworkRequest{NetworkId: ref})
	if err != nil {
		return nil, err
	}
	if err := ins.load(); err != nil {
		return nil, err
	}
	n := resp.GetNetwork()
	r := describe(n)
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
		r.Containers[key] = endpointInfo{Name: taskName(t), EndpointID: t.GetId(), MacAddress: att.GetMac(), IPv4Address: v4, IPv6Address: v6}
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
		name, ip := id, ""
		if node := ins.nodes[id]; node != nil {
			if h := node.GetDescription().GetHostname(); h != "" {
				name = h
			}
			ip = dataPathAddr(node)
		}
		r.Peers = append(r.Peers, peerInfo{Name: name, IP: ip})
	}
	sort.Slice(r.Peers, func(i, j int) bool { return r.Peers[i].Name < r.Peers[j].Name })
	if ins.verbose {
		r.Services = ins.servicesOn(n)
	}
	return r, nil
}

// describe fills what the network object alone says.
func describe(n *api.Network) *resource {
	spec := n.GetSpec()
	r := &resource{
		Name:       spec.GetAnnotations().GetName(),
		ID:         n.GetId(),
		Created:    n.GetMeta().GetCreatedAt().AsTime(),
		Scope:      "swarm",
		Driver:     driverName(n),
		EnableIPv6: spec.GetIpv6(),
		IPAM:       ipamInfo{Driver: "default", Config: []ipamConfig{}},
		Internal:   spec.GetInternal(),
		Attachable: spec.GetAttachable(),
		Ingress:    spec.GetIngress(),
		Containers: map[string]endpointInfo{},
		Options:    map[string]string{},
		Labels:     map[string]string{},
	}
	// The allocated subnets once the allocator has run, else what was asked.
	pools := n.GetIpam()
	if len(pools) == 0 {
		pools = spec.GetIpam()
	}
	for _, p := range pools {
		r.IPAM.Config = append(r.IPAM.Config, ipamConfig{Subnet: p.GetSubnet(), IPRange: p.GetRange(), Gateway: p.GetGateway()})
	}
	for k, v := range spec.GetDriver().GetOptions() {
		r.Options[k] = v
	}
	if spec.GetEncrypted() {
		r.Options["encrypted"] = ""
	}
	if n.GetVni() != 0 {
		r.Options[optVXLANIDs] = strconv.FormatUint(uint64(n.GetVni()), 10)
	}
	if n.GetMtu() != 0 {
		r.Options[optMTU] = strconv.FormatUint(uint64(n.GetMtu()), 10)
	}
	for k, v := range spec.GetAnnotations().GetLabels() {
		r.Labels[k] = v
	}
	return r
}

// servicesOn lists the services attached to n: by their spec, their VIP or
// their running tasks.
func (ins *inspector) servicesOn(n *api.Network) map[string]serviceInfo {
	out := map[string]serviceInfo{}
	name := n.GetSpec().GetAnnotations().GetName()
	for _, s := range ins.services {
		info := serviceInfo{Ports: []string{}, Tasks: []taskInfo{}}
		on := false
		for _, a := range s.GetSpec().GetTask().GetNetworks() {
			if a.GetTarget() == n.GetId() || a.GetTarget() == name {
				on = true
			}
		}
		for _, v := range s.GetEndpoint().GetVirtualIps() {
			if v.GetNetworkId() == n.GetId() {
				info.VIP, on = bareAddr(v.GetAddr()), true
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
			ip := bareAddr(v4)
			if ip == "" {
				ip = bareAddr(v6)
			}
			info.Tasks = append(info.Tasks, taskInfo{Name: taskName(t), EndpointID: t.GetId(), EndpointIP: ip,
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
func splitAddrs(addrs []string) (v4, v6 string) {
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			continue
		}
		if p.Addr().Is4() && v4 == "" {
			v4 = a
		} else if p.Addr().Is6() && v6 == "" {
			v6 = a
		}
	}
	return v4, v6
}

// bareAddr drops a CIDR's prefix length: "10.0.1.2/24" -> "10.0.1.2".
func bareAddr(s string) string {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i]
	}
	return s
}

// dataPathAddr is where other nodes send node's VXLAN traffic: its
// --data-path-addr, else the address it reports.
func dataPathAddr(node *api.Node) string {
	if a := node.GetDescription().GetDataPathAddr(); a != "" {
		return a
	}
	return node.GetStatus().GetAddr()
}
