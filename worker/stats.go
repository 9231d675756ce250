package worker

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	api "github.com/shoal-project/shoal/proto"
)

// StatsReader is an executor that can read its tasks' resource use (the
// containerd executor). Stats returns one reading per running task of
// taskIDs; PreRead and PreCpuNanos are the agent's to fill.
type StatsReader interface {
	Stats(ctx context.Context, taskIDs []string) ([]*api.TaskStats, error)
}

const (
	// statsAnswerTimeout bounds one answer: under the broker's round (3 s).
	statsAnswerTimeout = 2500 * time.Millisecond
	// statsPreSample is the gap between two readings when the agent has no
	// recent one of a task, so that a first `shoal stats --no-stream`
	// shows CPU % too (docker's daemon also reads twice).
	statsPreSample = 500 * time.Millisecond
	// statsPrevMaxAge: an older previous reading is read again.
	statsPrevMaxAge = 30 * time.Second
)

// statsCache keeps each task's last reading, for CPU % over the interval
// between two requests. It holds only tasks of the last answer.
type statsCache struct {
	mu   sync.Mutex
	last map[string]*api.TaskStats
}

// serveStats answers the leader's stats requests until ctx ends.
func (a *Agent) serveStats(ctx context.Context, client api.StatsBrokerClient) {
	sr, _ := a.cfg.Executor.(StatsReader) // nil: every answer says so
	bo := newBackoff(a.cfg.BackoffMin, a.cfg.BackoffMax, a.seed+2)
	for {
		err := a.listenStats(ctx, client, sr)
		if ctx.Err() != nil {
			return
		}
		if status.Code(err) == codes.Unimplemented {
			a.log.Warn("the manager serves no stats requests", "err", err)
			return
		}
		a.log.Debug("stats requests stream ended", "err", err)
		if !sleep(ctx, a.cfg.Clock, bo.next()) {
			return
		}
	}
}

// listenStats serves one ListenStatsRequests stream, one request at a time.
func (a *Agent) listenStats(ctx context.Context, client api.StatsBrokerClient, sr StatsReader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.ListenStatsRequests(ctx, &api.ListenStatsRequestsRequest{})
	if err != nil {
		return err
	}
	for {
		req, err := stream.Recv()
		if err != nil {
			return err
		}
		actx, acancel := context.WithTimeout(ctx, statsAnswerTimeout)
		out := &api.PublishStatsRequest{RequestId: req.GetId()}
		if sr == nil {
			out.Error = "this node's executor reads no resource statistics"
		} else if out.Stats, err = a.readStats(actx, sr, req.GetTaskIds()); err != nil {
			out.Error = err.Error()
		}
		if _, err := client.PublishStats(actx, out); err != nil && ctx.Err() == nil {
			a.log.Debug("publishing stats", "err", err)
		}
		acancel()
	}
}

// readStats reads the tasks and gives each reading its previous one.
func (a *Agent) readStats(ctx context.Context, sr StatsReader, taskIDs []string) ([]*api.TaskStats, error) {
	c := &a.stats
	c.mu.Lock()
	now := a.cfg.Clock.Now()
	var missing []string
	for _, id := range taskIDs {
		if p := c.last[id]; p == nil || now.Sub(p.GetRead().AsTime()) > statsPrevMaxAge {
			missing = append(missing, id)
		}
	}
	c.mu.Unlock()
	if len(missing) > 0 {
		pre, err := sr.Stats(ctx, missing)
		if err != nil {
			return nil, err
		}
		c.remember(pre, false)
		if !sleep(ctx, a.cfg.Clock, statsPreSample) {
			return nil, ctx.Err()
		}
	}
	cur, err := sr.Stats(ctx, taskIDs)
	if err != nil {
		return nil, err
	}
	c.remember(cur, true)
	return cur, nil
}

// remember fills each reading's previous one and keeps it as the last;
// with final, readings older than statsPrevMaxAge are forgotten (the cache
// holds no more than the tasks read within that time).
func (c *statsCache) remember(sts []*api.TaskStats, final bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]*api.TaskStats{}
	}
	var newest time.Time
	for _, st := range sts {
		if p := c.last[st.GetTaskId()]; p != nil && final {
			st.PreRead, st.PreCpuNanos = p.GetRead(), p.GetCpuNanos()
		}
		c.last[st.GetTaskId()] = &api.TaskStats{TaskId: st.GetTaskId(), Read: st.GetRead(), CpuNanos: st.GetCpuNanos()}
		if r := st.GetRead().AsTime(); r.After(newest) {
			newest = r
		}
	}
	if final && !newest.IsZero() {
		for id, p := range c.last {
			if newest.Sub(p.GetRead().AsTime()) > statsPrevMaxAge {
				delete(c.last, id)
			}
		}
	}
}
