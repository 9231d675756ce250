package testserver

import (
	"context"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/shoal-project/shoal/proto"
)

// GetNode resolves a node by ID, hostname or ID prefix.
func (s *Server) GetNode(_ context.Context, req *api.GetNodeRequest) (*api.GetNodeResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	n, err := nodes.get(s, req.GetNodeId())
	return reply(&api.GetNodeResponse{Node: n}, err)
}

// ListNodes returns the nodes matching role and ID prefix filters.
func (s *Server) ListNodes(_ context.Context, req *api.ListNodesRequest) (*api.ListNodesResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	f := req.GetFilters()
	return &api.ListNodesResponse{Nodes: nodes.list(s, func(n *api.Node) bool {
		return (len(f.GetRoles()) == 0 || slices.Contains(f.GetRoles(), n.GetSpec().GetDesiredRole())) &&
			prefixMatch(f.GetIdPrefixes(), n.GetId())
	})}, nil
}

// UpdateNode stores a new spec when the version matches.
func (s *Server) UpdateNode(_ context.Context, req *api.UpdateNodeRequest) (*api.UpdateNodeResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	i, err := nodes.find(s, req.GetNodeId())
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
	return reply(&api.RemoveNodeResponse{}, nodes.remove(s, req.GetNodeId(), nil))
}

// GetTask resolves a task by ID or ID prefix.
func (s *Server) GetTask(_ context.Context, req *api.GetTaskRequest) (*api.GetTaskResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	t, err := tasks.get(s, req.GetTaskId())
	return reply(&api.GetTaskResponse{Task: t}, err)
}

// ListTasks filters tasks by service, node, desired state and ID prefix.
func (s *Server) ListTasks(_ context.Context, req *api.ListTasksRequest) (*api.ListTasksResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	n := s.count("ListTasks")
	all := s.Tasks
	if s.ListTasksHook != nil {
		all = s.ListTasksHook(n, req)
	}
	f := req.GetFilters()
	var out []*api.Task
	for _, t := range all {
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
	if name != "" && services.hasName(s, name) {
		return nil, status.Errorf(codes.AlreadyExists, "service %s already exists", name)
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
	svc, err := services.get(s, req.GetServiceId())
	if err != nil {
		return nil, err
	}
	if s.GetServiceHook != nil {
		svc = s.GetServiceHook(s.count("GetService"), svc)
	}
	return &api.GetServiceResponse{Service: svc}, nil
}

// UpdateService stores a new spec (or rolls back) when the version matches.
func (s *Server) UpdateService(_ context.Context, req *api.UpdateServiceRequest) (*api.UpdateServiceResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	i, err := services.find(s, req.GetServiceId())
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
	return reply(&api.RemoveServiceResponse{}, services.remove(s, req.GetServiceId(), nil))
}

// ListServices returns every service with its counts.
func (s *Server) ListServices(context.Context, *api.ListServicesRequest) (*api.ListServicesResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	out := &api.ListServicesResponse{Services: services.list(s, nil), Counts: map[string]*api.ServiceCounts{}}
	for _, svc := range s.Services {
		if c, ok := s.Counts[svc.GetId()]; ok {
			out.Counts[svc.GetId()] = clone(c)
		}
	}
	return out, nil
}

// ListClusters returns the cluster objects.
func (s *Server) ListClusters(context.Context, *api.ListClustersRequest) (*api.ListClustersResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return &api.ListClustersResponse{Clusters: clusters.list(s, nil)}, nil
}

// UpdateCluster stores the spec and rotates tokens as asked.
func (s *Server) UpdateCluster(_ context.Context, req *api.UpdateClusterRequest) (*api.UpdateClusterResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	i := slices.IndexFunc(s.Clusters, func(c *api.Cluster) bool { return c.GetId() == req.GetClusterId() })
	if i < 0 {
		return nil, notFound("cluster", req.GetClusterId())
	}
	c := s.Clusters[i]
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
	switch {
	case !c.GetSpec().GetEncryption().GetAutoLockManagers():
		s.UnlockKey = ""
	case req.GetRotation().GetManagerUnlockKey():
		s.UnlockKey = RotatedUnlockKey
	case s.UnlockKey == "":
		s.UnlockKey = UnlockKey
	}
	return &api.UpdateClusterResponse{Cluster: clone(c)}, nil
}

// Canned unlock keys: the first one autolock gets, and the one a rotation
// gives.
const (
	UnlockKey        = "SHKEY-1-QefwcEg1VZAvl1uKmhH8OReM6i+CqWMWv6bgF0F/tvU"
	RotatedUnlockKey = "SHKEY-1-8jDgbUNlJtUe5P/lcr9IXGVxqZpZUXPzd+qzcGp4ZYA"
)

// GetUnlockKey answers with UnlockKey.
func (s *Server) GetUnlockKey(context.Context, *api.GetUnlockKeyRequest) (*api.GetUnlockKeyResponse, error) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return &api.GetUnlockKeyResponse{UnlockKey: s.UnlockKey}, nil
}
