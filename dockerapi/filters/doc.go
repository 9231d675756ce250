// Package filters parses the Engine API's `filters=` query parameter into a
// map of filter names to values, and matches values as dockerd does.
//
// Clients send filters in two JSON forms: the docker CLI and the Go SDK
// send {"name":{"web":true}}, docker-py sends {"name":["web"]}. Parse
// accepts both (and an empty parameter), checks every key against the set
// an endpoint allows ("invalid filter 'x'": a 400 for the caller), and
// returns Args. Args is a plain value: it holds no state beyond the parsed
// map and is safe for concurrent reads. The package does no I/O and imports
// nothing from shoal.
package filters
