package controlapi

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/ids"
	"github.com/shoal-project/shoal/internal/specs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Membership is what the Control API needs to know about raft members, to
// show MANAGER STATUS and to change roles.
type Membership interface {
	Members() []raftstore.MemberStatus
}

// Server implements api.ControlServer on the leader's store. Followers never
// reach it: the manager forwards their Control calls to the leader.
type Server struct {
	api.UnimplementedControlServer
	store   *raftstore.Store
	members Membership
	clock   clockwork.Clock
	// newID names new services, networks, secrets and configs.
	newID func() string
	// pageBytes overrides api.MaxListPageBytes (tests).
	pageBytes int
	// portMu serializes the service writes that publish ports, so that
	// two of them cannot both take a port (see lockPorts).
	portMu sync.Mutex
}

// Option changes a Server's defaults.
type Option func(*Server)

// WithIDs names new objects with gen instead of random IDs: tests whose
// output shows IDs (the CLI's golden files) give a deterministic gen.
func WithIDs(gen func() string) Option { return func(s *Server) { s.newID = gen } }

// New returns a Control server over store.
func New(store *raftstore.Store, members Membership, clock clockwork.Clock, opts ...Option) *Server {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	s := &Server{store: store, members: members, clock: clock, newID: ids.New}
	for _, o := range opts {
		o(s)
	}
	return s
}

var _ api.ControlServer = (*Server)(nil)

func serviceName(s *api.Service) string { return s.GetSpec().GetAnnotations().GetName() }

// ---- services ----

// CreateService validates a spec and creates the service (named, when
// the spec has no name, as Docker names it).
func (s *Server) CreateService(ctx context.Context, req *api.CreateServiceRequest) (*api.CreateServiceResponse, error) {
	id := s.newID()
	spec := withGeneratedName(req.GetSpec(), id)
	if err := specs.ValidateService(spec); err != nil {
		return nil, err
	}
	if err := specs.ValidatePorts(spec.GetEndpoint()); err != nil {
		return nil, err
	}
	svc := &api.Service{Id: id, Spec: spec, SpecVersion: 1}
	if spec.IsJob() {
		svc.JobStatus = &api.JobStatus{JobIteration: 1}
	}
	defer s.lockPorts(len(spec.GetEndpoint().GetPorts()) > 0)()
	err := s.store.Update(ctx, func(tx *raftstore.Tx) error {
		if err := checkReferences(tx.ReadTx, svc.Spec); err != nil {
			return err
		}
		if err := checkNetworkCapacity(tx.ReadTx, svc.Spec); err != nil {
			return err
		}
		if err := checkIngressCapacity(tx.ReadTx, svc.Spec); err != nil {
			return err
		}
		if other := tx.ServiceByName(serviceName(svc)); other != nil {
			return errdefs.AlreadyExists("name conflicts with an existing object: service %s already exists (ID %s); use `shoal service update` to change it", serviceName(svc), other.Id)
		}
		if err := allocatePorts(tx.ReadTx, svc); err != nil {
			return err
		}
		return tx.Create(svc)
	})
	if err != nil {
		return nil, err
	}
	var out *api.Service
	s.store.View(func(tx raftstore.ReadTx) { out = tx.Service(svc.Id) })
	if out == nil {
		out = svc
	}
	return &api.CreateServiceResponse{Service: out}, nil
}

func (s *Server) lookupService(ref string) (*api.Service, error) {
	var out *api.Service
	var err error
	s.store.View(func(tx raftstore.ReadTx) { out, err = lookupServiceTx(tx, ref) })
	return out, err
}

func lookupServiceTx(tx raftstore.ReadTx, ref string) (*api.Service, error) {
	out, err := raftstore.Lookup(tx, raftstore.KindService, ref, serviceName)
	if errdefs.IsNotFound(err) {
		return nil, errdefs.NotFound("service %s not found", refText(ref))
	}
	return out, err
}

// GetService returns a service by ID, ID prefix or name.
func (s *Server) GetService(_ context.Context, req *api.GetServiceRequest) (*api.GetServiceResponse, error) {
	svc, err := s.lookupService(req.GetServiceId())
	if err != nil {
		return nil, err
	}
	return &api.GetServiceResponse{Service: svc}, nil
}

// UpdateService replaces a service's spec (or rolls it back). Only a real
// change bumps the spec version and so starts an update. A version given
// by the caller conflicts only when the spec changed since that version:
// status writes (task states, update progress) do not count.
func (s *Server) UpdateService(ctx context.Context, req *api.UpdateServiceRequest) (*api.UpdateServiceResponse, error) {
	rollback := req.GetRollback() == api.UpdateServiceRequest_PREVIOUS
	spec := req.GetSpec()
	if !rollback {
		if err := specs.ValidateService(spec); err != nil {
			return nil, err
		}
		if err := specs.ValidatePorts(spec.GetEndpoint()); err != nil {
			return nil, err
		}
	}
	var out *api.Service
	defer s.lockPorts(rollback || len(spec.GetEndpoint().GetPorts()) > 0)()
	err := s.update(ctx, func(tx *raftstore.Tx) error {
		out = nil
		cur, err := lookupServiceTx(tx.ReadTx, req.GetServiceId())
		if err != nil {
			return err
		}
		if err := checkVersion("service", serviceName(cur), req.GetServiceVersion(), cur.GetMeta().GetVersion(), cur.GetSpecBaseVersion()); err != nil {
			return err
		}
		given := spec
		if !rollback {
			// Networks by ID before comparing, so that a spec naming
			// them the same way again changes nothing.
			given = proto.Clone(spec).(*api.ServiceSpec)
			if err := resolveNetworks(tx.ReadTx, given); err != nil {
				return err
			}
		}
		next, err := s.nextService(cur, given, rollback)
		if err != nil || next == nil {
			out = cur // nothing to do
			return err
		}
		if err := checkReferences(tx.ReadTx, next.Spec); err != nil {
			return err
		}
		// The ports change with the spec (a rollback's too), or the
		// update is refused. An update that leaves the endpoint alone
		// leaves the ports to the allocator.
		if rollback || !proto.Equal(next.GetSpec().GetEndpoint(), cur.GetSpec().GetEndpoint()) {
			if err := allocatePorts(tx.ReadTx, next); err != nil {
				return err
			}
		}
		next.SpecBaseVersion = cur.GetMeta().GetVersion()
		out = next
		return tx.Update(next)
	})
	if err != nil {
		return nil, err
	}
	s.store.View(func(tx raftstore.ReadTx) {
		if fresh := tx.Service(out.Id); fresh != nil {
			out = fresh
		}
	})
	return &api.UpdateServiceResponse{Service: out}, nil
}

// nextService is cur with spec applied (or rolled back); nil when spec
// changes nothing.
func (s *Server) nextService(cur *api.Service, spec *api.ServiceSpec, rollback bool) (*api.Service, error) {
	next := proto.Clone(cur).(*api.Service)
	if rollback {
		if cur.PreviousSpec == nil {
			return nil, errdefs.FailedPrecondition("service %s has no previous spec to roll back to", serviceName(cur))
		}
		next.Spec, next.PreviousSpec = proto.Clone(cur.PreviousSpec).(*api.ServiceSpec), proto.Clone(cur.Spec).(*api.ServiceSpec)
		next.PreviousSpecVersion = cur.SpecVersion
		next.SpecVersion = cur.SpecVersion + 1
		next.RolledBack = true
		next.UpdateStatus = &api.UpdateStatus{State: api.UpdateStatus_ROLLBACK_STARTED, Message: "manually requested rollback",
			StartedAt: timestamppb.New(s.clock.Now())}
		return next, nil
	}
	if spec.GetAnnotations().GetName() != serviceName(cur) {
		return nil, errdefs.InvalidArgument("renaming services is not supported (from %q to %s)", serviceName(cur), api.Echo(spec.GetAnnotations().GetName()))
	}
	if modeKind(spec) != modeKind(cur.Spec) {
		return nil, errdefs.InvalidArgument("service mode change is not allowed (from %s to %s)", cur.Spec.ModeName(), spec.ModeName())
	}
	if proto.Equal(spec, cur.Spec) {
		return nil, nil
	}
	next.Spec = proto.Clone(spec).(*api.ServiceSpec)
	if !proto.Equal(spec.Task, cur.Spec.Task) || !proto.Equal(spec.Endpoint, cur.Spec.Endpoint) {
		// A change of what runs starts a rolling update; a replica
		// count or label change alone does not.
		next.PreviousSpec = proto.Clone(cur.Spec).(*api.ServiceSpec)
		next.PreviousSpecVersion = cur.SpecVersion
		next.SpecVersion = cur.SpecVersion + 1
		next.RolledBack = false
		next.UpdateStatus = nil
	}
	if spec.IsJob() && (!proto.Equal(spec.Task, cur.Spec.Task) || !proto.Equal(spec.GetReplicatedJob(), cur.Spec.GetReplicatedJob())) {
		next.JobStatus = &api.JobStatus{JobIteration: cur.GetJobStatus().GetJobIteration() + 1}
	}
	return next, nil
}

func modeKind(s *api.ServiceSpec) string {
	switch s.GetMode().(type) {
	case *api.ServiceSpec_Global:
		return "global"
	case *api.ServiceSpec_ReplicatedJob:
		return "replicated-job"
	case *api.ServiceSpec_GlobalJob:
		return "global-job"
	}
	return "replicated"
}

// RemoveService deletes a service; the orchestrator then shuts down and
// removes its tasks. The user gives no version: a remove never conflicts
// with the status writes that race with it.
func (s *Server) RemoveService(ctx context.Context, req *api.RemoveServiceRequest) (*api.RemoveServiceResponse, error) {
	err := s.update(ctx, func(tx *raftstore.Tx) error {
		cur, err := lookupServiceTx(tx.ReadTx, req.GetServiceId())
		if err != nil {
			return err
		}
		return tx.Delete(unversioned(cur))
	})
	if err != nil {
		return nil, err
	}
	return &api.RemoveServiceResponse{}, nil
}

// unversioned is a copy of o (for Tx.Delete) that carries no version, so
// that its delete does not depend on the version read.
func unversioned[T raftstore.Object](o T) T {
	c := proto.Clone(o).(T)
	c.ProtoReflect().Clear(c.ProtoReflect().Descriptor().Fields().ByName("meta"))
	return c
}

// ListServices lists services with filters, ordered by name, one page at a
// time, with their task counts (computed here: the tasks of a large
// service would not fit an answer).
func (s *Server) ListServices(_ context.Context, req *api.ListServicesRequest) (*api.ListServicesResponse, error) {
	f := req.GetFilters()
	out := &api.ListServicesResponse{Counts: map[string]*api.ServiceCounts{}}
	s.store.View(func(tx raftstore.ReadTx) {
		var matched []*api.Service
		for _, svc := range tx.Services() {
			if !matchCommon(f, svc.Id, serviceName(svc), svc.GetSpec().GetAnnotations().GetLabels()) {
				continue
			}
			if len(f.GetModes()) > 0 && !contains(f.GetModes(), modeKind(svc.Spec)) && !contains(f.GetModes(), strings.SplitN(modeKind(svc.Spec), "-", 2)[0]) {
				continue
			}
			matched = append(matched, svc)
		}
		sort.Slice(matched, func(i, j int) bool { return serviceName(matched[i]) < serviceName(matched[j]) })
		// A counts entry: the ID and three numbers.
		size := func(svc *api.Service) int { return entrySize(svc) + len(svc.Id) + 40 }
		out.Services, out.NextPageToken = page(matched, serviceName, size, req.GetPageToken(), s.pageBudget())
		for _, svc := range out.Services {
			out.Counts[svc.Id] = CountTasks(tx, svc)
		}
	})
	return out, nil
}

// CountTasks gives `service ls` its REPLICAS column: running tasks of the
// current job iteration, and what is desired.
func CountTasks(tx raftstore.ReadTx, svc *api.Service) *api.ServiceCounts {
	c := &api.ServiceCounts{}
	nodes := map[string]bool{}
	for _, t := range tx.TasksByService(svc.Id) {
		if svc.Spec.IsJob() && t.JobIteration != svc.GetJobStatus().GetJobIteration() {
			continue
		}
		// A job's tasks are meant to complete: running, they count too.
		wanted := t.DesiredState <= api.TaskState_RUNNING || svc.Spec.IsJob() && t.DesiredState == api.TaskState_COMPLETE
		if wanted && t.GetStatus().GetState() == api.TaskState_RUNNING {
			c.Running++
		}
		if svc.Spec.IsJob() && t.GetStatus().GetState() == api.TaskState_COMPLETE {
			c.Completed++
		}
		if svc.Spec.IsGlobal() && t.DesiredState <= api.TaskState_RUNNING && t.NodeId != "" {
			nodes[t.NodeId] = true
		}
	}
	switch {
	case svc.Spec.GetReplicated() != nil:
		c.Desired = svc.Spec.GetReplicated().Replicas
	case svc.Spec.GetReplicatedJob() != nil:
		j := svc.Spec.GetReplicatedJob()
		total := j.TotalCompletions
		if total == 0 {
			total = max(j.MaxConcurrent, 1)
		}
		conc := j.MaxConcurrent
		if conc == 0 {
			conc = total
		}
		c.Desired = min(conc, total-min(total, c.Completed))
	case svc.Spec.IsGlobal():
		c.Desired = uint64(len(nodes))
	}
	return c
}

// ---- tasks ----

// GetTask returns a task by ID or unique ID prefix.
func (s *Server) GetTask(_ context.Context, req *api.GetTaskRequest) (*api.GetTaskResponse, error) {
	var t *api.Task
	var err error
	s.store.View(func(tx raftstore.ReadTx) {
		t, err = raftstore.Lookup[*api.Task](tx, raftstore.KindTask, req.GetTaskId(), nil)
	})
	if err != nil {
		return nil, err
	}
	return &api.GetTaskResponse{Task: t}, nil
}

// ListTasks lists tasks with filters, ordered by ID, one page at a time.
// Names match "<service>.<slot>" and "<service>.<node id>" as `service ps`
// prints them.
func (s *Server) ListTasks(_ context.Context, req *api.ListTasksRequest) (*api.ListTasksResponse, error) {
	f := req.GetFilters()
	out := &api.ListTasksResponse{}
	s.store.View(func(tx raftstore.ReadTx) {
		var cand []*api.Task
		switch {
		case len(f.GetServiceIds()) > 0:
			for _, id := range f.GetServiceIds() {
				cand = append(cand, tx.TasksByService(id)...)
			}
		case len(f.GetNodeIds()) > 0:
			for _, id := range f.GetNodeIds() {
				cand = append(cand, tx.TasksByNode(id)...)
			}
		default:
			cand = tx.Tasks()
		}
		byID := func(i, j int) bool { return cand[i].Id < cand[j].Id }
		if !sort.SliceIsSorted(cand, byID) {
			sort.Slice(cand, byID)
		}
		cand = slices.CompactFunc(cand, func(a, b *api.Task) bool { return a.Id == b.Id }) // a service or node named twice
		// Sets, not list scans: `docker service ls` asks for the tasks of
		// every service at once (1,000 IDs: a million comparisons a page).
		services, nodes := stringSet(f.GetServiceIds()), stringSet(f.GetNodeIds())
		match := func(t *api.Task) bool {
			switch {
			case services != nil && !services[t.ServiceId],
				nodes != nil && !nodes[t.NodeId],
				len(f.GetDesiredStates()) > 0 && !containsState(f.GetDesiredStates(), t.DesiredState):
				return false
			case len(f.GetNames()) == 0 && len(f.GetNamePrefixes()) == 0:
				return matchCommon(f, t.Id, "", t.GetAnnotations().GetLabels()) // no name needed
			}
			return matchCommon(f, t.Id, taskName(tx, t), t.GetAnnotations().GetLabels())
		}
		// Filtered while paging: a page costs its own tasks, not the
		// whole list's (a large service is listed in many pages).
		out.Tasks, out.NextPageToken = pageMatching(cand, (*api.Task).GetId, match, func(t *api.Task) int { return entrySize(t) },
			req.GetPageToken(), s.pageBudget())
	})
	return out, nil
}

func taskName(tx raftstore.ReadTx, t *api.Task) string {
	name := t.GetServiceAnnotations().GetName()
	if name == "" {
		if svc := tx.Service(t.ServiceId); svc != nil {
			name = serviceName(svc)
		}
	}
	if t.Slot > 0 {
		return name + "." + itoa(t.Slot)
	}
	return name + "." + t.NodeId
}

// RemoveTask deletes a task record.
func (s *Server) RemoveTask(ctx context.Context, req *api.RemoveTaskRequest) (*api.RemoveTaskResponse, error) {
	err := s.update(ctx, func(tx *raftstore.Tx) error {
		t := tx.Task(req.GetTaskId())
		if t == nil {
			return errdefs.NotFound("task %s not found", refText(req.GetTaskId()))
		}
		return tx.Delete(unversioned(t))
	})
	if err != nil {
		return nil, err
	}
	return &api.RemoveTaskResponse{}, nil
}

// ValidateServiceSpec is specs.ValidateService, the validation every
// service write goes through (kept here for the callers of this package).
func ValidateServiceSpec(s *api.ServiceSpec) error { return specs.ValidateService(s) }
