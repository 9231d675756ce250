package dockerapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-project/shoal/dockerapi/convert"
	api "github.com/shoal-project/shoal/proto"
)

func cacheTestService(id string, version uint64, image string) *api.Service {
	return &api.Service{Id: id, Meta: &api.Meta{Version: version}, Spec: &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "svc-" + id, Labels: map[string]string{"io.shoal.stack.namespace": "st", "a": "<&>"}},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: image}},
	}}
}

// The cached answer decodes to what encoding the converted services
// directly gives, with and without status; a new version is re-encoded; the
// cache stays bounded.
func TestServiceJSONCache(t *testing.T) {
	var c svcCache
	svcs := []*api.Service{cacheTestService("a", 3, "busybox:1"), cacheTestService("b", 5, "whoami:2")}
	status := func(svc *api.Service) *swarm.ServiceStatus {
		return &swarm.ServiceStatus{RunningTasks: uint64(len(svc.GetId())), DesiredTasks: 2}
	}
	check := func(what string, withStatus bool) {
		t.Helper()
		var st func(*api.Service) *swarm.ServiceStatus
		if withStatus {
			st = status
		}
		var buf bytes.Buffer
		if err := c.writeServices(&buf, svcs, st); err != nil {
			t.Fatal(err)
		}
		var got, want []swarm.Service
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, buf.Bytes())
		}
		for _, svc := range svcs {
			m := convert.ServiceToMoby(svc)
			if withStatus {
				m.ServiceStatus = status(svc)
			}
			want = append(want, m)
		}
		wb, _ := json.Marshal(want)
		_ = json.Unmarshal(wb, &want) // the same round trip (times, nil maps)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
		}
	}
	check("first", false)
	check("cached", false)
	check("cached with status", true)
	svcs[1] = cacheTestService("b", 9, "whoami:3") // a new version
	check("after an update", true)
	var buf bytes.Buffer
	if err := c.writeServices(&buf, svcs, nil); err != nil || !bytes.Contains(buf.Bytes(), []byte("whoami:3")) || bytes.Contains(buf.Bytes(), []byte("whoami:2")) {
		t.Fatalf("stale entry served: %v %s", err, buf.Bytes())
	}
	if err := c.writeServices(&bytes.Buffer{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	for i := range maxCachedServices + 10 {
		if _, err := c.encode(cacheTestService(fmt.Sprint(i), 1, "x")); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.m); n > maxCachedServices {
		t.Fatalf("%d cached services, bound %d", n, maxCachedServices)
	}
}
