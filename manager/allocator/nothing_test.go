package allocator

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/manager/internal/storetest"
	"github.com/shoal-project/shoal/manager/reconcile"
	api "github.com/shoal-project/shoal/proto"
)

// For every service NothingToAllocate accepts, the task Pending makes is
// the one the loop makes of the NEW task (state, message, endpoint, no
// attachments), and the loop writes nothing else; every service it refuses
// is one the loop does more for (a service write or attachments), so the
// orchestrator's shortcut covers no case the loop would treat otherwise.
func TestNothingToAllocateMatchesTheLoop(t *testing.T) {
	vip := &api.EndpointSpec{Mode: api.EndpointSpec_VIP}
	dnsrr := &api.EndpointSpec{Mode: api.EndpointSpec_DNSRR}
	hostPort := &api.EndpointSpec{Mode: api.EndpointSpec_VIP, Ports: []*api.PortConfig{{TargetPort: 80, PublishedPort: 8080, PublishMode: api.PortConfig_HOST}}}
	ingressPort := &api.EndpointSpec{Mode: api.EndpointSpec_VIP, Ports: []*api.PortConfig{{TargetPort: 80, PublishedPort: 8080, PublishMode: api.PortConfig_INGRESS}}}
	cases := []struct {
		name     string
		spec     *api.EndpointSpec
		endpoint *api.Endpoint
		networks []*api.NetworkAttachmentConfig
		want     bool
	}{
		{name: "no endpoint at all", want: true},
		{name: "VIP mode, endpoint made", spec: vip, endpoint: &api.Endpoint{Spec: proto.Clone(vip).(*api.EndpointSpec)}, want: true},
		{name: "DNSRR mode, endpoint made", spec: dnsrr, endpoint: &api.Endpoint{Spec: proto.Clone(dnsrr).(*api.EndpointSpec)}, want: true},
		{name: "endpoint not made yet", spec: vip},
		{name: "endpoint made for another spec", spec: dnsrr, endpoint: &api.Endpoint{Spec: proto.Clone(vip).(*api.EndpointSpec)}},
		{name: "a VIP left from a network the spec dropped", spec: vip, endpoint: &api.Endpoint{Spec: proto.Clone(vip).(*api.EndpointSpec),
			VirtualIps: []*api.Endpoint_VirtualIP{{NetworkId: "gone", Addr: "10.0.9.2/24"}}}},
		{name: "a host-mode port, allocated", spec: hostPort, endpoint: &api.Endpoint{Spec: proto.Clone(hostPort).(*api.EndpointSpec), Ports: hostPort.Ports}, want: true},
		{name: "a host-mode port, not allocated yet", spec: hostPort, endpoint: &api.Endpoint{Spec: proto.Clone(vip).(*api.EndpointSpec)}},
		{name: "an ingress port", spec: ingressPort, endpoint: &api.Endpoint{Spec: proto.Clone(ingressPort).(*api.EndpointSpec), Ports: ingressPort.Ports}},
		{name: "a network", spec: vip, endpoint: &api.Endpoint{Spec: proto.Clone(vip).(*api.EndpointSpec)},
			networks: []*api.NetworkAttachmentConfig{{Target: "no-such-network"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			svc := &api.Service{Id: "s1", Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: "web"},
				Task: &api.TaskSpec{Networks: c.networks}, Endpoint: c.spec}, Endpoint: c.endpoint}
			if got := NothingToAllocate(svc); got != c.want {
				t.Fatalf("NothingToAllocate = %v, want %v", got, c.want)
			}
			created := timestamppb.New(time.Unix(1000, 0))
			newTask := &api.Task{Id: "t1", ServiceId: "s1", Spec: svc.Spec.Task, DesiredState: api.TaskState_RUNNING,
				Status: &api.TaskStatus{State: api.TaskState_NEW, Timestamp: created, Message: "created"}}
			short := proto.Clone(newTask).(*api.Task)
			if ok := Pending(short, svc, created); ok != c.want {
				t.Fatalf("Pending = %v, want %v", ok, c.want)
			}

			store, prop := storetest.New(nil)
			storetest.Seed(t, store, svc, newTask)
			var out reconcile.Outcome
			handler{New(store, nil, quiet())}.Reconcile(t.Context(), []string{preService + "s1", preTask + "t1"}, &out)
			if err := out.Err(preTask + "t1"); err != nil {
				t.Fatal(err)
			}
			var svcWritten bool
			for _, tx := range prop.Transactions()[1:] {
				for _, o := range storetest.Objects(tx) {
					if _, ok := o.(*api.Service); ok {
						svcWritten = true
					}
				}
			}
			loop := storetest.Task(store, "t1")
			if !c.want {
				if !svcWritten && len(loop.GetNetworks()) == 0 && loop.GetStatus().GetState() != api.TaskState_NEW {
					t.Fatal("the loop only set PENDING and the endpoint: NothingToAllocate could have accepted this service")
				}
				if short.GetStatus().GetState() != api.TaskState_NEW {
					t.Fatal("Pending changed a task it refused")
				}
				return
			}
			if svcWritten {
				t.Fatal("the loop wrote the service of a task that needed nothing")
			}
			if loop.GetStatus().GetState() != api.TaskState_PENDING || short.GetStatus().GetState() != api.TaskState_PENDING ||
				loop.GetStatus().GetMessage() != short.GetStatus().GetMessage() ||
				!proto.Equal(loop.GetEndpoint(), short.GetEndpoint()) || len(loop.GetNetworks())+len(short.GetNetworks()) != 0 {
				t.Fatalf("the loop made\n  %v\nthe shortcut\n  %v", loop, short)
			}
		})
	}
}

// The orchestrator calls Pending for every task it creates: one that is
// not NEW, or of another service, is left alone.
func TestPendingLeavesOtherTasksAlone(t *testing.T) {
	svc := &api.Service{Id: "s1", Spec: &api.ServiceSpec{Task: &api.TaskSpec{}}}
	for _, tk := range []*api.Task{
		{Id: "t1", ServiceId: "s1", Status: &api.TaskStatus{State: api.TaskState_RUNNING}},
		{Id: "t2", ServiceId: "s2", Status: &api.TaskStatus{State: api.TaskState_NEW}},
		{Id: "t3", ServiceId: "s1", Spec: &api.TaskSpec{Networks: []*api.NetworkAttachmentConfig{{Target: "n"}}}, Status: &api.TaskStatus{State: api.TaskState_NEW}},
	} {
		before := proto.Clone(tk)
		if Pending(tk, svc, timestamppb.Now()) || !proto.Equal(before, tk) {
			t.Errorf("Pending changed %s", tk.Id)
		}
	}
}
