// Package layout holds no code: its test checks the import rules of
// DESIGN.md ("Layout and who may import whom" and the "Never:" line) on
// the module as it is, with `go list -json ./...`, and fails naming each
// edge that breaks them (with the path of imports that leads to it).
//
// Rules are per layer (the top-level directory: proto, pki, raftstore,
// scheduler, manager, worker, overlay, ingress, node, dockerapi, cmd).
// errdefs, version and internal/* are support packages any layer may use;
// the check follows them transitively, so a layer cannot reach a forbidden
// one through a support package. test/* and the test-only support packages
// (internal/testutil, internal/testcluster, worker/fakeexec) may be
// imported by tests only. Nothing outside cmd/X imports cmd/X.
package layout
