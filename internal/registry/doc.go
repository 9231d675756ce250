// Package registry reads an image's manifest descriptor from its OCI
// registry: what `docker service create` asks the daemon before it pins an
// image by digest (GET /distribution/{image}/json in the Engine API, and
// Registry.ResolveImage on shoal's control socket). Both callers use
// Inspect, so a node answers the docker CLI and the shoal CLI alike.
//
// Contracts:
//   - Inspect makes at most a few HTTP requests to the image's registry and
//     never waits longer than its context or Options.Timeout (default
//     DefaultTimeout), whichever is sooner. It holds no state and is safe
//     for concurrent use.
//   - Loopback registries (localhost, 127.0.0.0/8, ::1) and the ones
//     Options.Insecure lists (host, host:port or a CIDR) are reached over
//     plain HTTP, the rule the node's executor pulls by (PlainHTTP).
//   - Errors are errdefs kinds: a malformed reference InvalidArgument, an
//     image or tag the registry does not know NotFound, refused
//     credentials PermissionDenied, anything else (network, timeout, a
//     broken registry) Unavailable. Each message names the reference.
//   - Rewriting references (pinning the digest) is package imageref's,
//     which links no registry client.
package registry
