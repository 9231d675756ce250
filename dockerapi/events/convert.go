package events

import (
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"

	api "github.com/shoal-project/shoal/proto"
)

// TaskEventType is the Type of shoal's task events (Docker has none).
const TaskEventType events.Type = "task"

// Scope is the scope of every event of a swarm.
const Scope = "swarm"

// Event is one message and what filters need beyond it.
type Event struct {
	Msg events.Message
	// Labels are the object's labels (a task's: its service's), for the
	// label filter; they are not part of the message, as in dockerd.
	Labels map[string]string
}

var actions = map[api.WatchAction]events.Action{
	api.WatchAction_WATCH_ACTION_CREATE: events.ActionCreate,
	api.WatchAction_WATCH_ACTION_UPDATE: events.ActionUpdate,
	api.WatchAction_WATCH_ACTION_DELETE: events.ActionRemove,
}

// Convert turns one store change into an event. now is the time of a
// removal (the store keeps none); creates and updates carry the object's
// own timestamps, as dockerd's. ok is false for changes that make no event
// (the cluster object, a task write that leaves its state).
func Convert(ev *api.WatchEvent, now time.Time) (out Event, ok bool) {
	action, known := actions[ev.GetAction()]
	if !known || ev.GetObject() == nil {
		return Event{}, false
	}
	obj, old := ev.GetObject(), ev.GetOldObject()
	update := action == events.ActionUpdate
	switch {
	case obj.GetService() != nil:
		s := obj.GetService()
		attrs := map[string]string{"name": s.GetSpec().GetAnnotations().GetName()}
		if update && old.GetService() != nil {
			serviceChanges(attrs, old.GetService(), s)
		}
		out = newEvent(events.ServiceEventType, action, s.GetId(), attrs, s.GetMeta(), now)
		out.Labels = s.GetSpec().GetAnnotations().GetLabels()
	case obj.GetNode() != nil:
		n := obj.GetNode()
		attrs := map[string]string{"name": nodeName(n)}
		if update && old.GetNode() != nil {
			nodeChanges(attrs, old.GetNode(), n)
		}
		out = newEvent(events.NodeEventType, action, n.GetId(), attrs, n.GetMeta(), now)
		out.Labels = n.GetSpec().GetAnnotations().GetLabels()
	case obj.GetNetwork() != nil:
		n := obj.GetNetwork()
		out = newEvent(events.NetworkEventType, action, n.GetId(), map[string]string{"name": n.GetSpec().GetAnnotations().GetName()}, n.GetMeta(), now)
		out.Labels = n.GetSpec().GetAnnotations().GetLabels()
	case obj.GetSecret() != nil:
		s := obj.GetSecret()
		out = newEvent(events.SecretEventType, action, s.GetId(), map[string]string{"name": s.GetSpec().GetAnnotations().GetName()}, s.GetMeta(), now)
		out.Labels = s.GetSpec().GetAnnotations().GetLabels()
	case obj.GetConfig() != nil:
		c := obj.GetConfig()
		out = newEvent(events.ConfigEventType, action, c.GetId(), map[string]string{"name": c.GetSpec().GetAnnotations().GetName()}, c.GetMeta(), now)
		out.Labels = c.GetSpec().GetAnnotations().GetLabels()
	case obj.GetTask() != nil:
		return taskEvent(action, obj.GetTask(), old.GetTask(), now)
	default:
		return Event{}, false
	}
	return out, true
}

func newEvent(typ events.Type, action events.Action, id string, attrs map[string]string, meta *api.Meta, now time.Time) Event {
	t := now
	switch action {
	case events.ActionCreate:
		if ts := meta.GetCreatedAt(); ts != nil {
			t = ts.AsTime()
		}
	case events.ActionUpdate:
		if ts := meta.GetUpdatedAt(); ts != nil {
			t = ts.AsTime()
		}
	}
	t = t.UTC()
	return Event{Msg: events.Message{
		Type:     typ,
		Action:   action,
		Actor:    events.Actor{ID: id, Attributes: attrs},
		Scope:    Scope,
		Time:     t.Unix(),
		TimeNano: t.UnixNano(),
	}}
}

func lower(s string) string { return strings.ToLower(s) }

func change(attrs map[string]string, key, old, cur string) {
	if old != cur {
		attrs[key+".old"], attrs[key+".new"] = old, cur
	}
}

func serviceChanges(attrs map[string]string, old, cur *api.Service) {
	change(attrs, "image", old.GetSpec().GetTask().GetContainer().GetImage(), cur.GetSpec().GetTask().GetContainer().GetImage())
	if o, c := old.GetSpec().GetReplicated(), cur.GetSpec().GetReplicated(); o != nil && c != nil {
		change(attrs, "replicas", strconv.FormatUint(o.GetReplicas(), 10), strconv.FormatUint(c.GetReplicas(), 10))
	}
	if u := cur.GetUpdateStatus(); u != nil {
		state := lower(u.GetState().String())
		if o := old.GetUpdateStatus(); o == nil {
			attrs["updatestate.new"] = state
		} else {
			change(attrs, "updatestate", lower(o.GetState().String()), state)
		}
	}
}

func nodeName(n *api.Node) string {
	if name := n.GetSpec().GetAnnotations().GetName(); name != "" {
		return name
	}
	return n.GetDescription().GetHostname()
}

func nodeChanges(attrs map[string]string, old, cur *api.Node) {
	change(attrs, "availability", lower(old.GetSpec().GetAvailability().String()), lower(cur.GetSpec().GetAvailability().String()))
	change(attrs, "role", lower(old.GetRole().String()), lower(cur.GetRole().String()))
	change(attrs, "state", lower(old.GetStatus().GetState().String()), lower(cur.GetStatus().GetState().String()))
	if o, c := old.GetManagerStatus(), cur.GetManagerStatus(); o != nil && c != nil {
		change(attrs, "leader", strconv.FormatBool(o.GetLeader()), strconv.FormatBool(c.GetLeader()))
		change(attrs, "reachability", reachability(o.GetReachability()), reachability(c.GetReachability()))
	}
}

func reachability(r api.Reachability) string {
	if r == api.Reachability_REACHABILITY_UNKNOWN {
		return "unknown"
	}
	return lower(r.String())
}

func taskState(s api.TaskState) string { return lower(s.String()) }

// TaskName is the name docker gives a task: SERVICE.SLOT, or SERVICE.NODE
// for a global task.
func TaskName(t *api.Task) string {
	svc := t.GetServiceAnnotations().GetName()
	if t.GetSlot() != 0 {
		return svc + "." + strconv.FormatUint(t.GetSlot(), 10)
	}
	return svc + "." + t.GetNodeId()
}

func taskEvent(action events.Action, t, old *api.Task, now time.Time) (Event, bool) {
	state := taskState(t.GetStatus().GetState())
	attrs := map[string]string{
		"name":         TaskName(t),
		"service.id":   t.GetServiceId(),
		"service.name": t.GetServiceAnnotations().GetName(),
		"slot":         strconv.FormatUint(t.GetSlot(), 10),
		"desiredstate": taskState(t.GetDesiredState()),
		"state.new":    state,
	}
	if t.GetNodeId() != "" {
		attrs["node.id"] = t.GetNodeId()
	}
	if e := t.GetStatus().GetErr(); e != "" {
		attrs["error"] = e
	}
	if action == events.ActionUpdate {
		if old == nil {
			return Event{}, false // no old state to compare: say nothing rather than guess
		}
		if old.GetStatus().GetState() == t.GetStatus().GetState() {
			return Event{}, false
		}
		attrs["state.old"] = taskState(old.GetStatus().GetState())
		action = events.Action(state)
	}
	out := newEvent(TaskEventType, action, t.GetId(), attrs, t.GetMeta(), now)
	out.Labels = t.GetServiceAnnotations().GetLabels()
	return out, true
}
