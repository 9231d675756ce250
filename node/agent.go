package node

import (
	"context"
	"errors"
	"time"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
)

// startAgent runs the node agent: it opens the executor (waiting for the
// runtime if it is not up yet, without holding up the rest of the node),
// then keeps a session with the managers and runs this node's tasks.
func (mb *member) startAgent() {
	mb.agentMu.Lock()
	if len(mb.managers) == 0 {
		mb.managers = []string{mb.state.AdvertiseAddr}
	}
	mb.agentMu.Unlock()
	mb.wg.Add(1)
	go func() {
		defer mb.wg.Done()
		mb.runAgent(mb.ctx)
	}()
}

func (mb *member) runAgent(ctx context.Context) {
	n := mb.n
	// Gossip peers answering again after a partition: the managers are
	// likely reachable too, so the agent retries its session now rather
	// than at the end of a backoff that grew meanwhile.
	ov := n.openOverlay(mb.identity.NodeID, mb.state, func() {
		mb.agentMu.Lock()
		a := mb.agent
		mb.agentMu.Unlock()
		if a != nil {
			a.RetryNow()
		}
	})
	if ov != nil {
		defer ov.Close()
	}
	var exec Executor
	for {
		var err error
		if exec, err = n.cfg.Executor(ctx, mb.identity.NodeID, n.execDir(), ov); err == nil {
			break
		}
		n.log.Warn("the agent cannot open its executor yet; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-n.cfg.Clock.After(n.cfg.ExecutorRetry):
		}
	}
	defer exec.Close()
	mb.agentMu.Lock()
	mb.exec = exec
	mb.agentMu.Unlock()
	defer func() { // before exec.Close: a scrape no longer reaches it
		mb.agentMu.Lock()
		mb.exec = nil
		mb.agentMu.Unlock()
	}()
	close(mb.execUp)
	var onSession func(*api.SessionMessage)
	onNode := mb.publish
	if ov != nil {
		if err := n.startOverlay(ctx, ov, exec); err != nil {
			n.log.Error("overlay networks are off on this node", "err", err)
		} else {
			ss := newSessions()
			onSession = ss.put
			onNode = func(u worker.NodeUpdate) {
				mb.publish(u)
				if u.Node != nil {
					ss.putNode(u.Node)
				}
			}
			mb.wg.Add(1)
			go func() {
				defer mb.wg.Done()
				ss.run(ctx, ov)
			}()
		}
	}
	// The task db holds task specs (labels, env): sealed with a key from
	// the node's keyring, as the raft log is.
	keys, ok := mb.keys.Keys()
	if !ok {
		n.log.Error("the agent could not start: the node is locked")
		return
	}
	agent, err := worker.New(worker.Config{
		TaskDBKey:       keys.TaskDBKey(),
		NodeID:          mb.identity.NodeID,
		Managers:        mb.knownManagers(),
		Dial:            mb.dial,
		Executor:        exec,
		DataDir:         n.workerDir(),
		Clock:           n.cfg.Clock,
		Logger:          n.log,
		HeartbeatPeriod: n.cfg.HeartbeatPeriod,
		OnNodeUpdate:    onNode,
		OnSession:       onSession,
	})
	if err != nil {
		n.log.Error("the agent could not start", "err", err)
		return
	}
	mb.agentMu.Lock()
	mb.agent = agent
	mb.agentMu.Unlock()
	err = agent.Run(ctx)
	switch {
	case errors.Is(err, worker.ErrNodeRemoved):
		// Not from this goroutine: leaving waits for it to end.
		n.spawn(func() { n.leaveRemoved(mb) })
	case err != nil && ctx.Err() == nil:
		n.log.Error("the agent stopped", "err", err)
	}
}

// execUpWait bounds how long init and join wait for the agent's executor.
const execUpWait = 5 * time.Second

// waitExec waits, at most execUpWait, for the agent's executor to be open,
// so that `swarm init` and `swarm join` return with the node's networking
// in place (as Docker's do with docker_gwbridge). A slow runtime is not an
// error: the agent goes on waiting for it.
func (mb *member) waitExec(ctx context.Context) {
	select {
	case <-mb.execUp:
	case <-mb.n.cfg.Clock.After(execUpWait):
	case <-ctx.Done():
	}
}

// publish hands a node update from the agent's session to watchRole; the
// latest update replaces one not yet taken. It never blocks (only the
// agent's session goroutine sends).
func (mb *member) publish(u worker.NodeUpdate) {
	select {
	case <-mb.updates:
	default:
	}
	select {
	case mb.updates <- u:
	default:
	}
}

// knownManagers lists the manager addresses the agent uses.
func (mb *member) knownManagers() []string {
	mb.agentMu.Lock()
	defer mb.agentMu.Unlock()
	if mb.agent != nil {
		if m := mb.agent.Managers(); len(m) > 0 {
			return m
		}
	}
	return append([]string(nil), mb.managers...)
}
