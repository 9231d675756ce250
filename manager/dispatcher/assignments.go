package dispatcher

import (
	"math"
	"net"
	"time"

	"context"

	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	txbatch "github.com/shoal-project/shoal/internal/batch"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// assignmentBatch bounds one incremental message and how long changes wait.
const (
	assignmentBatch = 100
	assignmentDelay = 50 * time.Millisecond
)

// onNode: the agent must know about this task (placed on it, not deleted).
func onNode(t *api.Task, nodeID string) bool {
	return t != nil && t.NodeId == nodeID && t.GetStatus().GetState() >= api.TaskState_ASSIGNED
}

// relevant: a change the agent acts on (not its own status reports). The
// endpoint counts: published ports added to a running task reach the node's
// routing mesh through it.
func relevant(old, cur *api.Task) bool {
	return old == nil || old.DesiredState != cur.DesiredState || old.ServiceRemoved != cur.ServiceRemoved || !proto.Equal(old.Spec, cur.Spec) ||
		old.GetStatus().GetState() < api.TaskState_ASSIGNED || !proto.Equal(old.Endpoint, cur.Endpoint)
}

// Assignments streams the node's tasks: the full set first, then changes.
func (d *Dispatcher) Assignments(req *api.AssignmentsRequest, stream api.Dispatcher_AssignmentsServer) error {
	s, err := d.session(stream.Context(), req.GetSessionId())
	if err != nil {
		return err
	}
	nodeID := s.nodeID
	dep := newDeps(d.store)
	full := &api.AssignmentsMessage{Type: api.AssignmentsMessage_COMPLETE}
	done, err := d.beginSetup(stream.Context())
	if err != nil {
		return err
	}
	// NodeID: the store delivers the task events whose task was or is on
	// this node, without running a filter per node per event.
	w := d.store.ViewAndWatch(raftstore.WatchOptions{
		Kinds:  []string{raftstore.KindTask},
		NodeID: nodeID,
	}, func(tx raftstore.ReadTx) {
		for _, t := range tx.TasksByNode(nodeID) {
			if onNode(t, nodeID) {
				dep.track(t.Id, t)
				full.Changes = append(full.Changes, &api.AssignmentChange{Action: api.AssignmentChange_UPDATE,
					Assignment: &api.Assignment{Item: &api.Assignment_Task{Task: t}}})
			}
		}
	})
	defer w.Close()
	// Dependencies first, so a task never arrives before its secrets.
	full.Changes = append(dep.changes(), full.Changes...)
	done()
	if err := sendParts(stream, full); err != nil {
		return err
	}
	ctx := stream.Context()
	var batch []*api.AssignmentChange
	var flush <-chan time.Time
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		// New dependencies before the tasks, withdrawn ones after.
		var adds, removes []*api.AssignmentChange
		for _, c := range dep.changes() {
			if c.Action == api.AssignmentChange_REMOVE {
				removes = append(removes, c)
			} else {
				adds = append(adds, c)
			}
		}
		batch = append(append(adds, batch...), removes...)
		err := sendParts(stream, &api.AssignmentsMessage{Type: api.AssignmentsMessage_INCREMENTAL, Changes: batch})
		batch, flush = nil, nil
		return err
	}
	for {
		select {
		case <-s.ctx.Done():
			return s.ctx.Err()
		case <-ctx.Done():
			return nil
		case <-flush:
			if err := send(); err != nil {
				return err
			}
		case ev, ok := <-w.C:
			if !ok {
				return w.Err() // cut off: the agent reconnects and gets a full set
			}
			cur, _ := ev.Object.(*api.Task)
			old, _ := ev.Old.(*api.Task)
			var ch *api.AssignmentChange
			switch {
			case ev.Action != raftstore.ActionDelete && onNode(cur, nodeID):
				dep.track(cur.Id, cur)
				if onNode(old, nodeID) && !relevant(old, cur) {
					continue
				}
				ch = &api.AssignmentChange{Action: api.AssignmentChange_UPDATE, Assignment: &api.Assignment{Item: &api.Assignment_Task{Task: cur}}}
			case onNode(old, nodeID) || (ev.Action == raftstore.ActionDelete && onNode(cur, nodeID)):
				dep.track(cur.GetId(), nil)
				ch = &api.AssignmentChange{Action: api.AssignmentChange_REMOVE, Assignment: &api.Assignment{Item: &api.Assignment_Task{Task: &api.Task{Id: cur.GetId()}}}}
			default:
				continue
			}
			batch = append(batch, ch)
			// Send when the batch is full, or as soon as no further change
			// is queued; the delay only bounds a steady stream.
			if len(batch) >= assignmentBatch || len(w.C) == 0 {
				if err := send(); err != nil {
					return err
				}
			} else if flush == nil {
				flush = d.cfg.Clock.After(assignmentDelay)
			}
		}
	}
}

// peerHost is the caller's IP, recorded as the node's address.
func peerHost(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if h, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return h
	}
	return p.Addr.String()
}

// sendParts sends msg, cut into parts of at most api.MaxListPageBytes of
// changes when it is larger (many tasks with large specs, configs of
// 500 KiB): every part but the last is marked More, and the agent applies
// them together, so no message exceeds the message cap.
func sendParts(stream api.Dispatcher_AssignmentsServer, msg *api.AssignmentsMessage) error {
	parts := txbatch.Cut(msg.Changes, func(c *api.AssignmentChange) int { return proto.Size(c) }, math.MaxInt, api.MaxListPageBytes)
	if len(parts) <= 1 {
		return stream.Send(msg)
	}
	for i, p := range parts {
		if err := stream.Send(&api.AssignmentsMessage{Type: msg.Type, Changes: p, More: i < len(parts)-1}); err != nil {
			return err
		}
	}
	return nil
}
