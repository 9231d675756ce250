package dockerapi

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"google.golang.org/grpc"

	api "github.com/shoal-project/shoal/proto"
)

// taskControl answers ListTasks and ListNetworks as the manager does: its
// label filter sees only a task's own labels.
type taskControl struct {
	api.ControlClient
	tasks []*api.Task
}

func (c *taskControl) ListTasks(_ context.Context, r *api.ListTasksRequest, _ ...grpc.CallOption) (*api.ListTasksResponse, error) {
	var out []*api.Task
	for _, t := range c.tasks {
		ok := true
		for _, l := range r.GetFilters().GetLabels() {
			k, v, _ := strings.Cut(l, "=")
			if got, present := t.GetAnnotations().GetLabels()[k]; !present || (v != "" && got != v) {
				ok = false
			}
		}
		if ok {
			out = append(out, t)
		}
	}
	return &api.ListTasksResponse{Tasks: out}, nil
}

func (c *taskControl) ListNetworks(context.Context, *api.ListNetworksRequest, ...grpc.CallOption) (*api.ListNetworksResponse, error) {
	return &api.ListNetworksResponse{}, nil
}

// TestTaskListLabelFilter: `docker stack ps` asks for the tasks labelled
// com.docker.stack.namespace=NAME, a label of their service; a task's own
// labels match too.
func TestTaskListLabelFilter(t *testing.T) {
	stack := map[string]string{"com.docker.stack.namespace": "app"}
	ctl := &taskControl{tasks: []*api.Task{
		{Id: "t1", ServiceId: "s1", Slot: 1, ServiceAnnotations: &api.Annotations{Name: "app_web", Labels: stack}},
		{Id: "t2", ServiceId: "s2", Slot: 1, ServiceAnnotations: &api.Annotations{Name: "other"}},
		{Id: "t3", ServiceId: "s2", Slot: 2, ServiceAnnotations: &api.Annotations{Name: "other"}, Annotations: &api.Annotations{Labels: map[string]string{"own": "yes"}}},
	}}
	s, err := newServer(Config{Version: "0.1.0-test"}, ctl, &fakeLocal{info: &api.InfoResponse{State: api.InfoResponse_ACTIVE, ControlAvailable: true}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: s}
	for q, want := range map[string][]string{
		`{"label":{"com.docker.stack.namespace=app":true}}`:   {"t1"},
		`{"label":{"com.docker.stack.namespace":true}}`:       {"t1"},
		`{"label":{"com.docker.stack.namespace=other":true}}`: {},
		`{"label":{"own=yes":true}}`:                          {"t3"},
		`{"label":{"own":true},"name":{"other.2":true}}`:      {"t3"},
		``: {"t1", "t2", "t3"},
	} {
		code, _, body := e.do("GET", "/v1.41/tasks?filters="+queryEscape(q), "")
		if code != 200 {
			t.Errorf("filters %s: %d %s", q, code, body)
			continue
		}
		var tasks []swarm.Task
		if err := json.Unmarshal([]byte(body), &tasks); err != nil {
			t.Fatal(err)
		}
		got := []string{}
		for _, tk := range tasks {
			got = append(got, tk.ID)
		}
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("filters %s: tasks %v, want %v", q, got, want)
		}
	}
}
