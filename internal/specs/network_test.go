package specs

import (
	"net/netip"
	"strings"
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

func netSpec(driver string, opts map[string]string, ipam ...*api.IPAMConfig) *api.NetworkSpec {
	return &api.NetworkSpec{Annotations: &api.Annotations{Name: "n"}, Driver: &api.Driver{Name: driver, Options: opts}, Ipam: ipam}
}

func TestValidateNetworkRefusesBadSpecs(t *testing.T) {
	for _, c := range []struct {
		spec *api.NetworkSpec
		want string
	}{
		{netSpec("bridge", nil), `network driver "bridge" is not supported for swarm networks: use -d overlay`},
		{netSpec("overlay", map[string]string{"encrypted": ""}), "encrypted overlay networks are not supported yet: shoal does not run unencrypted traffic on a network asked to be encrypted"},
		{&api.NetworkSpec{Encrypted: true}, "encrypted overlay networks are not supported yet"},
		{netSpec("overlay", nil, &api.IPAMConfig{Subnet: "10.1.0.0/33"}), `invalid subnet "10.1.0.0/33": give an IPv4 CIDR like 10.0.9.0/24`},
		{netSpec("overlay", nil, &api.IPAMConfig{Subnet: "10.1.0.5/24"}), "invalid subnet 10.1.0.5/24: host bits are set; did you mean 10.1.0.0/24?"},
		{netSpec("overlay", nil, &api.IPAMConfig{Subnet: "fd00::/64"}), "only IPv4"},
		{netSpec("overlay", nil, &api.IPAMConfig{Subnet: "10.1.0.0/24", Gateway: "10.2.0.1"}), "gateway 10.2.0.1 is not inside subnet 10.1.0.0/24"},
		{netSpec("overlay", nil, &api.IPAMConfig{Subnet: "10.1.0.0/24", Gateway: "10.1.0.255"}), "gateway 10.1.0.255 is the network or broadcast address of subnet 10.1.0.0/24: use a host address"},
		{netSpec("overlay", nil, &api.IPAMConfig{Subnet: "10.1.0.0/24", Gateway: "10.1.0.0"}), "is the network or broadcast address"},
		{netSpec("overlay", nil, &api.IPAMConfig{Subnet: "10.1.0.0/24", Range: "10.1.1.0/25"}), "ip-range 10.1.1.0/25 is not inside subnet 10.1.0.0/24"},
		{netSpec("overlay", nil, &api.IPAMConfig{Subnet: "10.1.0.0/24", Range: "10.0.0.0/16"}), "ip-range 10.0.0.0/16 is not inside subnet 10.1.0.0/24"},
		{netSpec("overlay", nil, &api.IPAMConfig{Gateway: "10.1.0.1"}), "--gateway and --ip-range need --subnet"},
		{netSpec("overlay", map[string]string{OptionMTU: "575"}), `invalid com.docker.network.driver.mtu "575": give an integer from 576 to 9000`},
		{netSpec("overlay", map[string]string{OptionMTU: "9001"}), "give an integer from 576 to 9000"},
		{netSpec("overlay", map[string]string{OptionMTU: "big"}), "give an integer from 576 to 9000"},
		{netSpec("overlay", nil, &api.IPAMConfig{Subnet: "10.1.0.0/24"}, &api.IPAMConfig{Subnet: "10.2.0.0/24"}), "2 subnets given"},
	} {
		_, err := ValidateNetwork(c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.spec, err, c.want)
		}
	}
}

func TestValidateNetworkReadsParams(t *testing.T) {
	p, err := ValidateNetwork(netSpec("", map[string]string{OptionMTU: "1400", "encrypted": "false"},
		&api.IPAMConfig{Subnet: "10.9.0.0/24", Range: "10.9.0.128/25", Gateway: "10.9.0.254"}))
	if err != nil {
		t.Fatal(err)
	}
	if p.Subnet.String() != "10.9.0.0/24" || p.Range.String() != "10.9.0.128/25" || p.Gateway.String() != "10.9.0.254" || p.MTU != 1400 {
		t.Fatalf("%+v", p)
	}
	if p, err := ValidateNetwork(netSpec("overlay", nil)); err != nil || p.Subnet.IsValid() {
		t.Fatalf("%+v %v", p, err)
	}
}

func TestAddressPoolsAndPort(t *testing.T) {
	if _, n, err := ValidateAddressPools(nil, 0); err != nil || n != 24 {
		t.Fatal(n, err)
	}
	for _, c := range []struct {
		pools []string
		size  uint32
		want  string
	}{
		{[]string{"10.0.0.0/8", "10.20.0.0/16"}, 24, "default address pools 10.0.0.0/8 and 10.20.0.0/16 overlap"},
		{[]string{"10.20.0.0/16"}, 12, "subnet size /12 does not fit pool 10.20.0.0/16: give a mask length from 16 to 29"},
		{[]string{"10.20.0.0/16"}, 30, "give a mask length from 16 to 29"},
		{[]string{"10.20.0.1/16"}, 24, "host bits are set"},
	} {
		if _, _, err := ValidateAddressPools(c.pools, c.size); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v /%d: got %v, want %q", c.pools, c.size, err, c.want)
		}
	}
	for port, ok := range map[uint32]bool{0: true, 4789: true, 1023: false, 1024: true, 49151: true, 49152: false} {
		if err := ValidateDataPathPort(port); (err == nil) != ok {
			t.Errorf("port %d: %v", port, err)
		}
	}
}

func TestAddressHelpers(t *testing.T) {
	p := netip.MustParsePrefix("10.0.9.0/28")
	if LastAddr(p).String() != "10.0.9.15" || FirstHost(p).String() != "10.0.9.1" {
		t.Fatal(LastAddr(p), FirstHost(p))
	}
	if n := UsableAddrs(p, netip.Prefix{}, FirstHost(p)); n != 13 {
		t.Fatalf("usable %d, want 13", n)
	}
	if n := UsableAddrs(netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("10.0.0.128/25"), netip.MustParseAddr("10.0.0.1")); n != 127 {
		t.Fatalf("usable %d, want 127", n)
	}
}
