package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/worker"
)

// Overlay is the node's overlay networks as the controller drives them
// (overlay.Agent). Config.Overlay nil: the node has none, and a task with
// networks is rejected.
type Overlay interface {
	// Attach gives the task one interface per network (eth1, eth2, … after
	// the node-local eth0) before its container is created; idempotent.
	Attach(ctx context.Context, t *api.Task, taskNetns string) ([]netip.Prefix, error)
	// Addresses are the task's overlay addresses while attached.
	Addresses(taskID string) []netip.Prefix
	// Serving: the process runs (and passed its health check).
	Serving(t *api.Task)
	// Draining: the task is about to be stopped; it leaves DNS and the
	// VIPs, and the call returns once that has reached the other nodes.
	Draining(ctx context.Context, t *api.Task) error
	// Gone: the process exited; the task leaves at once.
	Gone(t *api.Task)
	// UpdateEndpoint gives a running task's new endpoint (published ports
	// changed without a new task).
	UpdateEndpoint(t *api.Task)
	// ServiceRemoved: the task's service was removed; its published ports
	// leave the routing mesh at once.
	ServiceRemoved(t *api.Task)
	// Detach undoes Attach; idempotent.
	Detach(ctx context.Context, t *api.Task, taskNetns string) error
	// DataPathAddr is the node's VTEP, reported in its description.
	DataPathAddr() netip.Addr
	// SetHostAddr gives the task's node-local (eth0) address: the backend
	// of its host-mode published ports, served by the node's routing mesh.
	SetHostAddr(taskID string, addr netip.Addr)
}

// errNoOverlay rejects a task with networks on a node without overlay.
var errNoOverlay = worker.Rejected(errors.New("this node has no overlay support configured: the task is on overlay networks (shoald sets it up once the node is in a swarm, on its data path address: see --data-path-addr)"))

// embeddedDNS is the resolver the overlay serves in each task's namespace.
const embeddedDNS = "127.0.0.11"

// hasNetworks tells whether the task is on overlay networks.
func (c *controller) hasNetworks() bool { return len(c.task.GetNetworks()) > 0 }

// hasHostPorts tells whether the task publishes host-mode ports.
func (c *controller) hasHostPorts() bool {
	for _, p := range c.task.GetEndpoint().GetPorts() {
		if p.GetPublishMode() == api.PortConfig_HOST && p.GetPublishedPort() != 0 {
			return true
		}
	}
	return false
}

// onOverlay tells whether the overlay agent drives the task: it is on
// overlay networks or publishes host-mode ports (served by the mesh).
func (c *controller) onOverlay() bool {
	return c.e.cfg.Overlay != nil && (c.hasNetworks() || c.hasHostPorts())
}

// overlayHostAddr gives the overlay the task's node-local address.
func (c *controller) overlayHostAddr() {
	if a, ok := c.e.net.Address(c.id); ok && c.e.cfg.Overlay != nil {
		c.e.cfg.Overlay.SetHostAddr(c.id, a.Addr())
	}
}

// overlayDNS returns the resolv.conf inputs of a task on overlay networks:
// the embedded server first, Docker's ndots:0, the user's search domains,
// options and servers kept after it.
func overlayDNS(user, search, options []string) ([]string, []string, []string) {
	ns := append([]string{embeddedDNS}, user...)
	opts := append([]string{"ndots:0"}, options...)
	return ns, search, opts
}

// overlayServing publishes the task (it runs, and is healthy when it has a
// health check).
func (c *controller) overlayServing() {
	if c.onOverlay() {
		c.e.cfg.Overlay.Serving(c.task)
	}
}

// overlayGone withdraws the task (its process has exited).
func (c *controller) overlayGone() {
	if c.onOverlay() {
		c.e.cfg.Overlay.Gone(c.task)
	}
}

// overlayDetach removes the task from its overlay networks.
func (c *controller) overlayDetach(ctx context.Context) error {
	if !c.onOverlay() {
		return nil
	}
	err := c.e.cfg.Overlay.Detach(context.WithoutCancel(ctx), c.task, c.e.cfg.netnsPath(c.id))
	c.e.egressDone(c.id)
	return err
}

// overlayEnsure attaches a prepared task the overlay does not know yet (a
// daemon restart between Prepare and Start).
func (c *controller) overlayEnsure(ctx context.Context) error {
	if !c.onOverlay() || c.hasNetworks() && len(c.e.cfg.Overlay.Addresses(c.id)) > 0 {
		return nil
	}
	c.overlayHostAddr()
	if c.hasNetworks() {
		if err := c.e.egressFor(c.id); err != nil {
			return fmt.Errorf("egress of bridge %s: %w", c.e.cfg.Bridge, err)
		}
	}
	if _, err := c.e.cfg.Overlay.Attach(ctx, c.task, c.e.cfg.netnsPath(c.id)); err != nil {
		return fmt.Errorf("attach %s to its overlay networks: %w", c.id, err)
	}
	return nil
}

// overlayReattach re-registers a task whose process this controller did
// not start (a daemon restart in between): its interfaces are checked, its
// DNS and VIP table restored and, the process running, it is published.
func (c *controller) overlayReattach(ctx context.Context) {
	if !c.onOverlay() {
		return
	}
	if c.hasNetworks() {
		_ = c.e.egressFor(c.id) // counted again after a daemon restart
	}
	c.overlayHostAddr()
	if _, err := c.e.cfg.Overlay.Attach(ctx, c.task, c.e.cfg.netnsPath(c.id)); err != nil {
		// Best effort: the periodic resync of the overlay cannot fix a
		// missing interface, but the task still runs; say so.
		slog.Default().Warn("re-attaching a task to its overlay networks failed", "task", c.id, "err", err)
		return
	}
	c.e.cfg.Overlay.Serving(c.task)
}

// UpdateEndpoint hands a running task's new endpoint to the overlay, whose
// routing mesh serves its new published ports (worker.EndpointUpdater).
// c.task is left alone: Wait may read it from another goroutine, and the
// overlay keeps its own copy of the task.
// ServiceRemoved implements worker.ServiceRemovedNotifier.
func (c *controller) ServiceRemoved(t *api.Task) {
	if c.e.cfg.Overlay != nil && c.onOverlay() {
		c.e.cfg.Overlay.ServiceRemoved(t)
	}
}

func (c *controller) UpdateEndpoint(t *api.Task) {
	if c.e.cfg.Overlay != nil && (len(t.GetNetworks()) > 0 || c.onOverlay()) {
		c.e.cfg.Overlay.UpdateEndpoint(t)
	}
}
