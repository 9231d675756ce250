package orchestrator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/manager/internal/storetest"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Tasks of a service that needs nothing from the allocator are created
// PENDING, with the service's endpoint, in the creating transaction; tasks
// of a service on a network are created NEW, for the allocator (which this
// test does not run, so they stay NEW).
func TestTasksThatNeedNoAllocationAreCreatedPending(t *testing.T) {
	store, _ := storetest.New(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := func(id string, networks ...string) *api.Service { return vipService(id, 3, networks...) }
	if err := store.Update(ctx, func(tx *raftstore.Tx) error {
		if err := tx.Create(svc("plain")); err != nil {
			return err
		}
		return tx.Create(svc("networked", "net1"))
	}); err != nil {
		t.Fatal(err)
	}
	o := New(store, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan struct{})
	go func() { defer close(done); _ = o.Run(ctx) }()
	defer func() { cancel(); <-done }()
	states := func(id string) (out []api.TaskState, endpoints int) {
		store.View(func(tx raftstore.ReadTx) {
			for _, task := range tx.TasksByService(id) {
				out = append(out, task.GetStatus().GetState())
				if task.GetEndpoint().GetSpec().GetMode() == api.EndpointSpec_VIP {
					endpoints++
				}
			}
		})
		return out, endpoints
	}
	testutil.EventuallyErr(t, 10*time.Second, 10*time.Millisecond, func() error {
		plain, eps := states("plain")
		networked, _ := states("networked")
		if len(plain) != 3 || len(networked) != 3 {
			return fmt.Errorf("tasks: plain %v, networked %v", plain, networked)
		}
		for _, s := range plain {
			if s != api.TaskState_PENDING {
				return fmt.Errorf("a task that needs no allocation was created %v", s)
			}
		}
		if eps != 3 {
			return fmt.Errorf("%d of the plain tasks have the service's endpoint", eps)
		}
		for _, s := range networked {
			if s != api.TaskState_NEW {
				return fmt.Errorf("a task on a network was created %v, not NEW for the allocator", s)
			}
		}
		return nil
	}, "plain tasks PENDING, networked tasks NEW")
}

// vipService is a replicated VIP-mode service whose endpoint is settled,
// on the given networks.
func vipService(id string, replicas uint64, networks ...string) *api.Service {
	vip := &api.EndpointSpec{Mode: api.EndpointSpec_VIP}
	s := &api.Service{Id: id, SpecVersion: 1, Spec: &api.ServiceSpec{
		Annotations: &api.Annotations{Name: id},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "busybox"}},
		Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: replicas}},
		Endpoint:    vip,
	}, Endpoint: &api.Endpoint{Spec: vip}}
	for _, n := range networks {
		s.Spec.Task.Networks = append(s.Spec.Task.Networks, &api.NetworkAttachmentConfig{Target: n})
	}
	return s
}
