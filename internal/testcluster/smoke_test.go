package testcluster

import (
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

func replicated(name, image string, n uint64) *api.ServiceSpec {
	return &api.ServiceSpec{
		Annotations: &api.Annotations{Name: name},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: image}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: n}},
	}
}

func TestServiceRunsOnAgents(t *testing.T) {
	c := New(t, Options{Managers: 1, Workers: 2})
	c.CreateService(replicated("web", "img:1", 3))
	c.Converge("web", 3, time.Minute)
	t.Logf("cluster time %v, steps %d", c.Clock().Since(c.Clock().Now()), c.Steps())
}
