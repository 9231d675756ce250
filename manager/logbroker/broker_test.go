package logbroker

import (
	"context"
	"errors"
	"strings"
	"testing"

	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Tasks with the log driver none keep no logs: asking for only them is
// answered as Docker answers, a mix warns, and their nodes are not asked.
func TestInvolvedNodesLogDriverNone(t *testing.T) {
	store := raftstore.NewStandaloneStore(nil)
	none := &api.Driver{Name: "none"}
	svc := func(id string, d *api.Driver) *api.Service {
		return &api.Service{Id: id, Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: id},
			Task: &api.TaskSpec{LogDriver: d, Container: &api.ContainerSpec{Image: "x"}}}}
	}
	task := func(id, service, node string, d *api.Driver) *api.Task {
		return &api.Task{Id: id, ServiceId: service, NodeId: node, Spec: &api.TaskSpec{LogDriver: d}}
	}
	err := store.Update(context.Background(), func(tx *raftstore.Tx) error {
		for _, o := range []raftstore.Object{
			&api.Node{Id: "n1"}, &api.Node{Id: "n2"},
			svc("quiet", none), svc("chatty", nil), svc("mixed", nil), svc("empty", none),
			task("q1", "quiet", "n1", none), task("q2", "quiet", "n2", none),
			task("c1", "chatty", "n1", nil),
			task("m1", "mixed", "n1", none), task("m2", "mixed", "n2", &api.Driver{Name: "json-file"}),
		} {
			if err := tx.Create(o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b := New(store, nil, nil)
	for _, sel := range []*api.LogSelector{
		{ServiceIds: []string{"quiet"}},
		{TaskIds: []string{"q1"}},
		{ServiceIds: []string{"empty"}},
	} {
		if _, _, err := b.involvedNodes(sel); !errors.Is(err, ErrLogsDisabled) || err.Error() != "configured logging driver does not support reading" {
			t.Errorf("%v: %v, want ErrLogsDisabled", sel, err)
		}
	}
	nodes, warnings, err := b.involvedNodes(&api.LogSelector{ServiceIds: []string{"mixed"}})
	if err != nil || strings.Join(nodes, ",") != "n2" || len(warnings) != 1 || !strings.Contains(warnings[0], "1 tasks keep no logs") {
		t.Errorf("mixed: %v %q %v", nodes, warnings, err)
	}
	nodes, warnings, err = b.involvedNodes(&api.LogSelector{ServiceIds: []string{"chatty"}})
	if err != nil || strings.Join(nodes, ",") != "n1" || len(warnings) != 0 {
		t.Errorf("chatty: %v %q %v", nodes, warnings, err)
	}
}
