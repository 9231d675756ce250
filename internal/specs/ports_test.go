package specs

import (
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

func TestValidatePorts(t *testing.T) {
	ok := []*api.EndpointSpec{
		nil,
		{Ports: []*api.PortConfig{{TargetPort: 80}, {TargetPort: 80, PublishedPort: 8080, Masquerade: true}, {TargetPort: 53, PublishedPort: 8080, Protocol: api.PortConfig_UDP}}},
		{Mode: api.EndpointSpec_DNSRR, Ports: []*api.PortConfig{{TargetPort: 80, PublishedPort: 80, PublishMode: api.PortConfig_HOST}}},
		{Ports: []*api.PortConfig{{TargetPort: 80, PublishMode: api.PortConfig_HOST}, {TargetPort: 81, PublishMode: api.PortConfig_HOST}}}, // host 0 twice
	}
	for i, e := range ok {
		if err := ValidatePorts(e); err != nil {
			t.Errorf("ok[%d]: %v", i, err)
		}
	}
	bad := map[string]*api.EndpointSpec{
		"invalid target port 0: must be 1-65535":                                           {Ports: []*api.PortConfig{{}}},
		"invalid published port 65536: must be 1-65535 (or 0 for a port from 30000-32767)": {Ports: []*api.PortConfig{{TargetPort: 1, PublishedPort: 65536}}},
		"port 1->2/sctp: sctp is not supported by the routing mesh; publish tcp or udp":    {Ports: []*api.PortConfig{{TargetPort: 2, PublishedPort: 1, Protocol: api.PortConfig_SCTP}}},
		"published port 1/udp is used twice: publish each port once": {Ports: []*api.PortConfig{
			{TargetPort: 2, PublishedPort: 1, Protocol: api.PortConfig_UDP}, {TargetPort: 3, PublishedPort: 1, Protocol: api.PortConfig_UDP, PublishMode: api.PortConfig_HOST}}},
		"port published with ingress mode can't be used with dnsrr mode: publish it with mode=host, or use --endpoint-mode vip": {
			Mode: api.EndpointSpec_DNSRR, Ports: []*api.PortConfig{{TargetPort: 80}}},
	}
	for want, e := range bad {
		if err := ValidatePorts(e); err == nil || err.Error() != want {
			t.Errorf("got %v, want %q", err, want)
		}
	}
	if !PublishesIngress([]*api.PortConfig{{PublishMode: api.PortConfig_HOST}, {}}) || PublishesIngress([]*api.PortConfig{{PublishMode: api.PortConfig_HOST}}) {
		t.Error("PublishesIngress")
	}
	if PortName(8080, api.PortConfig_UDP) != "8080/udp" {
		t.Error(PortName(8080, api.PortConfig_UDP))
	}
}
