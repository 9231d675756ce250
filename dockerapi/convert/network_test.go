package convert

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/network"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

func TestNetworkCreateClientBodies(t *testing.T) {
	cases := map[string]struct {
		body string
		want *api.NetworkSpec
	}{
		"cli 20.10 stack deploy": {
			`{"CheckDuplicate":false,"Driver":"overlay","Scope":"","EnableIPv6":false,"IPAM":null,"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":null,"Labels":{"com.docker.stack.namespace":"st"},"Name":"st_front"}`,
			&api.NetworkSpec{Annotations: &api.Annotations{Name: "st_front", Labels: map[string]string{"io.shoal.stack.namespace": "st"}},
				Driver: &api.Driver{Name: "overlay"}},
		},
		"cli 20.10 network create": {
			`{"CheckDuplicate":true,"Driver":"overlay","Scope":"","EnableIPv6":false,"IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,"Attachable":true,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"ov"}`,
			&api.NetworkSpec{Annotations: &api.Annotations{Name: "ov"}, Driver: &api.Driver{Name: "overlay"}, Attachable: true},
		},
		"cli 28 stack deploy": {
			`{"Driver":"overlay","Scope":"","IPAM":null,"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":null,"Labels":{"com.docker.stack.namespace":"st"},"Name":"st_front","CheckDuplicate":true}`,
			&api.NetworkSpec{Annotations: &api.Annotations{Name: "st_front", Labels: map[string]string{"io.shoal.stack.namespace": "st"}},
				Driver: &api.Driver{Name: "overlay"}},
		},
		"docker-py": {
			`{"Name": "ov", "Driver": "overlay"}`,
			&api.NetworkSpec{Annotations: &api.Annotations{Name: "ov"}, Driver: &api.Driver{Name: "overlay"}},
		},
		"everything": {
			`{"Name":"full","Driver":"overlay","Scope":"swarm","EnableIPv4":true,"EnableIPv6":true,"Internal":true,
			  "IPAM":{"Driver":"default","Config":[{"Subnet":"10.20.0.0/16","IPRange":"10.20.1.0/24","Gateway":"10.20.0.254"},{"Subnet":"fd00:1::/64"}]},
			  "Options":{"encrypted":"","com.docker.network.driver.mtu":"1400"},"Labels":{"a":"b"}}`,
			&api.NetworkSpec{Annotations: &api.Annotations{Name: "full", Labels: map[string]string{"a": "b"}},
				Driver: &api.Driver{Name: "overlay", Options: map[string]string{"com.docker.network.driver.mtu": "1400"}},
				Ipv6:   true, Internal: true, Encrypted: true,
				Ipam: []*api.IPAMConfig{{Subnet: "10.20.0.0/16", Range: "10.20.1.0/24", Gateway: "10.20.0.254"}, {Subnet: "fd00:1::/64"}}},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var r NetworkCreateRequest
			if err := strictDecode([]byte(c.body), &r); err != nil {
				t.Fatal(err)
			}
			got, err := NetworkSpecFromCreate(r)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, c.want) {
				t.Errorf("\n got %v\nwant %v", got, c.want)
			}
		})
	}
}

func TestNetworkCreateRefusals(t *testing.T) {
	f := false
	pfx := netip.MustParsePrefix
	cases := []struct {
		want  string
		spoil func(*NetworkCreateRequest)
	}{
		{`network driver "bridge" is not supported by shoal`, func(r *NetworkCreateRequest) { r.Driver = "bridge" }},
		{`network driver "" is not supported by shoal`, func(r *NetworkCreateRequest) { r.Driver = "" }},
		{"invalid Name", func(r *NetworkCreateRequest) { r.Name = " " }},
		{`Scope "local" is not supported`, func(r *NetworkCreateRequest) { r.Scope = "local" }},
		{"EnableIPv4 false", func(r *NetworkCreateRequest) { r.EnableIPv4 = &f }},
		{"ConfigOnly", func(r *NetworkCreateRequest) { r.ConfigOnly = true }},
		{"ConfigFrom", func(r *NetworkCreateRequest) { r.ConfigFrom = &network.ConfigReference{Network: "cfg"} }},
		{"ingress network cannot be attachable", func(r *NetworkCreateRequest) { r.Ingress, r.Attachable = true, true }},
		{"ingress network cannot be internal", func(r *NetworkCreateRequest) { r.Ingress, r.Internal = true, true }},
		{"Options.com.docker.network.driver.overlay.vxlanid_list", func(r *NetworkCreateRequest) {
			r.Options = map[string]string{OptVXLANIDs: "5000"}
		}},
		{"Options.com.docker.network.driver.mtu", func(r *NetworkCreateRequest) { r.Options = map[string]string{OptMTU: "9"} }},
		{`IPAM.Driver "dhcp"`, func(r *NetworkCreateRequest) { r.IPAM = &network.IPAM{Driver: "dhcp"} }},
		{"IPAM.Options", func(r *NetworkCreateRequest) { r.IPAM = &network.IPAM{Options: map[string]string{"x": "y"}} }},
		{"IPAM.Config[0].AuxiliaryAddresses", func(r *NetworkCreateRequest) {
			r.IPAM = &network.IPAM{Config: []network.IPAMConfig{{Subnet: pfx("10.9.0.0/24"),
				AuxAddress: map[string]netip.Addr{"router": netip.MustParseAddr("10.9.0.2")}}}}
		}},
		{"IPAM.Config[0].Subnet", func(r *NetworkCreateRequest) {
			r.IPAM = &network.IPAM{Config: []network.IPAMConfig{{Gateway: netip.MustParseAddr("10.9.0.1")}}}
		}},
		{"IPAM.Config[1].Subnet: 10.9.0.0/25 overlaps", func(r *NetworkCreateRequest) {
			r.IPAM = &network.IPAM{Config: []network.IPAMConfig{{Subnet: pfx("10.9.0.0/24")}, {Subnet: pfx("10.9.0.0/25")}}}
		}},
		{"IPAM.Config[0].Gateway", func(r *NetworkCreateRequest) {
			r.IPAM = &network.IPAM{Config: []network.IPAMConfig{{Subnet: pfx("10.9.0.0/24"), Gateway: netip.MustParseAddr("10.8.0.1")}}}
		}},
		{"IPAM.Config[0].IPRange", func(r *NetworkCreateRequest) {
			r.IPAM = &network.IPAM{Config: []network.IPAMConfig{{Subnet: pfx("10.9.0.0/24"), IPRange: pfx("10.9.0.0/16")}}}
		}},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			r := NetworkCreateRequest{CreateRequest: network.CreateRequest{Name: "n", Driver: "overlay"}}
			c.spoil(&r)
			_, err := NetworkSpecFromCreate(r)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %q is not InvalidArgument", err)
			}
		})
	}
}

func storedNet1() *api.Network {
	return &api.Network{
		Id:   "net1id",
		Meta: &api.Meta{Version: 6, CreatedAt: ts("2026-11-30T09:59:00Z"), UpdatedAt: ts("2026-11-30T09:59:00.5Z")},
		Spec: &api.NetworkSpec{Annotations: &api.Annotations{Name: "net1", Labels: map[string]string{"com.docker.stack.namespace": "st"}},
			Driver: &api.Driver{Name: "overlay"}, Attachable: true, Encrypted: true},
		Vni:  4097,
		Ipam: []*api.IPAMConfig{{Subnet: "10.0.1.0/24", Gateway: "10.0.1.1"}},
	}
}

func TestGoldenNetworkInspect(t *testing.T) {
	golden(t, "network.json", NetworkInspectToMoby(storedNet1()), map[string]string{
		"EnableIPv4": "API 1.47+ field (always true for overlay networks); dockerd 20.10 did not have it",
	})
	s := NetworkSummaryToMoby(storedNet1())
	if s.ID != "net1id" || s.Scope != "swarm" || s.Options[OptVXLANIDs] != "4097" || len(s.IPAM.Config) != 1 {
		t.Errorf("summary: %+v", s)
	}
}

func TestNetworkToMobyBeforeAllocation(t *testing.T) {
	n := storedNet1()
	n.Ipam, n.Vni = nil, 0
	n.Spec.Ipam = []*api.IPAMConfig{{Subnet: "10.30.0.0/24", Range: "10.30.0.128/25"}}
	n.Mtu = 1400
	m := NetworkToMoby(n)
	if m.IPAMOptions == nil || m.IPAMOptions.Configs[0].Subnet.String() != "10.30.0.0/24" || m.IPAMOptions.Configs[0].Range.String() != "10.30.0.128/25" {
		t.Errorf("IPAMOptions from the spec: %+v", m.IPAMOptions)
	}
	if _, ok := m.DriverState.Options[OptVXLANIDs]; ok {
		t.Error("VXLAN ID shown before allocation")
	}
	if m.DriverState.Options[OptMTU] != "1400" || m.Spec.DriverConfiguration.Options[OptEncrypted] != "" {
		t.Errorf("options: %+v %+v", m.DriverState, m.Spec.DriverConfiguration)
	}
	if _, ok := m.Spec.DriverConfiguration.Options[OptEncrypted]; !ok {
		t.Error("encrypted not in the spec's driver options")
	}
}
