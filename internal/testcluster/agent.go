package testcluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/shoal-project/shoal/pki"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
	"github.com/shoal-project/shoal/worker"
	"github.com/shoal-project/shoal/worker/fakeexec"
)

// Agent is one node's agent: the real worker.Agent, speaking the
// dispatcher protocol to the managers over mTLS on the in-memory network,
// with a fake executor whose containers survive the agent's restarts.
type Agent struct {
	c      *Cluster
	Name   string // the node's name: "w0"..., or its manager's "m0"...
	NodeID string
	// Exec is the node's container runtime.
	Exec *fakeexec.Executor
	kp   *pki.KeyPair
	dir  string

	mu     sync.Mutex
	agent  *worker.Agent
	dialer *dialer
	cancel context.CancelFunc
	done   chan error
}

// AddAgent joins a worker node (its Node object is recorded as the CA does
// at join) and starts its agent. It does not wait for the node to be READY:
// see WaitReady.
func (c *Cluster) AddAgent() *Agent {
	c.tb.Helper()
	return c.addAgent(nil)
}

// AddAgents joins n worker nodes at once (their Node objects recorded in
// a few large transactions) and starts their agents: the way to hold
// hundreds or thousands of nodes. It does not wait for them to be READY.
func (c *Cluster) AddAgents(n int) []*Agent {
	c.tb.Helper()
	out := make([]*Agent, 0, n)
	for len(out) < n {
		batch := make([]*Agent, 0, min(n-len(out), 500))
		for len(batch) < cap(batch) {
			a := &Agent{c: c, Name: c.nextWorkerNameAfter(len(out) + len(batch)), NodeID: c.newID()}
			a.kp = c.issue(a.NodeID, api.NodeRole_WORKER)
			batch = append(batch, a)
		}
		c.update(fmt.Sprintf("record %d nodes", len(batch)), c.Leader(), func(tx *raftstore.Tx) error {
			for _, a := range batch {
				if err := tx.Create(c.nodeObject(a.NodeID, a.Name, api.NodeRole_WORKER)); err != nil {
					return err
				}
			}
			return nil
		})
		out = append(out, batch...)
	}
	for _, a := range out {
		c.launch(a)
	}
	return out
}

// addAgent makes the agent of manager m's node, or of a new worker node
// when m is nil, and starts it.
func (c *Cluster) addAgent(m *Manager) *Agent {
	c.tb.Helper()
	a := &Agent{c: c}
	if m != nil {
		a.Name, a.NodeID, a.kp = m.Name, m.NodeID, m.kp
	} else {
		a.Name, a.NodeID = c.nextWorkerName(), c.newID()
		a.kp = c.issue(a.NodeID, api.NodeRole_WORKER)
		c.update("record "+a.Name, c.Leader(), func(tx *raftstore.Tx) error {
			return tx.Create(c.nodeObject(a.NodeID, a.Name, api.NodeRole_WORKER))
		})
	}
	c.launch(a)
	return a
}

// launch gives a its executor and task db directory, records it and
// starts it.
func (c *Cluster) launch(a *Agent) {
	c.tb.Helper()
	a.dir = filepath.Dir(c.path(a.Name, "worker", "tasks.db"))
	a.Exec = fakeexec.New(fakeexec.Config{Hostname: a.Name, Rules: c.Rules, Clock: c.clock})
	c.mu.Lock()
	c.agents = append(c.agents, a)
	c.mu.Unlock()
	a.Start()
}

// nextWorkerName names the next worker node.
func (c *Cluster) nextWorkerName() string { return c.nextWorkerNameAfter(0) }

// nextWorkerNameAfter names the worker node that comes skip nodes after
// the next one.
func (c *Cluster) nextWorkerNameAfter(skip int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	workers := len(c.agents)
	for _, x := range c.managers {
		if x.Agent != nil {
			workers--
		}
	}
	return fmt.Sprintf("w%d", workers+skip)
}

// Start starts a stopped agent over the same task db and executor.
func (a *Agent) Start() {
	c := a.c
	c.tb.Helper()
	var addrs []string
	for _, m := range c.Managers() {
		addrs = append(addrs, m.Addr)
	}
	d := newDialer(c.net, a.Name, a.kp, c.ca.Pool())
	cfg := worker.Config{
		NodeID: a.NodeID, Managers: addrs, Dial: d.dial, Executor: a.Exec,
		DataDir: a.dir, Clock: c.clock, Logger: c.log.With("node", a.Name, "component", "agent"),
	}
	if c.opts.Agent != nil {
		c.opts.Agent(&cfg)
	}
	ag, err := worker.New(cfg)
	if err != nil {
		c.tb.Fatalf("%s: %v", a.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	a.mu.Lock()
	if a.agent != nil {
		a.mu.Unlock()
		cancel()
		c.tb.Fatalf("%s already runs", a.Name)
	}
	a.agent, a.dialer, a.cancel, a.done = ag, d, cancel, done
	a.mu.Unlock()
	go func() {
		err := ag.Run(ctx)
		if ctx.Err() == nil {
			c.crash(fmt.Errorf("agent %s stopped on its own: %v", a.Name, err))
		}
		done <- err
	}()
}

// Stop stops the agent and waits; its containers keep running, as when
// shoald stops.
func (a *Agent) Stop() {
	a.c.tb.Helper()
	if err := a.stop(); err != nil {
		a.c.tb.Errorf("%s: %v", a.Name, err)
	}
}

func (a *Agent) stop() error {
	a.mu.Lock()
	ag, cancel, done, d := a.agent, a.cancel, a.done, a.dialer
	a.agent, a.cancel, a.dialer = nil, nil, nil
	a.mu.Unlock()
	if ag == nil {
		return nil
	}
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		err = errors.New("agent did not stop within 30s")
	}
	d.close()
	return err
}

// Restart stops the agent and starts it again.
func (a *Agent) Restart() {
	a.Stop()
	a.Start()
}

// Running reports whether the agent runs.
func (a *Agent) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.agent != nil
}

// Agent is the running worker.Agent, nil while stopped.
func (a *Agent) Agent() *worker.Agent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.agent
}

// Agents lists every agent (managers' included) in creation order.
func (c *Cluster) Agents() []*Agent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Agent(nil), c.agents...)
}

// Workers lists the agents of worker nodes.
func (c *Cluster) Workers() []*Agent {
	var out []*Agent
	mgrs := map[string]bool{}
	for _, m := range c.Managers() {
		mgrs[m.NodeID] = true
	}
	for _, a := range c.Agents() {
		if !mgrs[a.NodeID] {
			out = append(out, a)
		}
	}
	return out
}

// AgentByNode returns the agent of a node ID, or nil.
func (c *Cluster) AgentByNode(nodeID string) *Agent {
	for _, a := range c.Agents() {
		if a.NodeID == nodeID {
			return a
		}
	}
	return nil
}

// WaitReady waits until the node of every running agent is READY.
func (c *Cluster) WaitReady() {
	c.tb.Helper()
	c.WaitFor("every running agent's node to be READY", 2*time.Minute, func() error {
		var problems []string
		nodes := c.Nodes()
		for _, a := range c.Agents() {
			if !a.Running() {
				continue
			}
			n := nodes[a.NodeID]
			if st := n.GetStatus().GetState(); st != api.NodeStatus_READY {
				problems = append(problems, fmt.Sprintf("%s is %v", a.Name, st))
			}
		}
		return errs(problems)
	})
}
