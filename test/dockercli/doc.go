// Package dockercli runs the real docker CLI (28.2, first on $PATH) against
// a real shoald's Engine API (dockerapi): over the unix socket and over
// mutual TLS on loopback. It needs root and containerd (SHOAL_TEST_ROOT=1),
// as shoald does; each daemon has its own data directory, sockets and
// containerd namespace, all removed when the test ends. The Prometheus
// tests run Debian's prometheus against shoald in a test/lab lab (each host
// in its own network namespace, for its overlay networks). The inspect
// tests run docker 28.2 and the shoal CLI (against the daemon's control
// socket) side by side on one daemon and compare what they print; the
// scripts under testdata/scripts (bash with jq, as people script docker)
// run once with docker and once with a `docker` shim that runs shoal.
// TestGoldenParity runs the same command lines through docker 28.2.2 and
// the built shoal CLI against one daemon and compares what they print and
// their exit statuses; each difference that remains is a named exception
// with its reason (docs/docker-parity.md lists them).
package dockercli
