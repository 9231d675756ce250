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
	// shows CPU % too (docker's daemon also reads twice, a second apart).
	statsPreSample = time.Second
	// statsMinWindow is the shortest window CPU % is taken over when an
	// older reading allows: a CPU limit is a quota per 100 ms period, so a
	// window of W sees up to one period's quota more than the limit
	// (a 0.5-CPU task showed 57 % over 0.5 s); over 0.9 s at most 11 %
	// of the limit more.
	statsMinWindow = 900 * time.Millisecond
	// statsPrevMaxAge: an older previous reading is read again.
	statsPrevMaxAge = 30 * time.Second
)

// statsCache keeps each task's last readings, for CPU % over the interval
// between two requests. It holds only tasks read within statsPrevMaxAge.
type statsCache struct {
	mu   sync.Mutex
	last map[string]*statsPair
}

// statsPair is a task's two kept readings (CPU time and when), at least
// statsMinWindow apart: whenever the next request comes, one of them is
// at least statsMinWindow before it, or the newer is the only one.
type statsPair struct {
	older, newer *api.TaskStats // older is nil until a second reading
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
		if p := c.last[id]; p == nil || now.Sub(p.newer.GetRead().AsTime()) > statsPrevMaxAge {
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

// remember fills each reading's previous one and keeps it; with final,
// the previous one is the newest kept reading at least statsMinWindow
// before it (else the oldest kept), and readings older than
// statsPrevMaxAge are forgotten (the cache holds no more than the tasks
// read within that time). A pre-sample (not final) starts a task's
// readings afresh.
func (c *statsCache) remember(sts []*api.TaskStats, final bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]*statsPair{}
	}
	var newest time.Time
	for _, st := range sts {
		r := &api.TaskStats{TaskId: st.GetTaskId(), Read: st.GetRead(), CpuNanos: st.GetCpuNanos()}
		at := st.GetRead().AsTime()
		if at.After(newest) {
			newest = at
		}
		p := c.last[st.GetTaskId()]
		if p == nil || !final {
			c.last[st.GetTaskId()] = &statsPair{newer: r}
			continue
		}
		gap := at.Sub(p.newer.GetRead().AsTime())
		pre := p.newer
		if gap < statsMinWindow && p.older != nil {
			pre = p.older
		}
		st.PreRead, st.PreCpuNanos = pre.GetRead(), pre.GetCpuNanos()
		if gap >= statsMinWindow {
			p.older, p.newer = p.newer, r
		}
	}
	if final && !newest.IsZero() {
		for id, p := range c.last {
			if newest.Sub(p.newer.GetRead().AsTime()) > statsPrevMaxAge {
				delete(c.last, id)
			}
		}
	}
}
