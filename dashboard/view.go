package dashboard

import (
	"fmt"
	"sort"
	"strings"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// The views are what the page shows, in the CLI's words: each field is a
// column of `node ls`, `service ls` or `service ps`, or a raw value the
// page computes with (versions, state numbers).

// NodeView is one node, as `node ls` and `node inspect` show it.
type NodeView struct {
	ID            string            `json:"id"`
	Version       uint64            `json:"version"`
	Hostname      string            `json:"hostname"`
	Role          string            `json:"role"`         // manager, worker
	Status        string            `json:"status"`       // Ready, Down, Unknown, Disconnected
	Availability  string            `json:"availability"` // Active, Pause, Drain
	ManagerStatus string            `json:"managerStatus"`
	Addr          string            `json:"addr"`
	RaftAddr      string            `json:"raftAddr,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	EngineLabels  map[string]string `json:"engineLabels,omitempty"`
	NanoCPUs      int64             `json:"nanoCPUs"`
	MemoryBytes   int64             `json:"memoryBytes"`
	EngineVersion string            `json:"engineVersion"`
}

// ServiceView is one service, as `service ls` shows it, with its update
// status (`service inspect`'s words: updating, paused, completed,
// rollback_started, rollback_paused, rollback_completed).
type ServiceView struct {
	ID            string `json:"id"`
	Version       uint64 `json:"version"`
	Name          string `json:"name"`
	Mode          string `json:"mode"` // replicated, global, replicated job, global job
	Replicas      uint64 `json:"replicas"`
	MaxPerNode    uint64 `json:"maxPerNode,omitempty"`
	TotalJobs     uint64 `json:"totalCompletions,omitempty"`
	MaxConcurrent uint64 `json:"maxConcurrent,omitempty"`
	JobIteration  uint64 `json:"jobIteration,omitempty"`
	Image         string `json:"image"`
	Ports         string `json:"ports"`
	SpecVersion   uint64 `json:"specVersion"`
	UpdateState   string `json:"updateState,omitempty"`
	UpdateMessage string `json:"updateMessage,omitempty"`
	CanRollback   bool   `json:"canRollback"`
	Created       string `json:"created,omitempty"`
}

// TaskView is one task, as `service ps` shows it.
type TaskView struct {
	ID           string `json:"id"`
	Version      uint64 `json:"version"`
	Name         string `json:"name"` // web.1, or web.<node ID> for global services
	ServiceID    string `json:"serviceId"`
	Slot         uint64 `json:"slot"`
	NodeID       string `json:"nodeId"`
	Image        string `json:"image"`
	State        string `json:"state"`        // Running, Failed, ...
	DesiredState string `json:"desiredState"` // Running, Shutdown, ...
	StateNum     int32  `json:"stateNum"`
	DesiredNum   int32  `json:"desiredNum"`
	Error        string `json:"error,omitempty"`
	Message      string `json:"message,omitempty"`
	Timestamp    string `json:"timestamp,omitempty"` // RFC 3339, the state's time
	SpecVersion  uint64 `json:"specVersion"`
	JobIteration uint64 `json:"jobIteration,omitempty"`
}

// prettyState writes an enum name as the CLI does: RUNNING -> Running,
// ON_FAILURE -> On-failure.
func prettyState(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, "_", "-"))
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// managerStatus is `node ls`'s MANAGER STATUS: Leader, Reachable,
// Unreachable or Unknown, with a disk fault in parentheses; "" for workers.
func managerStatus(n *api.Node) string {
	ms := n.GetManagerStatus()
	if ms == nil {
		return ""
	}
	s := "Unknown"
	switch {
	case ms.GetLeader():
		s = "Leader"
	case ms.GetReachability() == api.Reachability_REACHABLE:
		s = "Reachable"
	case ms.GetReachability() == api.Reachability_UNREACHABLE:
		s = "Unreachable"
	}
	if f := ms.GetDiskFault(); f != "" {
		s += " (" + f + ")"
	}
	return s
}

func nodeView(n *api.Node) *NodeView {
	role := "worker"
	if n.GetRole() == api.NodeRole_MANAGER {
		role = "manager"
	}
	res := n.GetDescription().GetResources()
	return &NodeView{
		ID:            n.GetId(),
		Version:       n.GetMeta().GetVersion(),
		Hostname:      n.GetDescription().GetHostname(),
		Role:          role,
		Status:        prettyState(n.GetStatus().GetState().String()),
		Availability:  prettyState(n.GetSpec().GetAvailability().String()),
		ManagerStatus: managerStatus(n),
		Addr:          n.GetStatus().GetAddr(),
		RaftAddr:      n.GetManagerStatus().GetAddr(),
		Labels:        n.GetSpec().GetAnnotations().GetLabels(),
		EngineLabels:  n.GetDescription().GetEngine().GetLabels(),
		NanoCPUs:      res.GetNanoCpus(),
		MemoryBytes:   res.GetMemoryBytes(),
		EngineVersion: n.GetDescription().GetEngine().GetEngineVersion(),
	}
}

// modeName is `service ls`'s MODE.
func modeName(spec *api.ServiceSpec) string {
	switch spec.GetMode().(type) {
	case *api.ServiceSpec_Global:
		return "global"
	case *api.ServiceSpec_ReplicatedJob:
		return "replicated job"
	case *api.ServiceSpec_GlobalJob:
		return "global job"
	}
	return "replicated"
}

// displayImage drops the digest of a tagged reference, as `service ls`.
func displayImage(image string) string {
	name, _, ok := strings.Cut(image, "@")
	if !ok {
		return image
	}
	if strings.Contains(name[strings.LastIndex(name, "/")+1:], ":") {
		return name
	}
	return image
}

// formatPorts prints ports as `service ls` does: *:PUBLISHED->TARGET/PROTO,
// runs of consecutive ports joined into ranges.
func formatPorts(ports []*api.PortConfig) string {
	sorted := append([]*api.PortConfig(nil), ports...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.GetProtocol() != b.GetProtocol() {
			return a.GetProtocol() < b.GetProtocol()
		}
		if a.GetPublishedPort() != b.GetPublishedPort() {
			return a.GetPublishedPort() < b.GetPublishedPort()
		}
		return a.GetTargetPort() < b.GetTargetPort()
	})
	var out []string
	for i := 0; i < len(sorted); {
		first := sorted[i]
		j := i + 1
		for j < len(sorted) && sorted[j].GetProtocol() == first.GetProtocol() &&
			sorted[j].GetPublishedPort() == first.GetPublishedPort()+uint32(j-i) &&
			sorted[j].GetTargetPort() == first.GetTargetPort()+uint32(j-i) && first.GetPublishedPort() != 0 {
			j++
		}
		last := sorted[j-1]
		proto := strings.ToLower(first.GetProtocol().String())
		if j-i == 1 {
			out = append(out, fmt.Sprintf("*:%d->%d/%s", first.GetPublishedPort(), first.GetTargetPort(), proto))
		} else {
			out = append(out, fmt.Sprintf("*:%d-%d->%d-%d/%s", first.GetPublishedPort(), last.GetPublishedPort(),
				first.GetTargetPort(), last.GetTargetPort(), proto))
		}
		i = j
	}
	return strings.Join(out, ", ")
}

func serviceView(s *api.Service) *ServiceView {
	spec := s.GetSpec()
	v := &ServiceView{
		ID:          s.GetId(),
		Version:     s.GetMeta().GetVersion(),
		Name:        spec.GetAnnotations().GetName(),
		Mode:        modeName(spec),
		Image:       displayImage(spec.GetTask().GetContainer().GetImage()),
		SpecVersion: s.GetSpecVersion(),
		CanRollback: s.GetPreviousSpec() != nil,
		MaxPerNode:  spec.GetTask().GetPlacement().GetMaxReplicas(),
	}
	switch m := spec.GetMode().(type) {
	case *api.ServiceSpec_Replicated:
		v.Replicas = m.Replicated.GetReplicas()
	case *api.ServiceSpec_ReplicatedJob:
		v.TotalJobs, v.MaxConcurrent = m.ReplicatedJob.GetTotalCompletions(), m.ReplicatedJob.GetMaxConcurrent()
	}
	v.JobIteration = s.GetJobStatus().GetJobIteration()
	ports := s.GetEndpoint().GetPorts()
	if len(ports) == 0 {
		ports = spec.GetEndpoint().GetPorts()
	}
	var ingress []*api.PortConfig
	for _, p := range ports {
		if p.GetPublishMode() == api.PortConfig_INGRESS {
			ingress = append(ingress, p)
		}
	}
	v.Ports = formatPorts(ingress)
	if us := s.GetUpdateStatus(); us != nil && us.GetState() != api.UpdateStatus_UNKNOWN {
		v.UpdateState = strings.ToLower(us.GetState().String())
		v.UpdateMessage = us.GetMessage()
	}
	if ts := s.GetMeta().GetCreatedAt(); ts != nil {
		v.Created = ts.AsTime().UTC().Format(time.RFC3339Nano)
	}
	return v
}

// taskName is `service ps`'s NAME without history indentation: web.1, or
// web.<node ID> for a global service's task.
func taskName(t *api.Task) string {
	svc := t.GetServiceAnnotations().GetName()
	if svc == "" {
		svc = t.GetServiceId()
	}
	if t.GetSlot() != 0 {
		return fmt.Sprintf("%s.%d", svc, t.GetSlot())
	}
	return svc + "." + t.GetNodeId()
}

func taskView(t *api.Task) *TaskView {
	v := &TaskView{
		ID:           t.GetId(),
		Version:      t.GetMeta().GetVersion(),
		Name:         taskName(t),
		ServiceID:    t.GetServiceId(),
		Slot:         t.GetSlot(),
		NodeID:       t.GetNodeId(),
		Image:        displayImage(t.GetSpec().GetContainer().GetImage()),
		State:        prettyState(t.GetStatus().GetState().String()),
		DesiredState: prettyState(t.GetDesiredState().String()),
		StateNum:     int32(t.GetStatus().GetState()),
		DesiredNum:   int32(t.GetDesiredState()),
		Error:        t.GetStatus().GetErr(),
		Message:      t.GetStatus().GetMessage(),
		SpecVersion:  t.GetSpecVersion(),
		JobIteration: t.GetJobIteration(),
	}
	ts := t.GetStatus().GetTimestamp()
	if ts == nil {
		ts = t.GetMeta().GetUpdatedAt()
	}
	if ts != nil {
		v.Timestamp = ts.AsTime().UTC().Format(time.RFC3339Nano)
	}
	return v
}
