package manager

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/fwdmeta"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// dispatcherFront serves the Dispatcher service with whichever dispatcher
// the current leadership term runs.
type dispatcherFront struct {
	api.UnimplementedDispatcherServer
	m *Manager
}

func (f *dispatcherFront) get(ctx context.Context) (*dispatcherImpl, error) {
	d := f.m.servingDispatcher(ctx)
	if d == nil {
		return nil, errdefs.Unavailable("this manager is not running a dispatcher (not the leader, or still starting); retry")
	}
	return &dispatcherImpl{d}, nil
}

type dispatcherImpl struct{ api.DispatcherServer }

func (f *dispatcherFront) Session(req *api.SessionRequest, s api.Dispatcher_SessionServer) error {
	d, err := f.get(s.Context())
	if err != nil {
		return err
	}
	return d.Session(req, s)
}

func (f *dispatcherFront) Heartbeat(ctx context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	d, err := f.get(ctx)
	if err != nil {
		return nil, err
	}
	return d.Heartbeat(ctx, req)
}

func (f *dispatcherFront) UpdateTaskStatus(ctx context.Context, req *api.UpdateTaskStatusRequest) (*api.UpdateTaskStatusResponse, error) {
	d, err := f.get(ctx)
	if err != nil {
		return nil, err
	}
	return d.UpdateTaskStatus(ctx, req)
}

func (f *dispatcherFront) Assignments(req *api.AssignmentsRequest, s api.Dispatcher_AssignmentsServer) error {
	d, err := f.get(s.Context())
	if err != nil {
		return err
	}
	return d.Assignments(req, s)
}

// raftServer adds membership changes to the raft message service. Joins
// and leaves are decided by the leader.
type raftServer struct {
	*raftstore.RaftService
	m *Manager
}

// Join adds the calling manager (identified by its certificate) as a raft
// member and returns the membership it should start with.
func (r *raftServer) Join(ctx context.Context, req *api.JoinRaftRequest) (*api.JoinRaftResponse, error) {
	if out, forwarded, err := r.toLeader(ctx, "/shoal.v1.Raft/Join", req); forwarded || err != nil {
		resp, _ := out.(*api.JoinRaftResponse)
		return resp, err
	}
	nodeID := callerID(ctx)
	if nodeID == "" {
		return nil, errdefs.New(errdefs.ErrUnauthenticated, "no verified node certificate")
	}
	if m := r.m.node.MemberByNodeID(nodeID); m != nil {
		// A restarted joiner asking again: give it its member record.
		if m.Addr != req.GetAddr() && req.GetAddr() != "" {
			if err := r.m.node.UpdateMemberAddr(ctx, m.RaftId, req.GetAddr()); err != nil {
				return nil, err
			}
		}
		return &api.JoinRaftResponse{RaftId: m.RaftId, Members: r.m.node.RaftMembers(), RemovedMembers: r.m.node.RemovedMembers()}, nil
	}
	id, err := r.m.node.AddMember(ctx, nodeID, req.GetAddr())
	if err != nil {
		return nil, err
	}
	return &api.JoinRaftResponse{RaftId: id, Members: r.m.node.RaftMembers(), RemovedMembers: r.m.node.RemovedMembers()}, nil
}

// Leave removes a raft member.
func (r *raftServer) Leave(ctx context.Context, req *api.LeaveRaftRequest) (*api.LeaveRaftResponse, error) {
	if out, forwarded, err := r.toLeader(ctx, "/shoal.v1.Raft/Leave", req); forwarded || err != nil {
		resp, _ := out.(*api.LeaveRaftResponse)
		return resp, err
	}
	if err := r.m.node.RemoveMember(ctx, req.GetRaftId()); err != nil {
		return nil, err
	}
	return &api.LeaveRaftResponse{}, nil
}

// toLeader forwards a membership call to the leader unless this manager
// leads; forwarded reports whether it did.
func (r *raftServer) toLeader(ctx context.Context, method string, req any) (out any, forwarded bool, err error) {
	if r.m.node.IsLeader() {
		return nil, false, nil
	}
	if IsForwarded(ctx) {
		return nil, true, r.m.node.LeaderError()
	}
	conn, err := r.m.leaderConn(ctx)
	if err != nil {
		return nil, true, err
	}
	out, err = ForwardUnary(ctx, conn, method, req, callerID(ctx))
	return out, true, r.m.forwardError(ctx, method, err)
}

// callerID is the caller's node ID, or the node a manager forwards for.
func callerID(ctx context.Context) string {
	id, _ := fwdmeta.Caller(ctx)
	return id
}

// watchServer streams store changes.
// NewWatchServer serves the Watch RPC from store, as a manager does; for
// test daemons that serve the Control API without a whole manager.
func NewWatchServer(store *raftstore.Store) api.WatchServer { return &watchServer{store: store} }

type watchServer struct {
	api.UnimplementedWatchServer
	store *raftstore.Store
}

func (w *watchServer) Watch(req *api.WatchRequest, stream api.Watch_WatchServer) error {
	kinds := map[string]uint32{}
	for _, e := range req.GetEntries() {
		kinds[e.GetKind()] |= e.GetAction()
	}
	watcher := w.store.Watch(raftstore.WatchOptions{Commits: true, Filter: func(ev raftstore.Event) bool {
		mask, ok := kinds[ev.Kind]
		return len(kinds) == 0 || ok && (mask == 0 || mask&uint32(ev.Action) != 0)
	}})
	defer watcher.Close()
	msg := &api.WatchMessage{}
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case ev, ok := <-watcher.C:
			if !ok {
				return watcher.Err()
			}
			if ev.Action == raftstore.ActionCommit {
				msg.Version = ev.Version
				if err := stream.Send(msg); err != nil {
					return err
				}
				msg = &api.WatchMessage{}
				continue
			}
			we := &api.WatchEvent{Action: api.WatchAction(ev.Action), Object: raftstore.Wrap(redact(ev.Object))}
			if req.GetIncludeOldObject() && ev.Old != nil {
				we.OldObject = raftstore.Wrap(redact(ev.Old))
			}
			msg.Events = append(msg.Events, we)
		}
	}
}

// redact strips secret material from objects leaving the store.
func redact(o raftstore.Object) raftstore.Object {
	switch v := o.(type) {
	case *api.Secret:
		c := proto.Clone(v).(*api.Secret)
		c.Spec.Data, c.Sealed = nil, nil
		return c
	case *api.Cluster:
		c := proto.Clone(v).(*api.Cluster)
		if c.RootCa != nil {
			c.RootCa.CaKey = nil
		}
		c.UnlockKey, c.SecretsKey, c.NetworkKey = nil, nil, nil
		return c
	}
	return o
}
