package commands

import (
	"slices"
	"testing"

	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	api "github.com/shoal-project/shoal/proto"
)

const (
	backendID = "net1abcdefghijklmnopqrstu" // the fixture's network
)

// addFront adds a second network, front, to the fixture and returns its ID.
func addFront(e *env) string {
	e.t.Helper()
	r := e.run("network", "create", "--subnet", "10.0.2.0/24", "front")
	if r.Code != 0 {
		e.t.Fatalf("network create: %s", r.Err)
	}
	return r.Out[:len(r.Out)-1]
}

func attachmentTargets(atts []*api.NetworkAttachmentConfig) []string {
	var out []string
	for _, a := range atts {
		out = append(out, a.GetTarget())
	}
	return out
}

// --network NAME and its long form name=,alias= send the network's ID and
// the aliases; --endpoint-mode dnsrr sets the endpoint mode.
func TestServiceCreateNetworks(t *testing.T) {
	e := newEnv(t)
	front := addFront(e)
	r := e.run("service", "create", "-d", "--name", "shop", "--network", "name=backend,alias=web,alias=w2",
		"--network", "front", "--endpoint-mode", "dnsrr", "nginx:1.27")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Err)
	}
	spec := e.lastRequest("CreateService").(*api.CreateServiceRequest).GetSpec()
	nets := spec.GetTask().GetNetworks()
	if got := attachmentTargets(nets); !slices.Equal(got, []string{backendID, front}) {
		t.Errorf("targets %v, want [%s %s]", got, backendID, front)
	}
	if !slices.Equal(nets[0].GetAliases(), []string{"web", "w2"}) || len(nets[1].GetAliases()) != 0 {
		t.Errorf("aliases %v and %v", nets[0].GetAliases(), nets[1].GetAliases())
	}
	if spec.GetEndpoint().GetMode() != api.EndpointSpec_DNSRR {
		t.Errorf("endpoint mode %v, want DNSRR", spec.GetEndpoint().GetMode())
	}
	e.golden("service_create_network_bad_key", "service", "create", "-d", "--network", "name=backend,aliases=web", "nginx")
	e.golden("service_create_network_no_name", "service", "create", "-d", "--network", "alias=web", "nginx")
	e.golden("service_create_bad_endpoint_mode", "service", "create", "-d", "--endpoint-mode", "round-robin", "nginx")
}

// --network-add adds (or replaces, with new aliases) an attachment,
// --network-rm removes one by name or ID, --endpoint-mode switches modes.
func TestServiceUpdateNetworks(t *testing.T) {
	e := newEnv(t)
	front := addFront(e)
	e.srv.Edit(func(f *daemontest.Fixture) {
		f.Service("web").Spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: backendID}}
	})
	update := func(args ...string) *api.ServiceSpec {
		t.Helper()
		r := e.run(append(append([]string{"service", "update", "-d"}, args...), "web")...)
		if r.Code != 0 {
			t.Fatalf("service update %v: exit %d: %s", args, r.Code, r.Err)
		}
		return e.lastRequest("UpdateService").(*api.UpdateServiceRequest).GetSpec()
	}
	spec := update("--network-add", "name=front,alias=www", "--endpoint-mode", "vip")
	if got := attachmentTargets(spec.GetTask().GetNetworks()); !slices.Equal(got, []string{backendID, front}) {
		t.Errorf("after --network-add: %v", got)
	}
	if a := spec.GetTask().GetNetworks()[1].GetAliases(); !slices.Equal(a, []string{"www"}) {
		t.Errorf("front aliases %v", a)
	}
	if spec.GetEndpoint().GetMode() != api.EndpointSpec_VIP {
		t.Errorf("endpoint mode %v", spec.GetEndpoint().GetMode())
	}
	if p := spec.GetEndpoint().GetPorts(); len(p) != 1 || p[0].GetTargetPort() != 80 {
		t.Errorf("--endpoint-mode lost the ports: %v", p)
	}
	// The server refuses dnsrr with ports published through the ingress.
	e.golden("service_update_dnsrr_ingress", "service", "update", "-d", "--endpoint-mode", "dnsrr", "web")
	spec = update("--network-rm", "backend", "--publish-rm", "80", "--endpoint-mode", "dnsrr")
	if got := attachmentTargets(spec.GetTask().GetNetworks()); !slices.Equal(got, []string{front}) {
		t.Errorf("after --network-rm backend: %v", got)
	}
	if spec.GetEndpoint().GetMode() != api.EndpointSpec_DNSRR {
		t.Errorf("endpoint mode %v", spec.GetEndpoint().GetMode())
	}
	spec = update("--network-rm", front)
	if n := spec.GetTask().GetNetworks(); len(n) != 0 {
		t.Errorf("after --network-rm ID: %v", attachmentTargets(n))
	}
	e.golden("service_update_network_add_missing", "service", "update", "-d", "--network-add", "nowhere", "web")
}

// allocateWeb gives web what the allocator would: a VIP on backend and
// overlay addresses for its running tasks.
func allocateWeb(e *env) {
	e.srv.Edit(func(f *daemontest.Fixture) {
		web := f.Service("web")
		web.Spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: backendID, Aliases: []string{"www"}}}
		web.Endpoint = &api.Endpoint{Spec: web.Spec.Endpoint, Ports: web.Spec.Endpoint.Ports,
			VirtualIps: []*api.Endpoint_VirtualIP{{NetworkId: backendID, Addr: "10.0.1.2/24"}}}
		f.Task("p1x8kq2m0b7d9sx0o1i7y3l2a").Networks = []*api.NetworkAttachment{{NetworkId: backendID, Addresses: []string{"10.0.1.3/24"}, Mac: "02:42:0a:00:01:03"}}
		f.Task("p1x8kq2m0b7d9sx0o1i7y3l2a").Status.Container = &api.ContainerStatus{Addresses: []string{"172.18.0.5/16"}}
		f.Task("a8w7b1c0d4e6f9g2h5j3k7m1n").Networks = []*api.NetworkAttachment{
			{NetworkId: backendID, Addresses: []string{"10.0.1.4/24"}}, {NetworkId: "net2", Addresses: []string{"10.0.2.7/24"}}}
		// A task on no overlay shows its node-local address.
		f.Task("k3c9w0y4r6t2jg9mq2u7bd5e1").Status.Container = &api.ContainerStatus{Addresses: []string{"172.18.0.9/16"}}
	})
}

func TestServiceNetworkViews(t *testing.T) {
	e := newEnv(t)
	allocateWeb(e)
	e.golden("service_ps_addresses", "service", "ps", "--format", "{{.Name}} {{.Addresses}}", "web")
	e.golden("service_ps_addresses_json", "service", "ps", "-f", "desired-state=running", "--format", "{{json .Addresses}}", "web")
	e.golden("service_inspect_vips", "service", "inspect", "-f", "{{json .Endpoint.VirtualIPs}} {{range .Endpoint.VirtualIPs}}{{.NetworkID}}={{.Addr}}{{end}}", "web")
	e.golden("service_inspect_pretty_networks", "service", "inspect", "--pretty", "web")
}
