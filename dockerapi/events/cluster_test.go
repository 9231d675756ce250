package events_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"

	dockerevents "github.com/shoal-project/shoal/dockerapi/events"
	"github.com/shoal-project/shoal/internal/testcluster"
	api "github.com/shoal-project/shoal/proto"
)

// recorder reads a subscription and waits for events, keeping them all.
type recorder struct {
	t   *testing.T
	sub *dockerevents.Subscription
	got []events.Message
}

// await reads events until one matches, for up to 30 s of wall time.
func (r *recorder) await(what string, match func(events.Message) bool) events.Message {
	r.t.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case m := <-r.sub.C:
			r.got = append(r.got, m)
			if match(m) {
				return m
			}
		case <-r.sub.Done():
			r.t.Fatalf("waiting for %s: subscription ended: %v", what, r.sub.Err())
		case <-timeout.C:
			r.t.Fatalf("no event %s in 30 s; got:\n%s", what, dump(r.got))
		}
	}
}

// tryAwait is await with a short bound and no failure.
func (r *recorder) tryAwait(within time.Duration, match func(events.Message) bool) bool {
	timeout := time.NewTimer(within)
	defer timeout.Stop()
	for {
		select {
		case m := <-r.sub.C:
			r.got = append(r.got, m)
			if match(m) {
				return true
			}
		case <-timeout.C:
			return false
		}
	}
}

func dump(ms []events.Message) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "  %s %s %s %v\n", m.Type, m.Action, m.Actor.ID, m.Actor.Attributes)
	}
	return b.String()
}

func is(typ events.Type, action events.Action, name string) func(events.Message) bool {
	return func(m events.Message) bool {
		return m.Type == typ && m.Action == action && m.Actor.Attributes["name"] == name
	}
}

// The events of a real cluster, through the real Watch RPC: a service's
// life (with its tasks going RUNNING), a node update, a secret's and a
// network's, in dockerd's shapes.
func TestClusterEvents(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Managers: 1})
	src, err := dockerevents.New(dockerevents.Config{Watch: api.NewWatchClient(c.ConnVia(c.Leader()))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	sub, _ := src.Subscribe(nil, time.Time{}, time.Time{})
	defer sub.Close()
	r := &recorder{t: t, sub: sub}
	call := func(what string, fn func(ctx context.Context, cl api.ControlClient) error) { c.Call(what, fn) }

	// The watch is up once a change made now arrives.
	for i := 0; ; i++ {
		name := fmt.Sprintf("probe%d", i)
		call("create config", func(ctx context.Context, cl api.ControlClient) error {
			_, err := cl.CreateConfig(ctx, &api.CreateConfigRequest{Spec: &api.ConfigSpec{Annotations: &api.Annotations{Name: name}, Data: []byte("x")}})
			return err
		})
		if r.tryAwait(2*time.Second, is(events.ConfigEventType, events.ActionCreate, name)) {
			break
		}
		if i == 20 {
			t.Fatalf("the watch stream never delivered; got:\n%s", dump(r.got))
		}
	}

	// A service, its task created and running.
	svc := c.CreateService(&api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web", Labels: map[string]string{"tier": "front"}},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "img:1"}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 1}},
	})
	m := r.await("service create", is(events.ServiceEventType, events.ActionCreate, "web"))
	if m.Actor.ID != svc.Id || m.Scope != "swarm" || m.Time == 0 || m.TimeNano/1e9 != m.Time {
		t.Errorf("service create: %+v", m)
	}
	r.await("task create", is(dockerevents.TaskEventType, events.ActionCreate, "web.1"))
	run := r.await("task running", is(dockerevents.TaskEventType, "running", "web.1"))
	a := run.Actor.Attributes
	if a["service.id"] != svc.Id || a["service.name"] != "web" || a["slot"] != "1" || a["node.id"] == "" ||
		a["state.new"] != "running" || a["state.old"] == "" || a["state.old"] == "running" || a["desiredstate"] != "running" {
		t.Errorf("task running attributes: %v", a)
	}

	// Scale: replicas.old/new. Image change: image and updatestate.
	c.UpdateService("web", func(s *api.ServiceSpec) { s.GetReplicated().Replicas = 2 })
	m = r.await("replicas change", func(m events.Message) bool {
		return is(events.ServiceEventType, events.ActionUpdate, "web")(m) && m.Actor.Attributes["replicas.new"] == "2"
	})
	if m.Actor.Attributes["replicas.old"] != "1" {
		t.Errorf("scale: %v", m.Actor.Attributes)
	}
	c.UpdateService("web", func(s *api.ServiceSpec) { s.Task.Container.Image = "img:2" })
	m = r.await("image change", func(m events.Message) bool {
		return is(events.ServiceEventType, events.ActionUpdate, "web")(m) && m.Actor.Attributes["image.new"] == "img:2"
	})
	if m.Actor.Attributes["image.old"] != "img:1" {
		t.Errorf("image update: %v", m.Actor.Attributes)
	}
	r.await("updatestate updating", func(m events.Message) bool {
		return is(events.ServiceEventType, events.ActionUpdate, "web")(m) && m.Actor.Attributes["updatestate.new"] == "updating"
	})
	r.await("updatestate completed", func(m events.Message) bool {
		return is(events.ServiceEventType, events.ActionUpdate, "web")(m) && m.Actor.Attributes["updatestate.new"] == "completed" &&
			m.Actor.Attributes["updatestate.old"] == "updating"
	})

	// A node update: availability.old/new.
	node := c.Leader().NodeID
	call("pause node", func(ctx context.Context, cl api.ControlClient) error {
		resp, err := cl.GetNode(ctx, &api.GetNodeRequest{NodeId: node})
		if err != nil {
			return err
		}
		spec := resp.Node.Spec
		spec.Availability = api.Availability_PAUSE
		_, err = cl.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: node, NodeVersion: resp.Node.Meta.Version, Spec: spec})
		return err
	})
	m = r.await("node pause", func(m events.Message) bool {
		return m.Type == events.NodeEventType && m.Action == events.ActionUpdate && m.Actor.ID == node && m.Actor.Attributes["availability.new"] == "pause"
	})
	if m.Actor.Attributes["availability.old"] != "active" || m.Actor.Attributes["name"] == "" {
		t.Errorf("node update: %v", m.Actor.Attributes)
	}

	// A secret: create, update (labels), remove.
	var secretID string
	call("create secret", func(ctx context.Context, cl api.ControlClient) error {
		resp, err := cl.CreateSecret(ctx, &api.CreateSecretRequest{Spec: &api.SecretSpec{Annotations: &api.Annotations{Name: "pw"}, Data: []byte("s3cret")}})
		if err == nil {
			secretID = resp.Secret.Id
		}
		return err
	})
	if m := r.await("secret create", is(events.SecretEventType, events.ActionCreate, "pw")); m.Actor.ID != secretID {
		t.Errorf("secret create: %+v", m)
	}
	call("update secret", func(ctx context.Context, cl api.ControlClient) error {
		_, err := cl.UpdateSecret(ctx, &api.UpdateSecretRequest{SecretId: "pw", Spec: &api.SecretSpec{Annotations: &api.Annotations{Name: "pw", Labels: map[string]string{"k": "v"}}}})
		return err
	})
	r.await("secret update", is(events.SecretEventType, events.ActionUpdate, "pw"))
	call("remove secret", func(ctx context.Context, cl api.ControlClient) error {
		_, err := cl.RemoveSecret(ctx, &api.RemoveSecretRequest{SecretId: "pw"})
		return err
	})
	r.await("secret remove", is(events.SecretEventType, events.ActionRemove, "pw"))

	// A network: create, remove.
	call("create network", func(ctx context.Context, cl api.ControlClient) error {
		_, err := cl.CreateNetwork(ctx, &api.CreateNetworkRequest{Spec: &api.NetworkSpec{Annotations: &api.Annotations{Name: "backend"}, Driver: &api.Driver{Name: "overlay"}}})
		return err
	})
	r.await("network create", is(events.NetworkEventType, events.ActionCreate, "backend"))
	call("remove network", func(ctx context.Context, cl api.ControlClient) error {
		_, err := cl.RemoveNetwork(ctx, &api.RemoveNetworkRequest{NetworkId: "backend"})
		return err
	})
	r.await("network remove", is(events.NetworkEventType, events.ActionRemove, "backend"))

	// The service goes.
	call("remove service", func(ctx context.Context, cl api.ControlClient) error {
		_, err := cl.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: "web"})
		return err
	})
	r.await("service remove", is(events.ServiceEventType, events.ActionRemove, "web"))

	// A filtered subscription replays from the ring what it keeps.
	since := time.Unix(0, 1)
	_, replay := src.Subscribe(dockerevents.Filter{"type": {"service"}, "event": {"create", "remove"}}, since, time.Now().Add(time.Hour))
	var got []string
	for _, m := range replay {
		got = append(got, string(m.Action)+" "+m.Actor.Attributes["name"])
	}
	if strings.Join(got, ",") != "create web,remove web" {
		t.Errorf("replay of service create/remove: %v", got)
	}
	_, replay = src.Subscribe(dockerevents.Filter{"label": {"tier=front"}, "type": {"task"}}, since, time.Time{})
	if len(replay) == 0 {
		t.Error("label filter: no task event of the service labelled tier=front in the ring")
	}
	for _, m := range replay {
		if m.Type != dockerevents.TaskEventType || m.Actor.Attributes["service.name"] != "web" {
			t.Errorf("label filter kept %+v", m)
		}
	}
}
