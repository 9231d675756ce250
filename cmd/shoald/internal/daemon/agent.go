package daemon

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/shoal-project/shoal/worker"
	ctrexec "github.com/shoal-project/shoal/worker/containerd"
)

// startAgent runs the node agent: it connects to containerd (waiting for it
// if it is not up yet, without holding up the rest of the daemon), then
// keeps a session with the managers and runs this node's tasks.
func (n *nodeRun) startAgent() {
	n.agentMu.Lock()
	if len(n.managers) == 0 {
		n.managers = []string{n.state.AdvertiseAddr}
	}
	n.agentMu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.runAgent(n.ctx)
	}()
}

func (n *nodeRun) runAgent(ctx context.Context) {
	d := n.d
	var exec *ctrexec.Executor
	for {
		var err error
		exec, err = ctrexec.New(ctx, ctrexec.Config{
			Address:            d.cfg.ContainerdAddress,
			Namespace:          d.cfg.ContainerdNamespace,
			DataDir:            d.execDir(),
			InsecureRegistries: d.cfg.InsecureRegistries,
			NodeID:             n.identity.NodeID,
			Bridge:             d.cfg.Bridge,
			Subnet:             d.cfg.Subnet,
			Version:            strings.TrimPrefix(d.cfg.Version, "shoald "),
			LogDriver:          d.cfg.LogDriver,
			LogDir:             d.cfg.LogDir,
			LogMaxSize:         d.cfg.LogLimits.MaxSize,
			LogMaxFile:         d.cfg.LogLimits.MaxFile,
		})
		if err == nil {
			break
		}
		d.log.Warn("the agent cannot use containerd yet; retrying", "address", d.cfg.ContainerdAddress, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
	defer exec.Close()
	// The task db holds task specs (labels, env): sealed with a key from
	// the node's keyring, as the raft log is.
	keys, ok := n.keys.Keys()
	if !ok {
		d.log.Error("the agent could not start: the node is locked")
		return
	}
	agent, err := worker.New(worker.Config{
		TaskDBKey:       keys.TaskDBKey(),
		NodeID:          n.identity.NodeID,
		Managers:        n.knownManagers(),
		Dial:            n.dial,
		Executor:        exec,
		DataDir:         d.workerDir(),
		Clock:           d.cfg.Clock,
		Logger:          d.log,
		HeartbeatPeriod: d.cfg.HeartbeatPeriod,
	})
	if err != nil {
		d.log.Error("the agent could not start", "err", err)
		return
	}
	n.agentMu.Lock()
	n.agent = agent
	n.agentMu.Unlock()
	err = agent.Run(ctx)
	switch {
	case errors.Is(err, worker.ErrNodeRemoved):
		// Not from this goroutine: leaving waits for it to end.
		go d.leaveRemoved(n)
	case err != nil && ctx.Err() == nil:
		d.log.Error("the agent stopped", "err", err)
	}
}

// knownManagers lists the manager addresses the agent uses.
func (n *nodeRun) knownManagers() []string {
	n.agentMu.Lock()
	defer n.agentMu.Unlock()
	if n.agent != nil {
		if m := n.agent.Managers(); len(m) > 0 {
			return m
		}
	}
	return append([]string(nil), n.managers...)
}
