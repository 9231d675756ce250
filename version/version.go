// Package version holds the build's version, set at link time by the
// Makefile (-ldflags "-X github.com/shoal-project/shoal/version.Version=...").
// It has no state beyond these variables and imports nothing from shoal.
package version

// Version is the release version: plain semver (MAJOR.MINOR.PATCH, with a
// pre-release suffix in untagged builds), no prefix, as docker prints its
// engine version. `shoal version`, `node ls` ENGINE VERSION and the Engine
// API (/version, /info, node descriptions) all show it as is.
var Version = "0.1.0-dev"

// GitCommit is the commit the binary was built from, when known.
var GitCommit = ""

// APIVersion is the version of the gRPC API in proto/.
const APIVersion = "1"
