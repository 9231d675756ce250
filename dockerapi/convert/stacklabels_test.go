package convert

import (
	"maps"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/swarm"

	api "github.com/shoal-project/shoal/proto"
)

// TestStackLabels: Docker's stack labels are stored under shoal's keys and
// shown under Docker's, on every object and in task labels; a key whose
// other form is also set stays as it is; label filters follow.
func TestStackLabels(t *testing.T) {
	docker := map[string]string{"com.docker.stack.namespace": "app", "com.docker.stack.image": "busybox", "other": "x"}
	shoal := map[string]string{"io.shoal.stack.namespace": "app", "io.shoal.stack.image": "busybox", "other": "x"}
	if got := StackLabelsFromMoby(docker); !maps.Equal(got, shoal) {
		t.Errorf("from Docker: %v, want %v", got, shoal)
	}
	if got := StackLabelsToMoby(shoal); !maps.Equal(got, docker) {
		t.Errorf("to Docker: %v, want %v", got, docker)
	}
	both := map[string]string{"com.docker.stack.namespace": "a", "io.shoal.stack.namespace": "b"}
	if got := StackLabelsToMoby(both); !maps.Equal(got, both) {
		t.Errorf("both forms set, to Docker: %v", got)
	}
	if got := StackLabelsFromMoby(both); !maps.Equal(got, both) {
		t.Errorf("both forms set, from Docker: %v", got)
	}
	if StackLabelsFromMoby(nil) != nil || StackLabelsFromMoby(map[string]string{}) != nil || StackLabelsToMoby(nil) != nil {
		t.Error("empty labels do not stay empty")
	}
	if got := LabelFiltersFromMoby([]string{"com.docker.stack.namespace=app", "com.docker.stack.namespace", "x=com.docker.stack.y"}); !slices.Equal(got,
		[]string{"io.shoal.stack.namespace=app", "io.shoal.stack.namespace", "x=com.docker.stack.y"}) {
		t.Errorf("label filters: %v", got)
	}

	// What docker stack deploy sends is stored under shoal's keys and read
	// back as sent.
	spec := swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "app_web", Labels: docker},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "busybox", Labels: map[string]string{"com.docker.stack.namespace": "app"}}}}
	s, err := ServiceSpecFromMoby(&spec)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(s.GetAnnotations().GetLabels(), shoal) || s.GetTask().GetContainer().GetLabels()["io.shoal.stack.namespace"] != "app" {
		t.Errorf("stored labels: %v, container %v", s.GetAnnotations().GetLabels(), s.GetTask().GetContainer().GetLabels())
	}
	back := ServiceSpecToMoby(s)
	if !maps.Equal(back.Labels, docker) || !maps.Equal(back.TaskTemplate.ContainerSpec.Labels, spec.TaskTemplate.ContainerSpec.Labels) {
		t.Errorf("read back: %v, container %v", back.Labels, back.TaskTemplate.ContainerSpec.Labels)
	}
	task := TaskToMoby(&api.Task{ServiceAnnotations: &api.Annotations{Name: "app_web", Labels: shoal}}, func(string) *api.Network { return nil })
	if task.Labels["com.docker.stack.namespace"] != "app" {
		t.Errorf("task labels: %v", task.Labels)
	}
	sec, err := SecretSpecFromMoby(swarm.SecretSpec{Annotations: swarm.Annotations{Name: "app_s", Labels: docker}, Data: []byte("x")})
	if err != nil || sec.GetAnnotations().GetLabels()["io.shoal.stack.namespace"] != "app" {
		t.Errorf("secret: %v %v", sec, err)
	}
}
