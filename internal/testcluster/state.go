package testcluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
	"github.com/shoal-project/shoal/worker/fakeexec"
)

// View runs fn on the store of the leader, or of the first running manager
// when none leads. It reports false when no manager runs.
func (c *Cluster) View(fn func(tx raftstore.ReadTx)) bool {
	m := c.currentLeader()
	if m == nil {
		for _, x := range c.Managers() {
			if x.Running() {
				m = x
				break
			}
		}
	}
	if m == nil {
		return false
	}
	mgr := m.Manager()
	if mgr == nil {
		return false
	}
	mgr.Store().View(fn)
	return true
}

// Nodes returns the Node objects by ID.
func (c *Cluster) Nodes() map[string]*api.Node {
	out := map[string]*api.Node{}
	c.View(func(tx raftstore.ReadTx) {
		for _, n := range tx.Nodes() {
			out[n.Id] = n
		}
	})
	return out
}

// Service returns the service named name, or nil.
func (c *Cluster) Service(name string) *api.Service {
	var s *api.Service
	c.View(func(tx raftstore.ReadTx) { s = tx.ServiceByName(name) })
	return s
}

// Tasks returns the tasks of the service named name (none if there is no
// such service).
func (c *Cluster) Tasks(name string) []*api.Task {
	var out []*api.Task
	c.View(func(tx raftstore.ReadTx) {
		if s := tx.ServiceByName(name); s != nil {
			out = tx.TasksByService(s.Id)
		}
	})
	return out
}

// Running returns the service's tasks that are RUNNING and meant to be.
func (c *Cluster) Running(name string) []*api.Task {
	var out []*api.Task
	for _, t := range c.Tasks(name) {
		if t.GetStatus().GetState() == api.TaskState_RUNNING && t.DesiredState == api.TaskState_RUNNING {
			out = append(out, t)
		}
	}
	return out
}

// Containers returns the running containers of a service across the
// agents, keyed by the agent's name. A stopped agent's containers count:
// their processes run on, as when shoald is down.
func (c *Cluster) Containers(serviceID string) map[string][]fakeexec.Container {
	return c.containers(serviceID, false)
}

func (c *Cluster) containers(serviceID string, runningAgents bool) map[string][]fakeexec.Container {
	out := map[string][]fakeexec.Container{}
	for _, a := range c.Agents() {
		if runningAgents && !a.Running() {
			continue
		}
		for _, ct := range a.Exec.Containers() {
			if ct.ServiceID == serviceID && ct.State == fakeexec.Running {
				out[a.Name] = append(out[a.Name], ct)
			}
		}
	}
	return out
}

// Describe summarizes a service's tasks by state/desired state and node,
// for failure messages.
func (c *Cluster) Describe(name string) string {
	names := map[string]string{}
	for _, a := range c.Agents() {
		names[a.NodeID] = a.Name
	}
	counts := map[string]int{}
	for _, t := range c.Tasks(name) {
		counts[fmt.Sprintf("%v/%v@%s", t.GetStatus().GetState(), t.DesiredState, names[t.NodeId])]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s×%d ", k, counts[k])
	}
	return strings.TrimSpace(b.String())
}

// Converge waits until the service named name has exactly want tasks
// RUNNING in the store, want containers running on the running agents,
// and no container of it running twice or without a running task. (The
// containers of a stopped agent are not counted: see Containers.)
func (c *Cluster) Converge(name string, want int, within time.Duration) {
	c.tb.Helper()
	c.WaitFor(fmt.Sprintf("%d running tasks of %s", want, name), within, func() error {
		return c.CheckRunning(name, want)
	})
}

// CheckRunning is Converge's condition: nil when the store and the
// executors agree that want tasks of the service run, each once.
func (c *Cluster) CheckRunning(name string, want int) error {
	svc := c.Service(name)
	if svc == nil {
		return fmt.Errorf("no service %s", name)
	}
	running := c.Running(name)
	if len(running) != want {
		return fmt.Errorf("%d of %d tasks running: %s", len(running), want, c.Describe(name))
	}
	ids := map[string]bool{}
	for _, t := range running {
		ids[t.Id] = true
	}
	n := 0
	for agent, cts := range c.containers(svc.Id, true) {
		for _, ct := range cts {
			n++
			if !ids[ct.TaskID] {
				return fmt.Errorf("container of task %s runs on %s, which is not a running task of %s", ct.TaskID, agent, name)
			}
			if ct.Starts != 1 {
				return fmt.Errorf("task %s was started %d times on %s", ct.TaskID, ct.Starts, agent)
			}
		}
	}
	if n != want {
		return fmt.Errorf("%d containers of %s run, want %d", n, name, want)
	}
	return nil
}

// WaitNode waits until the node of agent a is in state st.
func (c *Cluster) WaitNode(a *Agent, st api.NodeStatus_State, within time.Duration) {
	c.tb.Helper()
	c.WaitFor(fmt.Sprintf("%s to be %v", a.Name, st), within, func() error {
		if got := c.Nodes()[a.NodeID].GetStatus().GetState(); got != st {
			return fmt.Errorf("%s is %v", a.Name, got)
		}
		return nil
	})
}

// Control returns a Control API client connected to the first running
// manager (followers forward to the leader), with a manager certificate
// of its own, as the CLI's calls arrive through a node's daemon.
func (c *Cluster) Control() api.ControlClient {
	c.tb.Helper()
	for _, m := range c.Managers() {
		if m.Running() {
			return c.ControlVia(m)
		}
	}
	c.tb.Fatal("no manager runs")
	return nil
}

// ControlVia returns a Control API client connected to m.
func (c *Cluster) ControlVia(m *Manager) api.ControlClient {
	c.tb.Helper()
	conn, err := c.admin.dial(context.Background(), m.Addr)
	if err != nil {
		c.tb.Fatal(err)
	}
	return api.NewControlClient(conn)
}

// ConnVia returns a connection to m with a manager certificate, for the
// manager's other services (Watch, Logs).
func (c *Cluster) ConnVia(m *Manager) *grpc.ClientConn {
	c.tb.Helper()
	conn, err := c.admin.dial(context.Background(), m.Addr)
	if err != nil {
		c.tb.Fatal(err)
	}
	return conn
}

// Call runs fn with a Control client, retrying while the cluster is
// unavailable (no leader yet, a manager restarting), for up to a minute
// of cluster time.
func (c *Cluster) Call(what string, fn func(ctx context.Context, cl api.ControlClient) error) {
	c.tb.Helper()
	var last error
	err := c.Await(time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var cl api.ControlClient
		for _, m := range c.Managers() {
			if m.Running() {
				conn, err := c.admin.dial(ctx, m.Addr)
				if err != nil {
					return err
				}
				cl = api.NewControlClient(conn)
				break
			}
		}
		if cl == nil {
			return errors.New("no manager runs")
		}
		last = errdefs.FromGRPC(fn(ctx, cl))
		if last != nil && !errdefs.IsUnavailable(last) && !errors.Is(last, context.DeadlineExceeded) && !errors.Is(last, errdefs.ErrDeadlineExceeded) {
			return nil // not worth retrying: reported below
		}
		return last
	})
	if err == nil {
		err = last
	}
	if err != nil {
		c.tb.Fatalf("%s: %v", what, err)
	}
}

// CreateService creates a service and returns it.
func (c *Cluster) CreateService(spec *api.ServiceSpec) *api.Service {
	c.tb.Helper()
	var svc *api.Service
	c.Call("create service "+spec.GetAnnotations().GetName(), func(ctx context.Context, cl api.ControlClient) error {
		resp, err := cl.CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
		if err != nil {
			if s := c.Service(spec.GetAnnotations().GetName()); s != nil && errdefs.IsAlreadyExists(errdefs.FromGRPC(err)) {
				svc = s // an earlier attempt went through
				return nil
			}
			return err
		}
		svc = resp.Service
		return nil
	})
	return svc
}

// UpdateService reads the service named name, lets edit change a copy of
// its spec, and writes it, retrying on conflicts and unavailability.
func (c *Cluster) UpdateService(name string, edit func(*api.ServiceSpec)) {
	c.tb.Helper()
	c.Call("update service "+name, func(ctx context.Context, cl api.ControlClient) error {
		svc := c.Service(name)
		if svc == nil {
			return fmt.Errorf("no service %s", name)
		}
		spec := cloneSpec(svc.Spec)
		edit(spec)
		_, err := cl.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.Id, ServiceVersion: svc.Meta.Version, Spec: spec})
		if errdefs.IsConflict(errdefs.FromGRPC(err)) {
			return errdefs.Unavailable("conflict: %v", err) // read again
		}
		return err
	})
}

func cloneSpec(s *api.ServiceSpec) *api.ServiceSpec { return proto.Clone(s).(*api.ServiceSpec) }
