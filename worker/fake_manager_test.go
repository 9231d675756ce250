package worker

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	api "github.com/shoal-project/shoal/proto"
)

// fakeCluster is the state the fake managers share, as a real cluster's
// managers share their store: the assignment set and every status update
// received, whichever manager received it.
type fakeCluster struct {
	mu      sync.Mutex
	tasks   map[string]*api.Task
	secrets map[string]*api.Secret
	updates []*api.TaskStatusUpdate // in the order received
	period  time.Duration
	mgrs    []*fakeManager
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{tasks: map[string]*api.Task{}, secrets: map[string]*api.Secret{}, period: time.Second}
}

// fakeManager serves Dispatcher and LogBroker on a loopback listener, with
// knobs to fail calls and end streams.
type fakeManager struct {
	api.UnimplementedDispatcherServer
	api.UnimplementedLogBrokerServer
	c    *fakeCluster
	addr string
	srv  *grpc.Server

	mu           sync.Mutex
	sessionReqs  []*api.SessionRequest
	liveSessions map[string]bool
	heartbeats   int
	hbFail       int   // the next hbFail heartbeats fail with Unavailable
	statusErr    error // UpdateTaskStatus fails with it while set
	statusCalls  int   // UpdateTaskStatus calls received
	refuse       error // Session fails with it while set
	refusedAt    []time.Time
	now          func() time.Time // stamps refusedAt; nil: not recorded
	hold         chan struct{}
	// splitAt > 0 sends the complete set in two parts (More on the
	// first), the second once holdLast is closed.
	splitAt   int
	holdLast  chan struct{}
	kill      chan struct{} // closed to end every stream
	streams   map[chan *api.AssignmentsMessage]bool
	subs      chan *api.SubscriptionMessage
	published []*api.PublishLogsMessage
}

func (c *fakeCluster) addManager(t *testing.T) *fakeManager {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeManager{
		c: c, addr: lis.Addr().String(), srv: grpc.NewServer(),
		liveSessions: map[string]bool{}, kill: make(chan struct{}),
		streams: map[chan *api.AssignmentsMessage]bool{}, subs: make(chan *api.SubscriptionMessage, 16),
	}
	api.RegisterDispatcherServer(m.srv, m)
	api.RegisterLogBrokerServer(m.srv, m)
	go func() { _ = m.srv.Serve(lis) }()
	t.Cleanup(m.srv.Stop)
	c.mu.Lock()
	c.mgrs = append(c.mgrs, m)
	c.mu.Unlock()
	return m
}

func (m *fakeManager) peers() []*api.WeightedPeer {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	var out []*api.WeightedPeer
	for _, o := range m.c.mgrs {
		out = append(out, &api.WeightedPeer{Peer: &api.Peer{NodeId: "m-" + o.addr, Addr: o.addr}, Weight: 10})
	}
	return out
}

// endStreams ends every stream of this manager with Unavailable, as a
// crashing manager would.
func (m *fakeManager) endStreams() {
	m.mu.Lock()
	close(m.kill)
	m.kill = make(chan struct{})
	m.liveSessions = map[string]bool{}
	m.mu.Unlock()
}

func (m *fakeManager) set(f func(m *fakeManager)) {
	m.mu.Lock()
	f(m)
	m.mu.Unlock()
}

func (m *fakeManager) sessions() []*api.SessionRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.sessionReqs)
}

func (m *fakeManager) heartbeatCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.heartbeats
}

func (m *fakeManager) Session(req *api.SessionRequest, stream api.Dispatcher_SessionServer) error {
	m.mu.Lock()
	if err := m.refuse; err != nil {
		if m.now != nil {
			m.refusedAt = append(m.refusedAt, m.now())
		}
		m.mu.Unlock()
		return err
	}
	m.sessionReqs = append(m.sessionReqs, req)
	id := fmt.Sprintf("%s/%d", m.addr, len(m.sessionReqs))
	m.liveSessions[id] = true
	kill := m.kill
	m.mu.Unlock()
	err := stream.Send(&api.SessionMessage{
		SessionId: id, Node: &api.Node{Id: "n1", Description: req.GetDescription()},
		Managers: m.peers(), RootCa: []byte("root-ca"),
	})
	if err != nil {
		return err
	}
	select {
	case <-kill:
		return status.Error(codes.Unavailable, "manager going away")
	case <-stream.Context().Done():
		return nil
	}
}

func (m *fakeManager) Heartbeat(_ context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	m.c.mu.Lock()
	period := m.c.period
	m.c.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.heartbeats++
	if m.hbFail > 0 {
		m.hbFail--
		return nil, status.Error(codes.Unavailable, "overloaded")
	}
	if !m.liveSessions[req.GetSessionId()] {
		return nil, status.Errorf(codes.NotFound, "session %q not found", req.GetSessionId())
	}
	return &api.HeartbeatResponse{Period: durationpb.New(period)}, nil
}

func (m *fakeManager) UpdateTaskStatus(_ context.Context, req *api.UpdateTaskStatusRequest) (*api.UpdateTaskStatusResponse, error) {
	m.mu.Lock()
	err := m.statusErr
	m.statusCalls++
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	for _, u := range req.GetUpdates() {
		m.c.updates = append(m.c.updates, u)
		if t, ok := m.c.tasks[u.GetTaskId()]; ok && u.GetStatus().GetState() > t.GetStatus().GetState() {
			t.Status = u.GetStatus()
		}
	}
	return &api.UpdateTaskStatusResponse{}, nil
}

func (m *fakeManager) Assignments(_ *api.AssignmentsRequest, stream api.Dispatcher_AssignmentsServer) error {
	m.mu.Lock()
	hold, kill, splitAt, holdLast := m.hold, m.kill, m.splitAt, m.holdLast
	m.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-kill:
			return status.Error(codes.Unavailable, "manager going away")
		case <-stream.Context().Done():
			return nil
		}
	}
	ch := make(chan *api.AssignmentsMessage, 64)
	// The complete set is built under the lock that registers the stream,
	// so no incremental change falls between them.
	m.c.mu.Lock()
	full := &api.AssignmentsMessage{Type: api.AssignmentsMessage_COMPLETE}
	for _, t := range m.c.tasks {
		full.Changes = append(full.Changes, &api.AssignmentChange{Assignment: &api.Assignment{Item: &api.Assignment_Task{Task: proto.Clone(t).(*api.Task)}}})
	}
	for _, s := range m.c.secrets {
		full.Changes = append(full.Changes, &api.AssignmentChange{Assignment: &api.Assignment{Item: &api.Assignment_Secret{Secret: s}}})
	}
	m.mu.Lock()
	m.streams[ch] = true
	m.mu.Unlock()
	m.c.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.streams, ch)
		m.mu.Unlock()
	}()
	if splitAt > 0 && splitAt < len(full.Changes) {
		sort.Slice(full.Changes, func(i, j int) bool {
			return full.Changes[i].GetAssignment().GetTask().GetId() < full.Changes[j].GetAssignment().GetTask().GetId()
		})
		first := &api.AssignmentsMessage{Type: full.Type, Changes: full.Changes[:splitAt], More: true}
		if err := stream.Send(first); err != nil {
			return err
		}
		select {
		case <-holdLast:
		case <-stream.Context().Done():
			return nil
		}
		full = &api.AssignmentsMessage{Type: full.Type, Changes: full.Changes[splitAt:]}
	}
	if err := stream.Send(full); err != nil {
		return err
	}
	for {
		select {
		case msg := <-ch:
			if err := stream.Send(msg); err != nil {
				return err
			}
		case <-kill:
			return status.Error(codes.Unavailable, "manager going away")
		case <-stream.Context().Done():
			return nil
		}
	}
}

// assign adds or updates a task in the cluster and sends it to the live
// assignments streams.
func (c *fakeCluster) assign(t *api.Task) {
	c.change(&api.AssignmentChange{Assignment: &api.Assignment{Item: &api.Assignment_Task{Task: t}}}, func() {
		c.tasks[t.GetId()] = proto.Clone(t).(*api.Task)
	})
}

// unassign removes a task with an incremental REMOVE change.
func (c *fakeCluster) unassign(id string) {
	c.change(&api.AssignmentChange{Action: api.AssignmentChange_REMOVE, Assignment: &api.Assignment{Item: &api.Assignment_Task{Task: &api.Task{Id: id}}}}, func() {
		delete(c.tasks, id)
	})
}

func (c *fakeCluster) change(ch *api.AssignmentChange, apply func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	apply()
	msg := &api.AssignmentsMessage{Type: api.AssignmentsMessage_INCREMENTAL, Changes: []*api.AssignmentChange{proto.Clone(ch).(*api.AssignmentChange)}}
	for _, m := range c.mgrs {
		m.mu.Lock()
		for s := range m.streams {
			s <- msg
		}
		m.mu.Unlock()
	}
}

// states returns the states received for a task, in order.
func (c *fakeCluster) states(id string) []api.TaskState {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []api.TaskState
	for _, u := range c.updates {
		if u.GetTaskId() == id {
			out = append(out, u.GetStatus().GetState())
		}
	}
	return out
}

func (m *fakeManager) ListenSubscriptions(_ *api.ListenSubscriptionsRequest, stream api.LogBroker_ListenSubscriptionsServer) error {
	for {
		select {
		case sub := <-m.subs:
			if err := stream.Send(sub); err != nil {
				return err
			}
		case <-stream.Context().Done():
			return nil
		}
	}
}

func (m *fakeManager) PublishLogs(stream api.LogBroker_PublishLogsServer) error {
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&api.PublishLogsResponse{})
		}
		if err != nil {
			return err
		}
		m.mu.Lock()
		m.published = append(m.published, msg)
		m.mu.Unlock()
	}
}

// publishedFor returns the lines and whether a close arrived for sub.
func (m *fakeManager) publishedFor(sub string) (lines []*api.LogMessage, closed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.published {
		if p.GetSubscriptionId() == sub {
			lines = append(lines, p.GetMessages()...)
			closed = closed || p.GetClose()
		}
	}
	return lines, closed
}
