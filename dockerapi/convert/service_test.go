package convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/swarm"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func d(s string) *durationpb.Duration {
	v, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return durationpb.New(v)
}

// fullSpec sets every ServiceSpec field Docker's types can carry.
func fullSpec() *api.ServiceSpec {
	return &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web", Labels: map[string]string{"io.shoal.stack.namespace": "st", "a": "b"}},
		Task: &api.TaskSpec{
			Container: &api.ContainerSpec{
				Image:           "nginx:1.25@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
				Labels:          map[string]string{"c": "d"},
				Command:         []string{"/bin/sh", "-c"},
				Args:            []string{"echo hi"},
				Hostname:        "{{.Task.Name}}",
				Env:             []string{"A=1", "B"},
				Dir:             "/srv",
				User:            "1000:1000",
				Groups:          []string{"audio", "video"},
				Tty:             true,
				OpenStdin:       true,
				ReadOnly:        true,
				StopSignal:      "SIGQUIT",
				StopGracePeriod: d("30s"),
				Mounts: []*api.Mount{
					{Type: api.Mount_BIND, Source: "/data", Target: "/data", ReadOnly: true},
					{Type: api.Mount_VOLUME, Source: "vol", Target: "/vol"},
					{Type: api.Mount_TMPFS, Target: "/tmp", TmpfsSizeBytes: 1 << 20, TmpfsMode: 0o1777},
				},
				Healthcheck: &api.HealthConfig{Test: []string{"CMD-SHELL", "curl -f localhost"}, Interval: d("5s"), Timeout: d("2s"),
					Retries: 3, StartPeriod: d("10s"), StartInterval: d("1s")},
				Secrets: []*api.SecretReference{{SecretId: "sec1", SecretName: "s1", File: &api.FileTarget{Name: "s1", Uid: "0", Gid: "0", Mode: 0o444}}},
				Configs: []*api.ConfigReference{{ConfigId: "cfg1", ConfigName: "c1", File: &api.FileTarget{Name: "/etc/c1", Uid: "1", Gid: "2", Mode: 0o400}}},
				Init:    true,
				CapAdd:  []string{"CAP_NET_ADMIN"},
				CapDrop: []string{"CAP_MKNOD"},
				Sysctls: map[string]string{"net.core.somaxconn": "1024"},
				Ulimits: []*api.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}},
				DnsConfig: &api.DNSConfig{Nameservers: []string{"10.0.0.2", "fd00::1"}, Search: []string{"example.org"},
					Options: []string{"ndots:2"}},
				Hosts: []string{"10.1.2.3 db db.local"},
			},
			Resources: &api.ResourceRequirements{
				Limits:       &api.Resources{NanoCpus: 1500000000, MemoryBytes: 256 << 20, Pids: 100},
				Reservations: &api.Resources{NanoCpus: 250000000, MemoryBytes: 64 << 20, Generic: []*api.GenericResource{{Kind: "gpu", Value: 2}}},
			},
			Restart: &api.RestartPolicy{Condition: api.RestartPolicy_ON_FAILURE, Delay: d("7s"), MaxAttempts: 4, Window: d("1m")},
			Placement: &api.Placement{
				Constraints: []string{"node.role==worker", "node.labels.zone!=b"},
				Preferences: []*api.PlacementPreference{{SpreadDescriptor: "node.labels.zone"}},
				Platforms:   []*api.Platform{{Architecture: "amd64", Os: "linux"}},
				MaxReplicas: 2,
			},
			Networks:    []*api.NetworkAttachmentConfig{{Target: "st_front", Aliases: []string{"web"}}, {Target: "n1abc"}},
			ForceUpdate: 3,
			LogDriver:   &api.Driver{Name: "local", Options: map[string]string{"max-size": "10m"}},
		},
		Mode:     &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 3}},
		Update:   &api.UpdateConfig{Parallelism: 2, Delay: d("10s"), FailureAction: api.UpdateConfig_ROLLBACK, Monitor: d("15s"), MaxFailureRatio: 0.25, Order: api.UpdateConfig_START_FIRST},
		Rollback: &api.UpdateConfig{Parallelism: 1, FailureAction: api.UpdateConfig_CONTINUE, Order: api.UpdateConfig_STOP_FIRST},
		Endpoint: &api.EndpointSpec{Mode: api.EndpointSpec_VIP, Ports: []*api.PortConfig{
			{Name: "http", Protocol: api.PortConfig_TCP, TargetPort: 80, PublishedPort: 8080, PublishMode: api.PortConfig_INGRESS},
			{Protocol: api.PortConfig_UDP, TargetPort: 53, PublishedPort: 5353, PublishMode: api.PortConfig_HOST},
			{Protocol: api.PortConfig_SCTP, TargetPort: 9000},
		}},
	}
}

// roundTrip goes through Docker's type and its JSON, as a client's
// read-modify-write does.
func roundTrip(t *testing.T, s *api.ServiceSpec) *api.ServiceSpec {
	t.Helper()
	m := ServiceSpecToMoby(s)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back swarm.ServiceSpec
	if err := strictDecode(b, &back); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	got, err := ServiceSpecFromMoby(&back)
	if err != nil {
		t.Fatalf("from moby: %v\n%s", err, b)
	}
	return got
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func TestServiceSpecRoundTrip(t *testing.T) {
	modes := map[string]func(*api.ServiceSpec){
		"replicated": func(*api.ServiceSpec) {},
		"replicated zero": func(s *api.ServiceSpec) {
			s.Mode = &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{}}
		},
		"global": func(s *api.ServiceSpec) { s.Mode = &api.ServiceSpec_Global{Global: &api.GlobalService{}} },
		"replicated-job": func(s *api.ServiceSpec) {
			s.Mode = &api.ServiceSpec_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 10}}
			s.Update, s.Rollback = nil, nil
		},
		"global-job": func(s *api.ServiceSpec) {
			s.Mode = &api.ServiceSpec_GlobalJob{GlobalJob: &api.GlobalJob{}}
			s.Update, s.Rollback = nil, nil
		},
		"dnsrr, no ports": func(s *api.ServiceSpec) {
			s.Endpoint = &api.EndpointSpec{Mode: api.EndpointSpec_DNSRR}
		},
		"minimal": func(s *api.ServiceSpec) {
			*s = api.ServiceSpec{
				Annotations: &api.Annotations{Name: "min"},
				Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "busybox"}},
				Mode:        &api.ServiceSpec_Replicated{Replicated: &api.ReplicatedService{Replicas: 1}},
			}
		},
		"restart without delay": func(s *api.ServiceSpec) {
			s.Task.Restart = &api.RestartPolicy{Condition: api.RestartPolicy_NONE, Delay: d("0s")}
		},
	}
	for name, mut := range modes {
		t.Run(name, func(t *testing.T) {
			want := fullSpec()
			mut(want)
			got := roundTrip(t, want)
			if !proto.Equal(got, want) {
				t.Errorf("round trip changed the spec\n got %v\nwant %v", got, want)
			}
		})
	}
}

// TestMobySpecRoundTrip starts from Docker's side: every field shoal
// supports, set, survives moby -> shoal -> moby.
func TestMobySpecRoundTrip(t *testing.T) {
	want := ServiceSpecToMoby(fullSpec())
	s, err := ServiceSpecFromMoby(&want)
	if err != nil {
		t.Fatal(err)
	}
	got := ServiceSpecToMoby(s)
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Errorf("moby round trip:\n got %s\nwant %s", gb, wb)
	}
	// The JSON carries every field group the brief lists.
	for _, k := range []string{`"Healthcheck"`, `"StopGracePeriod":30000000000`, `"Init":true`, `"DNSConfig"`, `"Hosts"`, `"Ulimits"`,
		`"Sysctls"`, `"CapabilityAdd"`, `"CapabilityDrop"`, `"Secrets"`, `"Configs"`, `"Mounts"`, `"MaxReplicas":2`,
		`"Platforms"`, `"Preferences"`, `"LogDriver"`, `"ForceUpdate":3`, `"RollbackConfig"`, `"PublishMode":"host"`,
		`"Protocol":"sctp"`, `"Order":"start-first"`, `"Condition":"on-failure"`, `"Pids":100`, `"DiscreteResourceSpec"`} {
		if !strings.Contains(string(gb), k) {
			t.Errorf("JSON lacks %s: %s", k, gb)
		}
	}
}

// TestClientBodies decodes the bodies real clients sent (docker CLI 20.10
// and 28.2, docker-py 5; engine-api/docker-cli-requests.log) strictly and
// converts them.
func TestClientBodies(t *testing.T) {
	bodies := map[string]string{
		"cli create":             `{"Name":"web","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"nginx:latest@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","Init":false,"DNSConfig":{},"Secrets":[{"File":{"Name":"s1","UID":"0","GID":"0","Mode":292},"SecretID":"sec1","SecretName":"s1"}]},"Resources":{"Limits":{},"Reservations":{}},"Placement":{"Platforms":[{"Architecture":"amd64","OS":"linux"}]},"Networks":[{"Target":"net1"}],"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":2}},"EndpointSpec":{"Mode":"vip","Ports":[{"Protocol":"tcp","TargetPort":80,"PublishedPort":8080,"PublishMode":"ingress"}]}}`,
		"cli create no replicas": `{"Name":"web2","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"nginx:latest","Init":false,"DNSConfig":{}},"Resources":{"Limits":{},"Reservations":{}},"Placement":{"Platforms":[{"Architecture":"amd64","OS":"linux"}]},"ForceUpdate":0},"Mode":{"Replicated":{}},"EndpointSpec":{"Mode":"vip"}}`,
		"stack deploy 28":        `{"Name":"st_web","Labels":{"com.docker.stack.image":"nginx:latest","com.docker.stack.namespace":"st"},"TaskTemplate":{"ContainerSpec":{"Image":"nginx:latest","Labels":{"com.docker.stack.namespace":"st"},"Privileges":{"CredentialSpec":null,"SELinuxContext":null,"NoNewPrivileges":false},"Secrets":[{"File":{"Name":"s1","UID":"0","GID":"0","Mode":292},"SecretID":"sec1","SecretName":"st_s1"}],"Configs":[{"File":{"Name":"c1","UID":"0","GID":"0","Mode":292},"ConfigID":"sec1","ConfigName":"st_c1"}]},"Resources":{},"Placement":{"Platforms":[{"Architecture":"amd64","OS":"linux"}]},"Networks":[{"Target":"st_front","Aliases":["web"]}],"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":2}},"UpdateConfig":{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0,"Order":"stop-first"},"RollbackConfig":{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0,"Order":"stop-first"},"EndpointSpec":{"Mode":"vip","Ports":[{"Protocol":"tcp","TargetPort":80,"PublishedPort":8080,"PublishMode":"ingress"}]}}`,
		"docker-py create":       `{"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "nginx:latest", "Command": null, "Args": null}}, "Mode": {"replicated": {"Replicas": 2}}}`,
		"docker-py update":       `{"Name": "st_web", "Labels": {"com.docker.stack.namespace": "st", "com.docker.stack.image": "nginx:latest"}, "Mode": {"replicated": {"Replicas": 3}}, "TaskTemplate": {"ContainerSpec": {"Image": "nginx:latest"}, "ForceUpdate": 0}, "EndpointSpec": {"Mode": "vip"}}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			var m swarm.ServiceSpec
			if err := strictDecode([]byte(body), &m); err != nil {
				t.Fatal(err)
			}
			s, err := ServiceSpecFromMoby(&m)
			if err != nil {
				t.Fatal(err)
			}
			if s.GetAnnotations().GetName() == "" || s.GetTask().GetContainer().GetImage() == "" {
				t.Fatalf("lost name or image: %v", s)
			}
			if dc := s.GetTask().GetContainer().GetDnsConfig(); dc != nil && (len(dc.GetNameservers()) > 0 || len(dc.GetSearch()) > 0) {
				t.Errorf("empty DNSConfig became %v", dc)
			}
			r := s.GetReplicated()
			if r == nil || r.GetReplicas() == 0 {
				t.Errorf("mode %v, want replicated with replicas", s.GetMode())
			}
		})
	}
}

func TestServiceSpecDefaults(t *testing.T) {
	s, err := ServiceSpecFromMoby(&swarm.ServiceSpec{TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	if s.GetReplicated().GetReplicas() != 1 {
		t.Errorf("no mode: %v, want 1 replica as Docker", s.GetMode())
	}
	m := &swarm.ServiceSpec{
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "x"}, RestartPolicy: &swarm.RestartPolicy{}},
		UpdateConfig: &swarm.UpdateConfig{},
		EndpointSpec: &swarm.EndpointSpec{Ports: []swarm.PortConfig{{TargetPort: 80}}},
	}
	s, err = ServiceSpecFromMoby(m)
	if err != nil {
		t.Fatal(err)
	}
	p := s.GetEndpoint().GetPorts()[0]
	if s.GetEndpoint().GetMode() != api.EndpointSpec_VIP || p.GetProtocol() != api.PortConfig_TCP || p.GetPublishMode() != api.PortConfig_INGRESS {
		t.Errorf("endpoint defaults: %v", s.GetEndpoint())
	}
	if s.GetTask().GetRestart().GetCondition() != api.RestartPolicy_ANY {
		t.Errorf("restart default: %v", s.GetTask().GetRestart())
	}
	if u := s.GetUpdate(); u.GetFailureAction() != api.UpdateConfig_PAUSE || u.GetOrder() != api.UpdateConfig_STOP_FIRST {
		t.Errorf("update defaults: %v", u)
	}
}

// base returns a valid Docker spec for the refusal table to spoil.
func base() *swarm.ServiceSpec {
	m := ServiceSpecToMoby(fullSpec())
	return &m
}

func TestServiceSpecRefusals(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	cases := []struct {
		field string // must appear in the error
		spoil func(*swarm.ServiceSpec)
	}{
		{"TaskTemplate.ContainerSpec.Privileges.SELinuxContext is not supported by shoal", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Privileges = &swarm.Privileges{SELinuxContext: &swarm.SELinuxContext{Type: "svirt_t"}}
		}},
		{"Privileges.CredentialSpec", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Privileges = &swarm.Privileges{CredentialSpec: &swarm.CredentialSpec{File: "x.json"}}
		}},
		{"Privileges.Seccomp", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Privileges = &swarm.Privileges{Seccomp: &swarm.SeccompOpts{Mode: swarm.SeccompModeUnconfined}}
		}},
		{"Privileges.AppArmor", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Privileges = &swarm.Privileges{AppArmor: &swarm.AppArmorOpts{Mode: swarm.AppArmorModeDisabled}}
		}},
		{"Privileges.NoNewPrivileges", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Privileges = &swarm.Privileges{NoNewPrivileges: true}
		}},
		{"ContainerSpec.Isolation", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Isolation = "hyperv" }},
		{"ContainerSpec.OomScoreAdj", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.OomScoreAdj = 500 }},
		{"ContainerSpec.Configs[0].Runtime", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Configs[0].Runtime = &swarm.ConfigReferenceRuntimeTarget{}
		}},
		{"ContainerSpec.Mounts[0].BindOptions.Propagation", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Mounts[0].BindOptions = &mountBindShared
		}},
		{"ContainerSpec.Mounts[1].VolumeOptions.DriverConfig", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Mounts[1].VolumeOptions = &mountVolumeNFS
		}},
		{"ContainerSpec.Mounts[2].TmpfsOptions.Options", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Mounts[2].TmpfsOptions.Options = [][]string{{"noexec"}}
		}},
		{`ContainerSpec.Mounts[0].Type "npipe"`, func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Mounts[0].Type = "npipe" }},
		{"ContainerSpec.Mounts[0].Type: a mount needs a Type", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Mounts[0].Type = "" }},
		{"TaskTemplate.PluginSpec", func(s *swarm.ServiceSpec) { s.TaskTemplate.PluginSpec = &swarm.RuntimeSpec{Name: "p"} }},
		{"TaskTemplate.Runtime", func(s *swarm.ServiceSpec) { s.TaskTemplate.Runtime = swarm.RuntimePlugin }},
		{"TaskTemplate.ContainerSpec: a service needs", func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec = nil }},
		{"TaskTemplate.Resources.SwapBytes", func(s *swarm.ServiceSpec) { s.TaskTemplate.Resources.SwapBytes = i64(0) }},
		{"TaskTemplate.Resources.MemorySwappiness", func(s *swarm.ServiceSpec) { s.TaskTemplate.Resources.MemorySwappiness = i64(10) }},
		{"Reservations.GenericResources[0].NamedResourceSpec", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.Resources.Reservations.GenericResources = []swarm.GenericResource{{NamedResourceSpec: &swarm.NamedGenericResource{Kind: "gpu", Value: "uuid"}}}
		}},
		{"TaskTemplate.Networks[1].DriverOpts", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.Networks[1].DriverOpts = map[string]string{"com.docker.network.driver.mtu": "1400"}
		}},
		{"TaskTemplate.Placement.Preferences[0]", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.Placement.Preferences = []swarm.PlacementPreference{{}}
		}},
		{`TaskTemplate.RestartPolicy.Condition "sometimes"`, func(s *swarm.ServiceSpec) { s.TaskTemplate.RestartPolicy.Condition = "sometimes" }},
		{`UpdateConfig.FailureAction "explode"`, func(s *swarm.ServiceSpec) { s.UpdateConfig.FailureAction = "explode" }},
		{`RollbackConfig.Order "random"`, func(s *swarm.ServiceSpec) { s.RollbackConfig.Order = "random" }},
		{"UpdateConfig.MaxFailureRatio", func(s *swarm.ServiceSpec) { s.UpdateConfig.MaxFailureRatio = 2 }},
		{`EndpointSpec.Mode "round-robin"`, func(s *swarm.ServiceSpec) { s.EndpointSpec.Mode = "round-robin" }},
		{`EndpointSpec.Ports[1].Protocol "icmp"`, func(s *swarm.ServiceSpec) { s.EndpointSpec.Ports[1].Protocol = "icmp" }},
		{`EndpointSpec.Ports[0].PublishMode "everywhere"`, func(s *swarm.ServiceSpec) { s.EndpointSpec.Ports[0].PublishMode = "everywhere" }},
		{"EndpointSpec.Ports[2].TargetPort", func(s *swarm.ServiceSpec) { s.EndpointSpec.Ports[2].TargetPort = 0 }},
		{"ContainerSpec.DNSConfig.Nameservers[1]", func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.DNSConfig.Nameservers[1] = netip.Addr{}
		}},
		{"Mode: set only one", func(s *swarm.ServiceSpec) { s.Mode.Global = &swarm.GlobalService{} }},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			s := base()
			c.spoil(s)
			_, err := ServiceSpecFromMoby(s)
			if err == nil {
				t.Fatalf("accepted")
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("error %q does not name %q", err, c.field)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %q is not InvalidArgument (HTTP 400)", err)
			}
		})
	}
}

// Docker's defaults are accepted, not refused.
func TestServiceSpecAcceptsDefaults(t *testing.T) {
	s := base()
	c := s.TaskTemplate.ContainerSpec
	f := false
	c.Init = &f
	c.Isolation = "default"
	c.Privileges = &swarm.Privileges{SELinuxContext: &swarm.SELinuxContext{}, Seccomp: &swarm.SeccompOpts{Mode: swarm.SeccompModeDefault},
		AppArmor: &swarm.AppArmorOpts{Mode: swarm.AppArmorModeDefault}}
	c.Mounts[0].BindOptions = &mountBindRPrivate
	c.Mounts[0].Consistency = "cached"
	c.Mounts[1].VolumeOptions = &mountVolumeLocal
	s.TaskTemplate.Runtime = swarm.RuntimeContainer
	got, err := ServiceSpecFromMoby(s)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetTask().GetContainer().GetInit() {
		t.Error("Init false became true")
	}
}

func TestKeepShoalOnly(t *testing.T) {
	cur := fullSpec()
	cur.Endpoint.Ports[0].Masquerade = true
	cur.Task.Networks[0].Addresses = []string{"10.0.9.9/24"}
	next := roundTrip(t, cur)
	if next.Endpoint.Ports[0].Masquerade || len(next.Task.Networks[0].Addresses) != 0 {
		t.Fatal("Docker's types carried shoal-only fields: update KeepShoalOnly and doc.go")
	}
	KeepShoalOnly(next, cur)
	if !proto.Equal(next, cur) {
		t.Errorf("KeepShoalOnly:\n got %v\nwant %v", next, cur)
	}
	// A port the client changed does not inherit the old port's setting.
	next = roundTrip(t, cur)
	next.Endpoint.Ports[0].PublishedPort = 9090
	KeepShoalOnly(next, cur)
	if next.Endpoint.Ports[0].Masquerade {
		t.Error("masquerade copied to a changed port")
	}
}

var (
	mountBindShared   = mount.BindOptions{Propagation: mount.PropagationRShared}
	mountBindRPrivate = mount.BindOptions{Propagation: mount.PropagationRPrivate}
	mountVolumeNFS    = mount.VolumeOptions{DriverConfig: &mount.Driver{Name: "local", Options: map[string]string{"type": "nfs"}}}
	mountVolumeLocal  = mount.VolumeOptions{DriverConfig: &mount.Driver{Name: "local"}}
)

func TestServiceSpecRequestTopLevelNetworks(t *testing.T) {
	body := `{"Name":"old","TaskTemplate":{"ContainerSpec":{"Image":"x"}},"Networks":[{"Target":"front","Aliases":["a"]}]}`
	var r ServiceSpecRequest
	if err := strictDecode([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	s, err := ServiceSpecFromRequest(&r)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.GetTask().GetNetworks(); len(n) != 1 || n[0].GetTarget() != "front" || n[0].GetAliases()[0] != "a" {
		t.Errorf("networks: %v", n)
	}
	if s.GetAnnotations().GetName() != "old" {
		t.Errorf("name lost through the embedded spec: %v", s.GetAnnotations())
	}
	r.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: "back"}}
	if _, err := ServiceSpecFromRequest(&r); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("both set: %v", err)
	}
	// Every body the other tests use decodes into the request type too.
	var full ServiceSpecRequest
	if err := strictDecode([]byte(cliBody), &full); err != nil {
		t.Fatal(err)
	}
	if s, err := ServiceSpecFromRequest(&full); err != nil || !proto.Equal(s, cliSpec(t)) {
		t.Errorf("cli body through the request type: %v %v", s, err)
	}
}
