package convert

import (
	"net/netip"

	"github.com/moby/moby/api/types/swarm"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	api "github.com/shoal-project/shoal/proto"
)

// ServiceSpecToMoby returns Docker's form of s.
func ServiceSpecToMoby(s *api.ServiceSpec) swarm.ServiceSpec {
	out := swarm.ServiceSpec{
		Annotations:    annotationsToMoby(s.GetAnnotations()),
		TaskTemplate:   TaskSpecToMoby(s.GetTask()),
		UpdateConfig:   updateConfigToMoby(s.GetUpdate()),
		RollbackConfig: updateConfigToMoby(s.GetRollback()),
	}
	switch m := s.GetMode().(type) {
	case *api.ServiceSpec_Replicated:
		out.Mode.Replicated = &swarm.ReplicatedService{Replicas: u64(m.Replicated.GetReplicas())}
	case *api.ServiceSpec_Global:
		out.Mode.Global = &swarm.GlobalService{}
	case *api.ServiceSpec_ReplicatedJob:
		out.Mode.ReplicatedJob = &swarm.ReplicatedJob{
			MaxConcurrent:    u64(m.ReplicatedJob.GetMaxConcurrent()),
			TotalCompletions: u64(m.ReplicatedJob.GetTotalCompletions()),
		}
	case *api.ServiceSpec_GlobalJob:
		out.Mode.GlobalJob = &swarm.GlobalJob{}
	}
	if e := s.GetEndpoint(); e != nil {
		es := EndpointSpecToMoby(e)
		out.EndpointSpec = &es
	}
	return out
}

func updateConfigToMoby(u *api.UpdateConfig) *swarm.UpdateConfig {
	if u == nil {
		return nil
	}
	return &swarm.UpdateConfig{
		Parallelism:     u.GetParallelism(),
		Delay:           dur(u.GetDelay()),
		FailureAction:   failureActions.toMoby(u.GetFailureAction()),
		Monitor:         dur(u.GetMonitor()),
		MaxFailureRatio: u.GetMaxFailureRatio(),
		Order:           updateOrders.toMoby(u.GetOrder()),
	}
}

func updateConfigFromMoby(p string, u *swarm.UpdateConfig) (*api.UpdateConfig, error) {
	if u == nil {
		return nil, nil
	}
	fa, err := failureActions.fromMoby(p+".FailureAction", u.FailureAction)
	if err != nil {
		return nil, err
	}
	order, err := updateOrders.fromMoby(p+".Order", u.Order)
	if err != nil {
		return nil, err
	}
	if u.MaxFailureRatio < 0 || u.MaxFailureRatio > 1 {
		return nil, invalid(p+".MaxFailureRatio", "%v is outside 0..1", u.MaxFailureRatio)
	}
	if u.Delay < 0 || u.Monitor < 0 {
		return nil, invalid(p, "Delay and Monitor cannot be negative")
	}
	return &api.UpdateConfig{
		Parallelism:     u.Parallelism,
		Delay:           durFrom(u.Delay),
		FailureAction:   fa,
		Monitor:         durFrom(u.Monitor),
		MaxFailureRatio: u.MaxFailureRatio,
		Order:           order,
	}, nil
}

// EndpointSpecToMoby returns Docker's EndpointSpec for e.
func EndpointSpecToMoby(e *api.EndpointSpec) swarm.EndpointSpec {
	return swarm.EndpointSpec{Mode: resolutionModes.toMoby(e.GetMode()), Ports: portsToMoby(e.GetPorts())}
}

func portsToMoby(ps []*api.PortConfig) []swarm.PortConfig {
	var out []swarm.PortConfig
	for _, p := range ps {
		out = append(out, swarm.PortConfig{
			Name:          p.GetName(),
			Protocol:      protocols.toMoby(p.GetProtocol()),
			TargetPort:    p.GetTargetPort(),
			PublishedPort: p.GetPublishedPort(),
			PublishMode:   publishModes.toMoby(p.GetPublishMode()),
		})
	}
	return out
}

func portsFromMoby(path string, ps []swarm.PortConfig) ([]*api.PortConfig, error) {
	var out []*api.PortConfig
	for i, p := range ps {
		pp := idx(path, i)
		proto, err := protocols.fromMoby(pp+".Protocol", p.Protocol)
		if err != nil {
			return nil, err
		}
		mode, err := publishModes.fromMoby(pp+".PublishMode", p.PublishMode)
		if err != nil {
			return nil, err
		}
		if p.TargetPort == 0 || p.TargetPort > 65535 {
			return nil, invalid(pp+".TargetPort", "%d is not a port number (1-65535)", p.TargetPort)
		}
		if p.PublishedPort > 65535 {
			return nil, invalid(pp+".PublishedPort", "%d is not a port number (0-65535, 0 picks one)", p.PublishedPort)
		}
		out = append(out, &api.PortConfig{Name: p.Name, Protocol: proto, TargetPort: p.TargetPort,
			PublishedPort: p.PublishedPort, PublishMode: mode})
	}
	return out, nil
}

// ServiceSpecFromMoby returns shoal's spec for Docker's, or an error naming
// the first field shoal cannot honour. A spec without a mode, or with
// Replicated and no Replicas, gets one replica, as Docker gives.
func ServiceSpecFromMoby(s *swarm.ServiceSpec) (*api.ServiceSpec, error) {
	task, err := TaskSpecFromMoby(s.TaskTemplate)
	if err != nil {
		return nil, err
	}
	out := &api.ServiceSpec{Annotations: annotationsFromMoby(s.Annotations), Task: task}
	modes := 0
	for _, set := range []bool{s.Mode.Replicated != nil, s.Mode.Global != nil, s.Mode.ReplicatedJob != nil, s.Mode.GlobalJob != nil} {
		if set {
			modes++
		}
	}
	if modes > 1 {
		return nil, invalid("Mode", "set only one of Replicated, Global, ReplicatedJob, GlobalJob")
	}
	switch m := s.Mode; {
	case m.Global != nil:
		out.Mode = &api.ServiceSpec_Global{Global: &api.GlobalService{}}
	case m.GlobalJob != nil:
		out.Mode = &api.ServiceSpec_GlobalJob{GlobalJob: &api.GlobalJob{}}
	case m.ReplicatedJob != nil:
		j := &api.ReplicatedJob{}
		if m.ReplicatedJob.MaxConcurrent != nil {
			j.MaxConcurrent = *m.ReplicatedJob.MaxConcurrent
		}
		if m.ReplicatedJob.TotalCompletions != nil {
			j.TotalCompletions = *m.ReplicatedJob.TotalCompletions
		}
		out.Mode = &api.ServiceSpec_ReplicatedJob{ReplicatedJob: j}
	default:
		replicas := uint64(1)
		if m.Replicated != nil && m.Replicated.Replicas != nil {
			replicas = *m.Replicated.Replicas
		}
		out.Mode = &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: replicas}}
	}
	if out.Update, err = updateConfigFromMoby("UpdateConfig", s.UpdateConfig); err != nil {
		return nil, err
	}
	if out.Rollback, err = updateConfigFromMoby("RollbackConfig", s.RollbackConfig); err != nil {
		return nil, err
	}
	if e := s.EndpointSpec; e != nil {
		mode, err := resolutionModes.fromMoby("EndpointSpec.Mode", e.Mode)
		if err != nil {
			return nil, err
		}
		ports, err := portsFromMoby("EndpointSpec.Ports", e.Ports)
		if err != nil {
			return nil, err
		}
		out.Endpoint = &api.EndpointSpec{Mode: mode, Ports: ports}
	}
	return out, nil
}

// KeepShoalOnly copies into next (a spec converted from Docker's JSON) the
// settings shoal has and Docker's types cannot carry, from cur (the stored
// spec the client read): a port's masquerade flag (same target, protocol
// and published port) and a network attachment's static addresses (same
// target). Without it, a Docker client's read-modify-write update would
// reset them. next is changed in place.
func KeepShoalOnly(next, cur *api.ServiceSpec) {
	if next == nil || cur == nil {
		return
	}
	for _, np := range next.GetEndpoint().GetPorts() {
		for _, cp := range cur.GetEndpoint().GetPorts() {
			if cp.GetMasquerade() && cp.GetTargetPort() == np.GetTargetPort() && cp.GetProtocol() == np.GetProtocol() &&
				cp.GetPublishedPort() == np.GetPublishedPort() && cp.GetPublishMode() == np.GetPublishMode() {
				np.Masquerade = true
			}
		}
	}
	for _, nn := range next.GetTask().GetNetworks() {
		for _, cn := range cur.GetTask().GetNetworks() {
			if cn.GetTarget() == nn.GetTarget() && len(cn.GetAddresses()) > 0 && len(nn.GetAddresses()) == 0 {
				nn.Addresses = cloneStrings(cn.GetAddresses())
			}
		}
	}
}

// ServiceToMoby returns Docker's Service for s. ServiceStatus is left nil:
// the handler fills it from task counts (ServiceStatus) when ?status=true.
func ServiceToMoby(s *api.Service) swarm.Service {
	out := swarm.Service{
		ID:   s.GetId(),
		Meta: Meta(s.GetMeta()),
		Spec: ServiceSpecToMoby(s.GetSpec()),
	}
	if ps := s.GetPreviousSpec(); ps != nil {
		prev := ServiceSpecToMoby(ps)
		out.PreviousSpec = &prev
	}
	if e := s.GetEndpoint(); e != nil {
		out.Endpoint = swarm.Endpoint{Spec: EndpointSpecToMoby(e.GetSpec()), Ports: portsToMoby(e.GetPorts())}
		for _, v := range e.GetVirtualIps() {
			vip := swarm.EndpointVirtualIP{NetworkID: v.GetNetworkId()}
			if p, err := netip.ParsePrefix(v.GetAddr()); err == nil {
				vip.Addr = p
			}
			out.Endpoint.VirtualIPs = append(out.Endpoint.VirtualIPs, vip)
		}
	} else if es := s.GetSpec().GetEndpoint(); es != nil {
		out.Endpoint.Spec = EndpointSpecToMoby(es)
	}
	if out.Endpoint.Spec.Mode == "" {
		// Docker shows the default mode even before allocation.
		out.Endpoint.Spec.Mode = swarm.ResolutionModeVIP
	}
	if u := s.GetUpdateStatus(); u != nil {
		out.UpdateStatus = &swarm.UpdateStatus{
			State:       updateStates.toMoby(u.GetState()),
			StartedAt:   timePtr(u.GetStartedAt()),
			CompletedAt: timePtr(u.GetCompletedAt()),
			Message:     u.GetMessage(),
		}
	}
	if j := s.GetJobStatus(); j != nil {
		out.JobStatus = &swarm.JobStatus{JobIteration: swarm.Version{Index: j.GetJobIteration()}, LastExecution: Time(j.GetLastExecution())}
	}
	return out
}

// TaskCounts are what the handler counts over a service's tasks for
// ?status=true, as Docker counts them: Running, tasks whose observed state
// is running; Desired, the replicas (replicated), the tasks whose desired
// state is running (global) or the jobs' wanted concurrency; Completed, job
// tasks that completed.
type TaskCounts struct {
	Running, Desired, Completed uint64
}

// ServiceStatus returns Docker's ServiceStatus for the counts.
func ServiceStatus(c TaskCounts) *swarm.ServiceStatus {
	return &swarm.ServiceStatus{RunningTasks: c.Running, DesiredTasks: c.Desired, CompletedTasks: c.Completed}
}

// ServiceSpecWithDefaults returns a copy of s with the defaults shoal applies
// written in, as Docker answers GET /services/{id}?insertDefaults=true
// (`docker service inspect` asks for it): stop grace period 10s, an empty
// DNSConfig, empty resources and placement, restart policy any after 5s,
// and for services (not jobs) update and rollback configs of parallelism 1,
// pause on failure, monitor 5s, stop-first; endpoint mode vip.
func ServiceSpecWithDefaults(s *api.ServiceSpec) *api.ServiceSpec {
	out := proto.Clone(s).(*api.ServiceSpec)
	if out.Task == nil {
		out.Task = &api.TaskSpec{}
	}
	t := out.Task
	if t.Container == nil {
		t.Container = &api.ContainerSpec{}
	}
	if t.Container.StopGracePeriod == nil {
		t.Container.StopGracePeriod = durationpb.New(api.DefaultStopGracePeriod)
	}
	if t.Container.DnsConfig == nil {
		t.Container.DnsConfig = &api.DNSConfig{}
	}
	if t.Resources == nil {
		t.Resources = &api.ResourceRequirements{}
	}
	if t.Resources.Limits == nil {
		t.Resources.Limits = &api.Resources{}
	}
	if t.Resources.Reservations == nil {
		t.Resources.Reservations = &api.Resources{}
	}
	t.Restart = t.RestartPolicy()
	if t.Placement == nil {
		t.Placement = &api.Placement{}
	}
	if !out.IsJob() {
		out.Update = api.UpdatePolicy(out.Update)
		out.Rollback = api.UpdatePolicy(out.Rollback)
	}
	if out.Endpoint == nil {
		out.Endpoint = &api.EndpointSpec{}
	}
	return out
}

// ServiceSpecRequest is the body of POST /services/create and
// /services/{id}/update: Docker's ServiceSpec plus the top-level Networks
// of API < 1.44 (deprecated for TaskTemplate.Networks, and gone from the
// moby types), so that strict decoding accepts older clients' bodies.
type ServiceSpecRequest struct {
	swarm.ServiceSpec
	Networks []swarm.NetworkAttachmentConfig `json:",omitempty"`
}

// ServiceSpecFromRequest is ServiceSpecFromMoby for a request body: the
// deprecated top-level Networks move into TaskTemplate.Networks, as
// Docker's daemon did; both set is refused.
func ServiceSpecFromRequest(r *ServiceSpecRequest) (*api.ServiceSpec, error) {
	s := r.ServiceSpec
	if len(r.Networks) > 0 {
		if len(s.TaskTemplate.Networks) > 0 {
			return nil, invalid("Networks", "set either TaskTemplate.Networks or the deprecated top-level Networks, not both")
		}
		s.TaskTemplate.Networks = r.Networks
	}
	return ServiceSpecFromMoby(&s)
}
