// Package specs validates the specs users write (services, overlay networks
// and the cluster's address pools and data path port, and the names, labels
// and durations of every object), with errors that say what is wrong
// and how to fix it, classed errdefs.ErrInvalidArgument.
//
// It is the one implementation: the Control API (manager/controlapi) runs it
// on every write, whatever client sent the spec, and the CLI runs it before
// sending anything (`shoal stack deploy` checks a whole stack before
// changing any of it). So that the CLI can import it without linking the
// manager, it depends only on proto, errdefs, the pure scheduler (constraint
// and preference syntax), internal/logopt and the image reference parser:
// no raft, bbolt or the store's B-trees.
//
// Functions are pure and safe for concurrent use. ValidateService may
// normalize the spec it checks (a replicated job's max concurrency is
// capped at its total completions, as Docker does).
package specs
