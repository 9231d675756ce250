package scale

import (
	"os"
	"testing"

	"github.com/shoal-project/shoal/internal/testcluster"
)

// TestMain lets this test binary be the simulated fleet's own process
// (testcluster.AddSimNodesProcess starts it again for that).
func TestMain(m *testing.M) {
	testcluster.RunFleetProcessIfAsked()
	os.Exit(m.Run())
}
