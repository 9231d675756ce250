package version

import (
	"regexp"
	"testing"
)

// semverRE is a semantic version without a prefix, as docker prints its
// engine version ("28.2.2") and as tools parsing `node ls` expect it.
var semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

func TestVersionIsPlainSemver(t *testing.T) {
	if !semverRE.MatchString(Version) {
		t.Fatalf("Version %q is not plain semver (MAJOR.MINOR.PATCH[-PRE]): `node ls` ENGINE VERSION and the Engine API's /version show it", Version)
	}
}
