package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/internal/testutil"
	"github.com/shoal-project/shoal/overlay/datapath"
)

// CleanNode removes a bridge's egress NAT table even when the bridge is
// already gone (a killed daemon's table, whoever removed its bridge), in
// the calling thread's namespace, and leaves other tables alone.
func TestCleanNodeRemovesTheEgressTable(t *testing.T) {
	testutil.RequiresRoot(t)
	name := fmt.Sprintf("shoal-clean-%d", os.Getpid())
	if out, err := run("ip", "netns", "add", name); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = run("ip", "netns", "del", name) })
	ns := &NS{Netns: name}
	subnet := netip.MustParsePrefix("10.213.0.0/20")
	if err := ns.Do(func() error {
		if err := datapath.EnsureEgress("shoal-cln-a", subnet); err != nil {
			return err
		}
		return datapath.EnsureEgress("shoal-cln-b", subnet)
	}); err != nil {
		t.Fatal(err)
	}
	if err := ns.Do(func() error { return CleanNode("", "", t.TempDir(), "shoal-cln-a") }); err != nil {
		t.Fatal(err)
	}
	out, err := ns.Exec(context.Background(), "nft", "list", "tables")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, datapath.EgressTable("shoal-cln-a")) {
		t.Errorf("the cleaned bridge's egress table is still there:\n%s", out)
	}
	if !strings.Contains(out, datapath.EgressTable("shoal-cln-b")) {
		t.Errorf("another bridge's egress table went too:\n%s", out)
	}
}
