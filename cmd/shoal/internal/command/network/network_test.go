package network_test

import (
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/shoal-project/shoal/cmd/shoal/internal/commandtest"
	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	"github.com/shoal-project/shoal/cmd/shoal/internal/golden"
	api "github.com/shoal-project/shoal/proto"
)

func TestNetworkCreate(t *testing.T) {
	e := commandtest.New(t, time.Hour)
	e.Golden("network_create", "network", "create", "-d", "overlay", "--attachable", "--subnet", "10.20.0.0/24", "--subnet", "10.21.0.0/24",
		"--gateway", "10.21.0.1", "--ip-range", "10.20.0.128/25", "--label", "team=web", "--opt", "encrypted", "--opt", "com.example.mtu=1400", "front")
	req := e.Srv.Requests("CreateNetwork")[0].(*api.CreateNetworkRequest)
	raw, _ := protojson.Marshal(req)
	var v any
	if err := json.Unmarshal(raw, &v); err != nil { // protojson's spacing varies on purpose
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	golden.Assert(t, string(b)+"\n", "network_create.request.json")
	e.Golden("network_create_ingress", "network", "create", "--ingress", "--internal", "mesh")
	e.Golden("network_create_bridge", "network", "create", "-d", "bridge", "x")
	e.Golden("network_create_gateway_outside", "network", "create", "--subnet", "10.0.0.0/24", "--gateway", "10.1.0.1", "x")
	e.Golden("network_create_two_gateways", "network", "create", "--subnet", "10.0.0.0/24", "--gateway", "10.0.0.1", "--gateway", "10.0.0.2", "x")
	e.Golden("network_create_bad_subnet", "network", "create", "--subnet", "10.0.0.0", "x")
	e.Golden("network_create_exists", "network", "create", "front") // the first, encrypted, was refused: this one is created
	e.Golden("network_create_exists_twice", "network", "create", "front")
	e.Golden("network_create_mtu", "network", "create", "-o", "com.docker.network.driver.mtu=1400", "--internal", "--subnet", "10.30.0.0/24", "--ip-range", "10.30.0.64/26", "--gateway", "10.30.0.1", "mtu")
	req = e.Srv.Requests("CreateNetwork")[len(e.Srv.Requests("CreateNetwork"))-1].(*api.CreateNetworkRequest)
	if got := req.GetSpec().GetDriver().GetOptions()["com.docker.network.driver.mtu"]; got != "1400" || !req.GetSpec().GetInternal() ||
		req.GetSpec().GetIpam()[0].GetRange() != "10.30.0.64/26" || req.GetSpec().GetIpam()[0].GetGateway() != "10.30.0.1" {
		t.Errorf("network create -o mtu: sent %v", req.GetSpec())
	}
	e.Golden("network_create_bad_mtu", "network", "create", "-o", "com.docker.network.driver.mtu=big", "x")
	e.Golden("network_create_small_mtu", "network", "create", "--opt", "com.docker.network.driver.mtu=60", "x")
	e.Golden("network_create_scope", "network", "create", "--scope", "swarm", "-d", "overlay", "scoped")
	e.Golden("network_create_bad_scope", "network", "create", "--scope", "local", "x")
	e.Golden("network_create_macvlan", "network", "create", "--driver", "macvlan", "x")
}

func TestNetworkLs(t *testing.T) {
	e := commandtest.New(t, time.Hour)
	e.Run("network", "create", "--label", "team=web", "front")
	e.Run("network", "create", "back")
	e.Golden("network_ls", "network", "ls")
	e.Golden("network_ls_notrunc", "network", "ls", "--no-trunc")
	e.Golden("network_ls_quiet", "network", "ls", "-q", "-f", "name=ack")
	e.Golden("network_ls_label", "network", "ls", "-f", "label=team=web", "--format", "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}}")
	e.Golden("network_ls_json", "network", "ls", "--format", "json", "-f", "name=front")
	e.Golden("network_ls_bad_filter", "network", "ls", "-f", "colour=red")
	e.Srv.Edit(func(f *daemontest.Fixture) {
		for _, n := range f.Networks {
			if n.GetSpec().GetAnnotations().GetName() == "front" {
				f.Service("web").Spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: n.GetId()}}
			}
		}
	})
	e.Golden("network_ls_dangling", "network", "ls", "-f", "dangling=true", "--format", "{{.Name}}")
	e.Golden("network_ls_not_dangling", "network", "ls", "-f", "dangling=0", "--format", "{{.Name}}")
	e.Golden("network_ls_bad_dangling", "network", "ls", "-f", "dangling=maybe")
}

func TestNetworkInspectRm(t *testing.T) {
	e := commandtest.New(t, time.Hour)
	e.Golden("network_inspect_bare", "network", "inspect", "backend", "nope")
	allocate(e)
	e.Golden("network_inspect", "network", "inspect", "backend")
	e.Golden("network_inspect_verbose", "network", "inspect", "-v", "backend")
	e.Golden("network_inspect_format", "network", "inspect", "-f", "{{.ID}} {{.Name}} {{.Scope}} {{.Driver}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", "backend")
	e.Golden("network_inspect_format_raw", "network", "inspect", "-f", "{{.Id}} {{.IPAM.Driver}}", "backend") // Docker's JSON names work too
	e.Golden("network_inspect_format_json", "network", "inspect", "-f", "{{json .Options}} {{len .Containers}} {{json .Peers}}", "backend")
	e.Golden("network_inspect_verbose_format", "network", "inspect", "-v", "-f", "{{len .Containers}} {{json .Peers}} {{range $k, $v := .Services}}{{$k}} {{$v.VIP}}{{end}}", "backend")
	e.Golden("network_inspect_json", "network", "inspect", "-f", "json", "backend")
	e.Golden("network_inspect_format_bad_field", "network", "inspect", "-f", "{{.Spec.Name}}", "backend")
	e.Golden("network_rm", "network", "rm", "backend", "nope")
}

// allocate gives the fixture what the allocator would: backend's subnet,
// MTU and options, web's VIP, addresses for web's running tasks (and a
// shut-down one, not shown), node1's data-path address and node10's own
// attachment.
func allocate(e *commandtest.Env) {
	e.Srv.Edit(func(f *daemontest.Fixture) {
		n := f.Networks[0]
		n.Ipam = []*api.IPAMConfig{{Subnet: "10.0.1.0/24", Gateway: "10.0.1.1"}}
		n.Mtu = 1400
		n.Spec.Driver.Options = map[string]string{"com.docker.network.driver.mtu": "1400"}
		n.Spec.Annotations.Labels = map[string]string{"team": "web"}
		web := f.Service("web")
		web.Spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: n.GetId(), Aliases: []string{"www"}}}
		web.Endpoint = &api.Endpoint{Spec: &api.EndpointSpec{Mode: api.EndpointSpec_VIP},
			Ports:      web.Spec.Endpoint.Ports,
			VirtualIps: []*api.Endpoint_VirtualIP{{NetworkId: n.GetId(), Addr: "10.0.1.2/24"}}}
		att := func(addr, mac string) []*api.NetworkAttachment {
			return []*api.NetworkAttachment{{NetworkId: n.GetId(), NetworkName: "backend", Addresses: []string{addr}, Aliases: []string{"www"},
				Mac: mac, Vni: 4096, Subnet: "10.0.1.0/24", Gateway: "10.0.1.1", Mtu: 1400}}
		}
		f.Task("p1x8kq2m0b7d9sx0o1i7y3l2a").Networks = att("10.0.1.3/24", "02:42:0a:00:01:03")
		f.Task("p1x8kq2m0b7d9sx0o1i7y3l2a").Status.Container = &api.ContainerStatus{ContainerId: "c0ffee0123456789c0ffee0123456789c0ffee0123456789c0ffee0123456789"}
		f.Task("a8w7b1c0d4e6f9g2h5j3k7m1n").Networks = att("10.0.1.4/24", "02:42:0a:00:01:04")
		f.Task("k3c9w0y4r6t2jg9mq2u7bd5e1").Networks = att("10.0.1.9/24", "02:42:0a:00:01:09")
		for _, node := range f.Nodes {
			switch node.GetId() {
			case daemontest.Node1:
				node.Description.DataPathAddr = "192.168.50.1"
			case daemontest.Node10:
				node.Attachments = att("10.0.1.10/24", "02:42:0a:00:01:0a")
			}
		}
	})
}

func TestNetworkPrune(t *testing.T) {
	e := commandtest.New(t, time.Hour)
	e.Run("network", "create", "unused")
	e.Run("network", "create", "used")
	e.Run("network", "create", "--ingress", "ingress")
	e.Srv.Edit(func(f *daemontest.Fixture) {
		for _, n := range f.Networks {
			if n.GetSpec().GetAnnotations().GetName() == "used" {
				f.Service("web").Spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: n.GetId()}}
			}
		}
	})
	e.Stdin = "n\n"
	e.Golden("network_prune_cancelled", "network", "prune")
	e.Stdin = "y\n"
	e.Golden("network_prune", "network", "prune")
	e.Golden("network_prune_nothing", "network", "prune", "-f")
}
