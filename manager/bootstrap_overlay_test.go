package manager

import (
	"strings"
	"testing"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// A new swarm's cluster gets a 32-byte gossip key, different each time.
func TestBootstrapMakesANetworkKey(t *testing.T) {
	var keys []string
	for range 2 {
		b, err := NewBootstrap(nil, clockwork.NewRealClock())
		if err != nil {
			t.Fatal(err)
		}
		c, _, err := b.Objects(1, FirstManager{Addr: "10.0.0.1:4242"})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.NetworkKey) != 32 {
			t.Fatalf("network key of %d bytes", len(c.NetworkKey))
		}
		keys = append(keys, string(c.NetworkKey))
	}
	if keys[0] == keys[1] {
		t.Fatal("two swarms got the same network key")
	}
}

// swarm init refuses bad address pools, subnet sizes and data path ports.
func TestNewClusterSpecChecksOverlaySettings(t *testing.T) {
	for _, c := range []struct {
		spec *api.ClusterSpec
		want string
	}{
		{&api.ClusterSpec{DefaultAddressPool: []string{"10.0.0.0/8", "10.10.0.0/16"}}, "overlap"},
		{&api.ClusterSpec{DefaultAddressPool: []string{"10.10.0.0/16"}, SubnetSize: 8}, "give a mask length from 16 to 29"},
		{&api.ClusterSpec{DefaultAddressPool: []string{"not-a-cidr"}}, "invalid default address pool"},
		{&api.ClusterSpec{DataPathPort: 80}, "data path port 80 is out of range"},
	} {
		_, err := NewClusterSpec(c.spec)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.spec, err, c.want)
		}
	}
	if _, err := NewClusterSpec(&api.ClusterSpec{DefaultAddressPool: []string{"10.20.0.0/16"}, SubnetSize: 26, DataPathPort: 4790}); err != nil {
		t.Fatal(err)
	}
}
