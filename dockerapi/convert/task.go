package convert

import (
	"maps"
	"net/netip"

	"github.com/moby/moby/api/types/swarm"

	api "github.com/shoal-project/shoal/proto"
)

// NetworkLookup returns the stored network with the given ID, or nil. The
// handler passes one built from a single ListNetworks call; conversion
// itself does no I/O.
type NetworkLookup func(id string) *api.Network

// TaskToMoby returns Docker's Task for t. Its Labels are the service's
// labels with the task's own on top, so that `docker stack ps` finds a
// stack's tasks by com.docker.stack.namespace. Each network attachment
// carries the full network: from networks when it knows the ID, else built
// from what the attachment itself records (name, subnet, gateway, VNI).
func TaskToMoby(t *api.Task, networks NetworkLookup) swarm.Task {
	labels := labelsOut(t.GetServiceAnnotations().GetLabels())
	maps.Copy(labels, StackLabelsToMoby(t.GetAnnotations().GetLabels()))
	out := swarm.Task{
		ID:           t.GetId(),
		Meta:         Meta(t.GetMeta()),
		Annotations:  swarm.Annotations{Name: t.GetAnnotations().GetName(), Labels: labels},
		Spec:         TaskSpecToMoby(t.GetSpec()),
		ServiceID:    t.GetServiceId(),
		Slot:         int(t.GetSlot()),
		NodeID:       t.GetNodeId(),
		DesiredState: TaskState(t.GetDesiredState()),
	}
	st := t.GetStatus()
	out.Status = swarm.TaskStatus{
		Timestamp: Time(st.GetTimestamp()),
		State:     TaskState(st.GetState()),
		Message:   st.GetMessage(),
		Err:       st.GetErr(),
	}
	ports := st.GetPortStatus().GetPorts()
	if len(ports) == 0 && st.GetState() == api.TaskState_RUNNING {
		ports = servedHostPorts(t.GetEndpoint().GetPorts())
	}
	out.Status.PortStatus.Ports = portsToMoby(ports)
	if c := st.GetContainer(); c != nil {
		out.Status.ContainerStatus = &swarm.ContainerStatus{ContainerID: c.GetContainerId(), PID: int(c.GetPid()), ExitCode: int(c.GetExitCode())}
	}
	// A task past RUNNING in state and desired state no longer holds its
	// addresses (the allocator frees them for other tasks): Docker's
	// allocator clears them from the task, and tools read the addresses
	// they find as live (Prometheus' swarm discovery makes targets of them).
	freed := st.GetState() > api.TaskState_RUNNING && t.GetDesiredState() > api.TaskState_RUNNING
	for _, a := range t.GetNetworks() {
		att := swarm.NetworkAttachment{Network: attachmentNetwork(a, networks)}
		for _, addr := range a.GetAddresses() {
			if freed {
				break
			}
			if p, err := netip.ParsePrefix(addr); err == nil {
				att.Addresses = append(att.Addresses, p)
			}
		}
		out.NetworksAttachments = append(out.NetworksAttachments, att)
	}
	if it := t.GetJobIteration(); it != 0 {
		// shoal numbers job runs from 1; 0 means the task is not a job's.
		out.JobIteration = &swarm.Version{Index: it}
	}
	return out
}

// servedHostPorts are the host-mode ports a running task's node serves for
// it: those with a published and a target port (shoal's routing mesh leaves
// out a host-mode port published as 0). Docker's worker records them in the
// task's PortStatus, from the container's port bindings, and tools read them
// there (Prometheus' swarm discovery makes a node-address target of each);
// shoal's worker records none.
func servedHostPorts(ps []*api.PortConfig) []*api.PortConfig {
	var out []*api.PortConfig
	for _, p := range ps {
		if p.GetPublishMode() == api.PortConfig_HOST && p.GetPublishedPort() != 0 && p.GetTargetPort() != 0 {
			out = append(out, p)
		}
	}
	return out
}

func attachmentNetwork(a *api.NetworkAttachment, networks NetworkLookup) swarm.Network {
	if networks != nil {
		if n := networks(a.GetNetworkId()); n != nil {
			return NetworkToMoby(n)
		}
	}
	// Networks are immutable; the attachment holds a copy of their data-path facts.
	n := &api.Network{
		Id: a.GetNetworkId(),
		Spec: &api.NetworkSpec{
			Annotations: &api.Annotations{Name: a.GetNetworkName()},
			Driver:      &api.Driver{Name: "overlay"},
			Internal:    a.GetInternal(),
			Ingress:     a.GetIngress(),
		},
		Vni: a.GetVni(),
		Mtu: a.GetMtu(),
	}
	if a.GetSubnet() != "" {
		n.Ipam = []*api.IPAMConfig{{Subnet: a.GetSubnet(), Gateway: a.GetGateway()}}
	}
	return NetworkToMoby(n)
}
