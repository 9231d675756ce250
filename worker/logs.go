package worker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	api "github.com/shoal-project/shoal/proto"
)

// serveLogs listens for log subscriptions on the session's manager until
// ctx ends. Logs never end a session: a broken subscription stream is
// opened again after a backoff, and a manager without a LogBroker is left
// alone for the rest of the session.
func (a *Agent) serveLogs(ctx context.Context, client api.LogBrokerClient) {
	bo := newBackoff(a.cfg.BackoffMin, a.cfg.BackoffMax, a.seed+1)
	for {
		err := a.listenSubscriptions(ctx, client)
		if ctx.Err() != nil {
			return
		}
		if status.Code(err) == codes.Unimplemented {
			a.log.Warn("the manager serves no log subscriptions", "err", err)
			return
		}
		a.log.Warn("log subscriptions stream ended", "err", err)
		if !sleep(ctx, a.cfg.Clock, bo.next()) {
			return
		}
	}
}

// listenSubscriptions serves one ListenSubscriptions stream: each
// subscription is served by its own goroutine (at most MaxLogSubscriptions
// at once), stopped by a close message or by the stream's end.
func (a *Agent) listenSubscriptions(ctx context.Context, client api.LogBrokerClient) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // runs before wg.Wait: ends every subscription

	stream, err := client.ListenSubscriptions(ctx, &api.ListenSubscriptionsRequest{})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	subs := map[string]context.CancelFunc{}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		id := msg.GetId()
		mu.Lock()
		closeSub, active := subs[id]
		n := len(subs)
		mu.Unlock()
		switch {
		case msg.GetClose():
			if active {
				closeSub()
			}
			continue
		case active || id == "":
			continue
		}
		subCtx, stop := context.WithCancel(ctx)
		var tasks []*api.Task
		if n < a.cfg.MaxLogSubscriptions {
			tasks = a.matchTasks(msg.GetSelector())
		} else {
			// Answered at once with no lines, so the caller is not
			// left waiting; the warning says why.
			a.log.Warn("too many log subscriptions; answering one empty", "subscription", id)
		}
		mu.Lock()
		subs[id] = stop
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(subs, id)
				mu.Unlock()
				stop()
			}()
			a.publish(ctx, subCtx, client, msg, tasks)
		}()
	}
}

// matchTasks returns the tasks this node holds that sel names, by task,
// service or node.
func (a *Agent) matchTasks(sel *api.LogSelector) []*api.Task {
	allNode := slices.Contains(sel.GetNodeIds(), a.cfg.NodeID)
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*api.Task
	for id, r := range a.runners {
		if r.isRemoved() {
			continue
		}
		t := r.currentTask()
		if allNode || slices.Contains(sel.GetTaskIds(), id) ||
			(t.GetServiceId() != "" && slices.Contains(sel.GetServiceIds(), t.GetServiceId())) {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(x, y *api.Task) int { return strings.Compare(x.GetId(), y.GetId()) })
	return out
}

// publish sends the lines of tasks for one subscription on a PublishLogs
// stream, in batches of at most LogBatchSize lines and 1 MiB, then a close
// message. Reading stops when subCtx ends (the subscription was closed) or,
// without follow, when the lines run out or LogTimeout passes.
func (a *Agent) publish(streamCtx, subCtx context.Context, client api.LogBrokerClient, sub *api.SubscriptionMessage, tasks []*api.Task) {
	opts := sub.GetOptions()
	log := a.log.With("subscription", sub.GetId())
	streamCtx, cancelStream := context.WithCancel(streamCtx)
	defer cancelStream()
	if !opts.GetFollow() {
		// Reading gets LogTimeout; sending what was read, a little more.
		var cancelRead context.CancelFunc
		subCtx, cancelRead = context.WithTimeout(subCtx, a.cfg.LogTimeout)
		defer cancelRead()
		stop := time.AfterFunc(a.cfg.LogTimeout+a.cfg.RPCTimeout, cancelStream)
		defer stop.Stop()
	}
	pub, err := client.PublishLogs(streamCtx)
	if err != nil {
		log.Warn("publish logs", "err", err)
		return
	}
	readCtx, stopReading := context.WithCancel(subCtx)
	defer stopReading()
	lines := make(chan *api.LogMessage, a.cfg.LogBatchSize)
	var readers sync.WaitGroup
	lo := LogOptions{Follow: opts.GetFollow(), Tail: opts.GetTail()}
	if opts.GetSince() != nil {
		lo.Since = opts.GetSince().AsTime()
	}
	for _, t := range tasks {
		readers.Add(1)
		go func() {
			defer readers.Done()
			a.readLogs(readCtx, t, lo, lines)
		}()
	}
	go func() { readers.Wait(); close(lines) }() // ends with the readers, which end with readCtx

	send := func(m *api.PublishLogsMessage) bool {
		m.SubscriptionId = sub.GetId()
		if err := pub.Send(m); err != nil {
			log.Warn("publish logs", "err", err)
			stopReading()
			for range lines { // let the readers return
			}
			return false
		}
		return true
	}
	var batch []*api.LogMessage
	size := 0
	for m := range lines {
		batch = append(batch, m)
		size += len(m.GetData())
		if len(batch) >= a.cfg.LogBatchSize || size >= maxLogBatchBytes || len(lines) == 0 {
			if !send(&api.PublishLogsMessage{Messages: batch}) {
				return
			}
			batch, size = nil, 0
		}
	}
	if len(batch) > 0 && !send(&api.PublishLogsMessage{Messages: batch}) {
		return
	}
	if !send(&api.PublishLogsMessage{Close: true}) {
		return
	}
	// The manager's answer is a formality; do not wait long for it.
	t := time.AfterFunc(a.cfg.RPCTimeout, cancelStream)
	defer t.Stop()
	if _, err := pub.CloseAndRecv(); err != nil && !errors.Is(err, context.Canceled) {
		log.Debug("publish logs close", "err", err)
	}
}

// readLogs reads one task's lines through a controller of its own (so the
// read never shares the task runner's controller) and labels each line
// with its task, service and node.
func (a *Agent) readLogs(ctx context.Context, t *api.Task, opts LogOptions, out chan<- *api.LogMessage) {
	c, err := a.cfg.Executor.Controller(t, a)
	if err != nil {
		a.log.Warn("logs: no controller", "task", t.GetId(), "err", err)
		return
	}
	defer c.Close()
	src, ok := c.(LogSource)
	if !ok {
		return
	}
	lctx := &api.LogContext{ServiceId: t.GetServiceId(), NodeId: a.cfg.NodeID, TaskId: t.GetId()}
	err = src.Logs(ctx, opts, func(m *api.LogMessage) error {
		m = proto.Clone(m).(*api.LogMessage)
		m.Context = lctx
		if len(m.Data) > maxLogBatchBytes {
			// One line must fit a message, whatever the program wrote.
			m.Data = m.Data[:maxLogBatchBytes]
		}
		select {
		case out <- m:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil && ctx.Err() == nil {
		a.log.Warn("reading task logs", "task", t.GetId(), "err", err)
	}
}
