package statsbroker

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/ids"
	"github.com/shoal-project/shoal/manager/controlapi"
	"github.com/shoal-project/shoal/manager/internal/agenthub"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Limits.
const (
	// RoundTimeout bounds one TaskStats call's wait for the nodes.
	RoundTimeout = 3 * time.Second
	// MaxRounds bounds the rounds in flight.
	MaxRounds     = 64
	listenerQueue = 16
)

// Broker is the stats broker of one manager.
type Broker struct {
	api.UnimplementedStatsServer
	api.UnimplementedStatsBrokerServer
	store *raftstore.Store
	clock clockwork.Clock
	log   *slog.Logger
	hub   *agenthub.Hub[api.StatsRequest]

	mu     sync.Mutex
	rounds map[string]*round // by request ID
}

// round is one TaskStats call's wait for its nodes.
type round struct {
	asked map[string]map[string]bool // node -> tasks asked; a node leaves once it answered
	stats []*api.TaskStats
	errs  []string
	done  chan struct{} // closed when every node answered
}

// New returns a broker over the store.
func New(store *raftstore.Store, clock clockwork.Clock, log *slog.Logger) *Broker {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	if log == nil {
		log = slog.Default()
	}
	return &Broker{store: store, clock: clock, log: log.With("component", "statsbroker"),
		hub: agenthub.New[api.StatsRequest]("stats broker", listenerQueue), rounds: map[string]*round{}}
}

// Run marks a leadership term until ctx ends.
func (b *Broker) Run(ctx context.Context) error { return b.hub.Run(ctx) }

// ListenStatsRequests is an agent's stream of requests for its node.
func (b *Broker) ListenStatsRequests(_ *api.ListenStatsRequestsRequest, stream grpc.ServerStreamingServer[api.StatsRequest]) error {
	return b.hub.Listen(stream)
}

// PublishStats takes one node's answer to a request.
func (b *Broker) PublishStats(ctx context.Context, req *api.PublishStatsRequest) (*api.PublishStatsResponse, error) {
	nodeID, err := agenthub.AgentID(ctx)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rounds[req.GetRequestId()]
	if r == nil {
		return &api.PublishStatsResponse{}, nil // too late: the round ended
	}
	asked, ok := r.asked[nodeID]
	if !ok {
		return &api.PublishStatsResponse{}, nil // not asked, or answered already
	}
	delete(r.asked, nodeID)
	if e := req.GetError(); e != "" {
		r.errs = append(r.errs, fmt.Sprintf("node %s could not read its tasks: %s", nodeID, e))
	}
	for _, st := range req.GetStats() {
		if asked[st.GetTaskId()] {
			st.NodeId = nodeID
			r.stats = append(r.stats, st)
		}
	}
	if len(r.asked) == 0 {
		close(r.done)
	}
	return &api.PublishStatsResponse{}, nil
}

// TaskStats answers `shoal stats`: one reading of every running task
// selected, from the nodes that answer within RoundTimeout.
func (b *Broker) TaskStats(ctx context.Context, req *api.TaskStatsRequest) (*api.TaskStatsResponse, error) {
	term, err := b.hub.Term()
	if err != nil {
		return nil, err
	}
	byNode, names, err := b.selectTasks(req)
	if err != nil {
		return nil, err
	}
	out := &api.TaskStatsResponse{}
	r := &round{asked: map[string]map[string]bool{}, done: make(chan struct{})}
	id := ids.New()
	b.mu.Lock()
	if len(b.rounds) >= MaxRounds {
		b.mu.Unlock()
		return nil, errdefs.Newf(errdefs.ErrResourceExhausted, "too many stats requests at once (%d); try again in a moment", MaxRounds)
	}
	for _, node := range slices.Sorted(maps.Keys(byNode)) {
		tasks := byNode[node]
		switch connected, queued := b.hub.Offer(node, &api.StatsRequest{Id: id, TaskIds: tasks}); {
		case !connected:
			out.Warnings = append(out.Warnings, fmt.Sprintf("node %s has no stats stream open (its agent is not connected to the leader); its %d tasks are missing", names[node], len(tasks)))
		case !queued:
			out.Warnings = append(out.Warnings, fmt.Sprintf("node %s is too busy to answer now; its %d tasks are missing", names[node], len(tasks)))
		default:
			set := map[string]bool{}
			for _, t := range tasks {
				set[t] = true
			}
			r.asked[node] = set
		}
	}
	if len(r.asked) == 0 {
		close(r.done)
	}
	b.rounds[id] = r
	b.mu.Unlock()

	var stopped error
	select {
	case <-r.done:
	case <-b.clock.After(RoundTimeout):
	case <-term.Done():
		stopped = errdefs.Unavailable("leadership changed while reading stats; run the command again")
	case <-ctx.Done():
		stopped = ctx.Err()
	}
	b.mu.Lock()
	delete(b.rounds, id)
	for node := range r.asked {
		out.Warnings = append(out.Warnings, fmt.Sprintf("node %s did not answer within %v; its tasks are missing", names[node], RoundTimeout))
	}
	out.Warnings = append(out.Warnings, r.errs...)
	out.Stats = r.stats
	b.mu.Unlock()
	if stopped != nil {
		return nil, stopped
	}
	slices.SortFunc(out.Stats, func(x, y *api.TaskStats) int {
		return cmp.Or(cmp.Compare(x.GetServiceName(), y.GetServiceName()), cmp.Compare(x.GetTaskName(), y.GetTaskName()),
			cmp.Compare(x.GetTaskId(), y.GetTaskId()))
	})
	slices.Sort(out.Warnings)
	return out, nil
}

// selectTasks resolves the request to the running tasks by node, and the
// nodes' names for warnings.
func (b *Broker) selectTasks(req *api.TaskStatsRequest) (map[string][]string, map[string]string, error) {
	byNode, names := map[string][]string{}, map[string]string{}
	var err error
	b.store.View(func(tx raftstore.ReadTx) {
		var nodeID string
		if ref := req.GetNode(); ref != "" {
			n, lerr := raftstore.Lookup(tx, raftstore.KindNode, ref, controlapi.Hostname)
			if lerr != nil {
				err = lerr
				return
			}
			nodeID = n.Id
		}
		var tasks []*api.Task
		if len(req.GetServices()) == 0 {
			if nodeID != "" {
				tasks = tx.TasksByNode(nodeID)
			} else {
				tasks = tx.Tasks()
			}
		}
		for _, ref := range req.GetServices() {
			svc, lerr := raftstore.Lookup(tx, raftstore.KindService, ref, func(s *api.Service) string { return s.GetSpec().GetAnnotations().GetName() })
			if lerr != nil {
				err = lerr
				return
			}
			tasks = append(tasks, tx.TasksByService(svc.Id)...)
		}
		for _, t := range tasks {
			if t.NodeId == "" || nodeID != "" && t.NodeId != nodeID ||
				t.DesiredState > api.TaskState_RUNNING || t.GetStatus().GetState() != api.TaskState_RUNNING {
				continue
			}
			byNode[t.NodeId] = append(byNode[t.NodeId], t.Id)
			if _, ok := names[t.NodeId]; !ok {
				names[t.NodeId] = t.NodeId
				if n := tx.Node(t.NodeId); n != nil && controlapi.Hostname(n) != "" {
					names[t.NodeId] = controlapi.Hostname(n)
				}
			}
		}
	})
	return byNode, names, err
}
