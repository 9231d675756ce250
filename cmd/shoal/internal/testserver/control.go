package testserver

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/shoal-project/shoal/proto"
)

func nodeID(n *api.Node) string      { return n.GetId() }
func nodeName(n *api.Node) string    { return n.GetDescription().GetHostname() }
func svcID(s *api.Service) string    { return s.GetId() }
func svcName(s *api.Service) string  { return s.GetSpec().GetAnnotations().GetName() }
func taskID(t *api.Task) string      { return t.GetId() }
func noName[T any](T) string         { return "\x00" }
func netID(n *api.Network) string    { return n.GetId() }
func netName(n *api.Network) string  { return n.GetSpec().GetAnnotations().GetName() }
func conflict() error                { return status.Error(codes.Aborted, "update out of sequence") }
func (s *Server) count(m string) int { n := s.counts[m]; s.counts[m]++; return n }

// GetNode resolves a node by ID, hostname or ID prefix.
func (s *Server) GetNode(_ context.Context, req *api.GetNodeRequest) (*api.GetNodeResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	i, err := resolve("node", req.GetNodeId(), s.Nodes, nodeID, nodeName)
	if err != nil {
		return nil, err
	}
	return &api.GetNodeResponse{Node: clone(s.Nodes[i])}, nil
}

// ListNodes returns the nodes matching role and ID prefix filters.
func (s *Server) ListNodes(_ context.Context, req *api.ListNodesRequest) (*api.ListNodesResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	f := req.GetFilters()
	var out []*api.Node
	for _, n := range s.Nodes {
		if len(f.GetRoles()) > 0 && !slices.Contains(f.GetRoles(), n.GetSpec().GetDesiredRole()) {
			continue
		}
		if !prefixMatch(f.GetIdPrefixes(), n.GetId()) {
			continue
		}
		out = append(out, clone(n))
	}
	return &api.ListNodesResponse{Nodes: out}, nil
}

func prefixMatch(prefixes []string, id string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

// UpdateNode stores a new spec when the version matches.
func (s *Server) UpdateNode(_ context.Context, req *api.UpdateNodeRequest) (*api.UpdateNodeResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	i, err := resolve("node", req.GetNodeId(), s.Nodes, nodeID, nodeName)
	if err != nil {
		return nil, err
	}
	n := s.Nodes[i]
	if n.GetMeta().GetVersion() != req.GetNodeVersion() {
		return nil, conflict()
	}
	n.Spec = clone(req.GetSpec())
	n.Meta.Version++
	return &api.UpdateNodeResponse{Node: clone(n)}, nil
}

// RemoveNode deletes a node.
func (s *Server) RemoveNode(_ context.Context, req *api.RemoveNodeRequest) (*api.RemoveNodeResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	i, err := resolve("node", req.GetNodeId(), s.Nodes, nodeID, nodeName)
	if err != nil {
		return nil, err
	}
	s.Nodes = slices.Delete(s.Nodes, i, i+1)
	return &api.RemoveNodeResponse{}, nil
}

// GetTask resolves a task by ID or ID prefix.
func (s *Server) GetTask(_ context.Context, req *api.GetTaskRequest) (*api.GetTaskResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	i, err := resolve("task", req.GetTaskId(), s.Tasks, taskID, noName[*api.Task])
	if err != nil {
		return nil, err
	}
	return &api.GetTaskResponse{Task: clone(s.Tasks[i])}, nil
}

// ListTasks filters tasks by service, node, desired state and ID prefix.
func (s *Server) ListTasks(_ context.Context, req *api.ListTasksRequest) (*api.ListTasksResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	n := s.count("ListTasks")
	tasks := s.Tasks
	if s.ListTasksHook != nil {
		tasks = s.ListTasksHook(n, req)
	}
	f := req.GetFilters()
	var out []*api.Task
	for _, t := range tasks {
		if len(f.GetServiceIds()) > 0 && !slices.Contains(f.GetServiceIds(), t.GetServiceId()) {
			continue
		}
		if len(f.GetNodeIds()) > 0 && !slices.Contains(f.GetNodeIds(), t.GetNodeId()) {
			continue
		}
		if len(f.GetDesiredStates()) > 0 && !slices.Contains(f.GetDesiredStates(), t.GetDesiredState()) {
			continue
		}
		if !prefixMatch(f.GetIdPrefixes(), t.GetId()) {
			continue
		}
		out = append(out, clone(t))
	}
	return &api.ListTasksResponse{Tasks: out}, nil
}

// CreateService stores a new service.
func (s *Server) CreateService(_ context.Context, req *api.CreateServiceRequest) (*api.CreateServiceResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	name := req.GetSpec().GetAnnotations().GetName()
	for _, svc := range s.Services {
		if name != "" && svcName(svc) == name {
			return nil, status.Errorf(codes.AlreadyExists, "service %s already exists", name)
		}
	}
	svc := &api.Service{
		Id:          s.newID("svc"),
		Meta:        &api.Meta{Version: 1, CreatedAt: timestamppb.New(Now)},
		Spec:        clone(req.GetSpec()),
		SpecVersion: 1,
	}
	s.Services = append(s.Services, svc)
	return &api.CreateServiceResponse{Service: clone(svc), Warnings: s.Warnings}, nil
}

// GetService resolves a service by ID, name or ID prefix.
func (s *Server) GetService(_ context.Context, req *api.GetServiceRequest) (*api.GetServiceResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	i, err := resolve("service", req.GetServiceId(), s.Services, svcID, svcName)
	if err != nil {
		return nil, err
	}
	svc := clone(s.Services[i])
	if s.GetServiceHook != nil {
		svc = s.GetServiceHook(s.count("GetService"), svc)
	}
	return &api.GetServiceResponse{Service: svc}, nil
}

// UpdateService stores a new spec (or rolls back) when the version matches.
func (s *Server) UpdateService(_ context.Context, req *api.UpdateServiceRequest) (*api.UpdateServiceResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	i, err := resolve("service", req.GetServiceId(), s.Services, svcID, svcName)
	if err != nil {
		return nil, err
	}
	svc := s.Services[i]
	if svc.GetMeta().GetVersion() != req.GetServiceVersion() {
		return nil, conflict()
	}
	if req.GetRollback() == api.UpdateServiceRequest_PREVIOUS {
		if svc.GetPreviousSpec() == nil {
			return nil, status.Error(codes.FailedPrecondition, "service "+svcName(svc)+" does not have a previous spec")
		}
		svc.Spec, svc.PreviousSpec = svc.PreviousSpec, svc.Spec
	} else {
		svc.PreviousSpec, svc.Spec = svc.Spec, clone(req.GetSpec())
	}
	svc.Meta.Version++
	svc.SpecVersion++
	return &api.UpdateServiceResponse{Service: clone(svc), Warnings: s.Warnings}, nil
}

// RemoveService deletes a service.
func (s *Server) RemoveService(_ context.Context, req *api.RemoveServiceRequest) (*api.RemoveServiceResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	i, err := resolve("service", req.GetServiceId(), s.Services, svcID, svcName)
	if err != nil {
		return nil, err
	}
	s.Services = slices.Delete(s.Services, i, i+1)
	return &api.RemoveServiceResponse{}, nil
}

// ListServices returns every service with its counts.
func (s *Server) ListServices(context.Context, *api.ListServicesRequest) (*api.ListServicesResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	out := &api.ListServicesResponse{Counts: map[string]*api.ServiceCounts{}}
	for _, svc := range s.Services {
		out.Services = append(out.Services, clone(svc))
		if c, ok := s.Counts[svc.GetId()]; ok {
			out.Counts[svc.GetId()] = clone(c)
		}
	}
	return out, nil
}

// GetNetwork resolves a network by ID, name or ID prefix.
func (s *Server) GetNetwork(_ context.Context, req *api.GetNetworkRequest) (*api.GetNetworkResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	i, err := resolve("network", req.GetNetworkId(), s.Networks, netID, netName)
	if err != nil {
		return nil, err
	}
	return &api.GetNetworkResponse{Network: clone(s.Networks[i])}, nil
}

// ListClusters returns the cluster objects.
func (s *Server) ListClusters(context.Context, *api.ListClustersRequest) (*api.ListClustersResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	out := &api.ListClustersResponse{}
	for _, c := range s.Clusters {
		out.Clusters = append(out.Clusters, clone(c))
	}
	return out, nil
}

// UpdateCluster stores the spec and rotates tokens as asked.
func (s *Server) UpdateCluster(_ context.Context, req *api.UpdateClusterRequest) (*api.UpdateClusterResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	for _, c := range s.Clusters {
		if c.GetId() != req.GetClusterId() {
			continue
		}
		if c.GetMeta().GetVersion() != req.GetClusterVersion() {
			return nil, conflict()
		}
		c.Spec = clone(req.GetSpec())
		c.Meta.Version++
		if req.GetRotation().GetWorkerJoinToken() {
			c.RootCa.JoinTokens.Worker += "-rotated"
		}
		if req.GetRotation().GetManagerJoinToken() {
			c.RootCa.JoinTokens.Manager += "-rotated"
		}
		return &api.UpdateClusterResponse{Cluster: clone(c)}, nil
	}
	return nil, notFound("cluster", req.GetClusterId())
}

// ListSecrets returns the secrets whose names are asked for.
func (s *Server) ListSecrets(_ context.Context, req *api.ListSecretsRequest) (*api.ListSecretsResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	out := &api.ListSecretsResponse{}
	for _, sec := range s.Secrets {
		if names := req.GetFilters().GetNames(); len(names) == 0 || slices.Contains(names, sec.GetSpec().GetAnnotations().GetName()) {
			out.Secrets = append(out.Secrets, clone(sec))
		}
	}
	return out, nil
}

// ListConfigs returns the configs whose names are asked for.
func (s *Server) ListConfigs(_ context.Context, req *api.ListConfigsRequest) (*api.ListConfigsResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	out := &api.ListConfigsResponse{}
	for _, c := range s.Configs {
		if names := req.GetFilters().GetNames(); len(names) == 0 || slices.Contains(names, c.GetSpec().GetAnnotations().GetName()) {
			out.Configs = append(out.Configs, clone(c))
		}
	}
	return out, nil
}
