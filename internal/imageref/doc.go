// Package imageref rewrites image references as the docker CLI does around
// digest pinning, with no I/O (the CLI links it; package registry, which
// talks to registries, is the daemon's):
//   - WithDefaultTag adds ":latest" to a bare name, as the docker client
//     does to every service image it sends;
//   - Pin keeps the tag and adds the digest ("app:v1@sha256:..."), leaves a
//     reference that already has a digest alone, and keeps the familiar
//     form the user wrote ("nginx", not "docker.io/library/nginx");
//   - StripDigest is what `service ls` and `service ps` show;
//   - Warning is docker's text when a digest cannot be recorded.
//
// A reference that does not parse comes back unchanged from each.
package imageref
