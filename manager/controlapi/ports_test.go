package controlapi

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

func port(published, target uint32, opts ...func(*api.PortConfig)) *api.PortConfig {
	p := &api.PortConfig{PublishedPort: published, TargetPort: target}
	for _, o := range opts {
		o(p)
	}
	return p
}

func udp(p *api.PortConfig)  { p.Protocol = api.PortConfig_UDP }
func host(p *api.PortConfig) { p.PublishMode = api.PortConfig_HOST }

func portSpec(name string, ports ...*api.PortConfig) *api.ServiceSpec {
	spec := validSpec()
	spec.Annotations.Name = name
	spec.Endpoint = &api.EndpointSpec{Ports: ports}
	return spec
}

func createPorts(s *Server, name string, ports ...*api.PortConfig) (*api.Service, error) {
	resp, err := s.CreateService(context.Background(), &api.CreateServiceRequest{Spec: portSpec(name, ports...)})
	return resp.GetService(), err
}

func mustCreatePorts(t *testing.T, s *Server, name string, ports ...*api.PortConfig) *api.Service {
	t.Helper()
	svc, err := createPorts(s, name, ports...)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// published renders a service's allocated ports ("8080:80/tcp/ingress").
func published(svc *api.Service) []string {
	var out []string
	for _, p := range svc.GetEndpoint().GetPorts() {
		out = append(out, fmt.Sprintf("%d:%d/%s/%s", p.PublishedPort, p.TargetPort, lowerEnum(p.Protocol.String()), lowerEnum(p.PublishMode.String())))
	}
	return out
}

func lowerEnum(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func wantPorts(t *testing.T, svc *api.Service, want ...string) {
	t.Helper()
	if got := published(svc); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s publishes %v, want %v", serviceName(svc), got, want)
	}
}

func serviceCount(s *Server) int {
	n := 0
	s.store.View(func(tx raftstore.ReadTx) { n = len(tx.Services()) })
	return n
}

func getSvc(t *testing.T, s *Server, name string) *api.Service {
	t.Helper()
	svc, err := s.lookupService(name)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// A published port another service holds is refused, naming it: ingress
// against ingress, and a host-mode port against another's ingress port
// (and the reverse); host against host is the scheduler's business.
func TestPortConflictsNameTheService(t *testing.T) {
	s, _ := newTestServer(t)
	mustCreatePorts(t, s, "web", port(8080, 80), port(9000, 90, host))
	cases := []struct {
		name string
		port *api.PortConfig
		msg  string // "" accepted
	}{
		{"ingress-ingress", port(8080, 81), "port 8080/tcp is already published by service web: publish another port, or remove it from web first"},
		{"host-on-ingress", port(8080, 81, host), "port 8080/tcp is already published by service web: publish another port, or remove it from web first"},
		{"ingress-on-host", port(9000, 91), "port 9000/tcp is already published by service web (host mode); an ingress port is served on every node: publish another port, or remove it from web first"},
		{"udp-same-number", port(8080, 81, udp), ""},
		{"host-host", port(9000, 91, host), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := serviceCount(s)
			_, err := createPorts(s, "x-"+tc.name, tc.port)
			if tc.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantError(t, err, errdefs.ErrInvalidArgument, tc.msg)
			if serviceCount(s) != before {
				t.Fatal("a refused create left a service")
			}
		})
	}
}

// Bad ports are refused with nothing created.
func TestPortValidation(t *testing.T) {
	s, _ := newTestServer(t)
	dnsrr := portSpec("d", port(8080, 80))
	dnsrr.Endpoint.Mode = api.EndpointSpec_DNSRR
	masqHost := port(8081, 80, host)
	masqHost.Masquerade = true
	cases := []struct {
		name string
		spec *api.ServiceSpec
		msg  string
	}{
		{"target 0", portSpec("a", port(8080, 0)), "invalid target port 0: must be 1-65535"},
		{"target high", portSpec("a", port(8080, 70000)), "invalid target port 70000: must be 1-65535"},
		{"published high", portSpec("a", port(70000, 80)), "invalid published port 70000: must be 1-65535"},
		{"sctp", portSpec("a", port(8080, 80, func(p *api.PortConfig) { p.Protocol = api.PortConfig_SCTP })),
			"port 8080->80/sctp: sctp is not supported by the routing mesh; publish tcp or udp"},
		{"unknown protocol", portSpec("a", port(8080, 80, func(p *api.PortConfig) { p.Protocol = 7 })), "port 8080->80: unknown protocol 7: use tcp or udp"},
		{"unknown mode", portSpec("a", port(8080, 80, func(p *api.PortConfig) { p.PublishMode = 5 })), "port 8080->80: unknown publish mode 5: use ingress or host"},
		{"twice", portSpec("a", port(8080, 80), port(8080, 81, host)), "published port 8080/tcp is used twice"},
		{"dnsrr", dnsrr, "port published with ingress mode can't be used with dnsrr mode"},
		{"masquerade host", portSpec("a", masqHost), "port 8081->80/tcp: masquerade applies to ingress-mode ports only: remove masquerade or publish with mode=ingress"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateService(context.Background(), &api.CreateServiceRequest{Spec: tc.spec})
			wantError(t, err, errdefs.ErrInvalidArgument, tc.msg)
			if serviceCount(s) != 0 {
				t.Fatal("a refused create left a service")
			}
		})
	}
}

// Ingress ports published as 0 get the lowest free port of 30000-32767
// (per protocol); host-mode 0 stays 0; a freed port is reused.
func TestDynamicPorts(t *testing.T) {
	s, _ := newTestServer(t)
	a := mustCreatePorts(t, s, "a", port(0, 80), port(30001, 81), port(0, 82), port(0, 53, udp), port(0, 90, host))
	wantPorts(t, a, "30000:80/tcp/ingress", "30001:81/tcp/ingress", "30002:82/tcp/ingress", "30000:53/udp/ingress", "0:90/tcp/host")
	b := mustCreatePorts(t, s, "b", port(0, 80))
	wantPorts(t, b, "30003:80/tcp/ingress")
	if _, err := s.RemoveService(context.Background(), &api.RemoveServiceRequest{ServiceId: "a"}); err != nil {
		t.Fatal(err)
	}
	c := mustCreatePorts(t, s, "c", port(0, 80))
	wantPorts(t, c, "30000:80/tcp/ingress")
	// The spec keeps 0: inspect shows what was asked and what was given.
	if c.Spec.Endpoint.Ports[0].PublishedPort != 0 {
		t.Fatal("the spec was changed")
	}
}

// Many concurrent creates of the same port: one wins, the others are
// refused naming it; concurrent dynamic ports are all different.
func TestConcurrentCreatesCannotShareAPort(t *testing.T) {
	s, p := newTestServer(t)
	// Commits take a while, as in raft: the writes' builds overlap.
	s.store.SetProposer(slowProposer{p})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = createPorts(s, fmt.Sprintf("s%d", i), port(8080, 80))
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errdefs.IsInvalidArgument(err) {
			t.Fatalf("unexpected error %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d creates got port 8080", ok)
	}
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = createPorts(s, fmt.Sprintf("d%d", i), port(0, 80))
		}()
	}
	wg.Wait()
	seen := map[uint32]bool{}
	s.store.View(func(tx raftstore.ReadTx) {
		for _, svc := range tx.Services() {
			for _, p := range svc.GetEndpoint().GetPorts() {
				if seen[p.PublishedPort] {
					t.Errorf("port %d given twice", p.PublishedPort)
				}
				seen[p.PublishedPort] = true
			}
		}
	})
	if len(seen) != 9 {
		t.Fatalf("ports %v", seen)
	}
}

type slowProposer struct{ p *racingProposer }

func (s slowProposer) Propose(ctx context.Context, cmd raftstore.Command, payload []byte) error {
	time.Sleep(5 * time.Millisecond)
	return s.p.Propose(ctx, cmd, payload)
}

func updatePorts(s *Server, name string, ports ...*api.PortConfig) (*api.Service, error) {
	resp, err := s.UpdateService(context.Background(), &api.UpdateServiceRequest{ServiceId: name, Spec: portSpec(name, ports...)})
	return resp.GetService(), err
}

// Ports change with the spec in one write: a refused update changes
// neither; an accepted one frees the old ports at once; a dynamic port is
// kept across an update that keeps its port spec.
func TestUpdateChangesPortsAtomically(t *testing.T) {
	s, _ := newTestServer(t)
	mustCreatePorts(t, s, "web", port(8080, 80), port(0, 81))
	mustCreatePorts(t, s, "api", port(9090, 80))
	before := getSvc(t, s, "web")
	_, err := updatePorts(s, "web", port(8080, 80), port(0, 81), port(9090, 82))
	wantError(t, err, errdefs.ErrInvalidArgument, "port 9090/tcp is already published by service api: publish another port, or remove it from api first")
	if after := getSvc(t, s, "web"); !proto.Equal(before, after) {
		t.Fatalf("a refused update changed the service:\n%v\n%v", before, after)
	}
	web, err := updatePorts(s, "web", port(8081, 80), port(0, 81))
	if err != nil {
		t.Fatal(err)
	}
	wantPorts(t, web, "8081:80/tcp/ingress", "30000:81/tcp/ingress")
	if web.Endpoint.Spec == nil || !proto.Equal(web.Endpoint.Spec, web.Spec.Endpoint) {
		t.Fatal("endpoint spec not the spec's")
	}
	mustCreatePorts(t, s, "other", port(8080, 80)) // freed by the update
	// An unrelated change keeps the dynamic port, a new target gets a new one.
	spec := portSpec("web", port(8081, 80), port(0, 81))
	spec.Task.Container.Image = "127.0.0.1:5000/shoal/whoami:v2"
	resp, err := s.UpdateService(context.Background(), &api.UpdateServiceRequest{ServiceId: "web", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	wantPorts(t, resp.Service, "8081:80/tcp/ingress", "30000:81/tcp/ingress")
	web, err = updatePorts(s, "web", port(8081, 80), port(0, 82))
	if err != nil {
		t.Fatal(err)
	}
	wantPorts(t, web, "8081:80/tcp/ingress", "30000:82/tcp/ingress")
}

// A rollback restores the previous spec's ports, or is refused when
// another service took one in between.
func TestRollbackRestoresPorts(t *testing.T) {
	s, _ := newTestServer(t)
	mustCreatePorts(t, s, "web", port(8080, 80))
	if _, err := updatePorts(s, "web", port(9090, 80)); err != nil {
		t.Fatal(err)
	}
	rollback := func() (*api.Service, error) {
		resp, err := s.UpdateService(context.Background(), &api.UpdateServiceRequest{ServiceId: "web", Rollback: api.UpdateServiceRequest_PREVIOUS})
		return resp.GetService(), err
	}
	web, err := rollback()
	if err != nil {
		t.Fatal(err)
	}
	wantPorts(t, web, "8080:80/tcp/ingress")
	mustCreatePorts(t, s, "other", port(9090, 80)) // freed by the rollback
	before := getSvc(t, s, "web")
	_, err = rollback() // back to 9090: taken now
	wantError(t, err, errdefs.ErrInvalidArgument, "port 9090/tcp is already published by service other: publish another port, or remove it from other first")
	if after := getSvc(t, s, "web"); !proto.Equal(before, after) {
		t.Fatal("a refused rollback changed the service")
	}
}

// The ingress network cannot be removed while a service publishes an
// ingress port; otherwise it can, and `network create --ingress` makes
// another.
func TestIngressNetworkRemoval(t *testing.T) {
	s, _ := newTestServer(t)
	resp, err := s.CreateNetwork(context.Background(), &api.CreateNetworkRequest{Spec: &api.NetworkSpec{
		Annotations: &api.Annotations{Name: "ingress"}, Ingress: true}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Network.Ipam[0].Subnet; got != "10.0.0.0/24" || resp.Network.Vni != 4096 {
		t.Fatalf("ingress %s vni %d", got, resp.Network.Vni)
	}
	mustCreatePorts(t, s, "web", port(8080, 80))
	mustCreatePorts(t, s, "hostonly", port(8081, 80, host))
	_, err = s.RemoveNetwork(context.Background(), &api.RemoveNetworkRequest{NetworkId: "ingress"})
	wantError(t, err, errdefs.ErrFailedPrecondition, "network ingress is the ingress network and service web publishes ports through it: remove those ports first (`shoal service update --publish-rm PORT SERVICE`) or the services")
	if _, err := updatePorts(s, "web", port(8080, 80, host)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveNetwork(context.Background(), &api.RemoveNetworkRequest{NetworkId: "ingress"}); err != nil {
		t.Fatal(err)
	}
	resp, err = s.CreateNetwork(context.Background(), &api.CreateNetworkRequest{Spec: &api.NetworkSpec{
		Annotations: &api.Annotations{Name: "mesh"}, Ingress: true, Ipam: []*api.IPAMConfig{{Subnet: "10.99.0.0/24"}}}})
	if err != nil || !resp.Network.Spec.Ingress {
		t.Fatalf("recreate: %v", err)
	}
	names := []string{}
	out, _ := s.ListNetworks(context.Background(), &api.ListNetworksRequest{})
	for _, n := range out.Networks {
		names = append(names, networkName(n))
	}
	sort.Strings(names)
	if fmt.Sprint(names) != "[mesh]" {
		t.Fatalf("networks %v", names)
	}
}

// An update that leaves the endpoint alone does not reallocate ports: a
// service whose endpoint the allocator has yet to fix (a rollback by the
// orchestrator onto a port taken since) can still be scaled.
func TestUpdateWithoutEndpointChangeKeepsPorts(t *testing.T) {
	s, _ := newTestServer(t)
	mustCreatePorts(t, s, "web", port(8080, 80))
	mustCreatePorts(t, s, "other", port(9090, 80))
	err := s.store.Update(context.Background(), func(tx *raftstore.Tx) error {
		web := proto.Clone(tx.ServiceByName("web")).(*api.Service)
		web.Spec.Endpoint.Ports[0].PublishedPort = 9090 // as a rollback would
		return tx.Update(web)
	})
	if err != nil {
		t.Fatal(err)
	}
	spec := proto.Clone(getSvc(t, s, "web").Spec).(*api.ServiceSpec)
	spec.GetReplicated().Replicas = 5
	resp, err := s.UpdateService(context.Background(), &api.UpdateServiceRequest{ServiceId: "web", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	wantPorts(t, resp.Service, "8080:80/tcp/ingress")
}

// A service whose tasks, VIP and nodes cannot all get an ingress address
// is refused, with the way out.
func TestIngressCapacity(t *testing.T) {
	s, _ := newTestServer(t)
	if _, err := s.CreateNetwork(context.Background(), &api.CreateNetworkRequest{Spec: &api.NetworkSpec{
		Annotations: &api.Annotations{Name: "ingress"}, Ingress: true, Ipam: []*api.IPAMConfig{{Subnet: "10.0.0.0/29"}}}}); err != nil {
		t.Fatal(err)
	}
	err := s.store.Update(context.Background(), func(tx *raftstore.Tx) error {
		return tx.Create(&api.Node{Id: "n1", Status: &api.NodeStatus{State: api.NodeStatus_READY}})
	})
	if err != nil {
		t.Fatal(err)
	}
	spec := portSpec("big", port(8080, 80))
	spec.GetReplicated().Replicas = 4
	_, err = s.CreateService(context.Background(), &api.CreateServiceRequest{Spec: spec})
	wantError(t, err, errdefs.ErrInvalidArgument, "the ingress network ingress (10.0.0.0/29) has 5 free addresses; service big needs 6 (4 tasks, a virtual IP, 1 nodes): publish in host mode (mode=host), or remove the ingress network and create a larger one (`shoal network create -d overlay --ingress --subnet 10.0.0.0/20 ingress`)")
	spec.GetReplicated().Replicas = 3
	if _, err := s.CreateService(context.Background(), &api.CreateServiceRequest{Spec: spec}); err != nil {
		t.Fatal(err)
	}
}
