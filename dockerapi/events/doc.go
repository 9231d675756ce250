// Package events is the Docker Engine API's event stream for a shoal node:
// GET /events and `shoal events`.
//
// A Source follows the manager's Watch RPC (nodes, services, tasks,
// networks, secrets, configs, with the old objects) and turns each store
// change into a moby events.Message with Scope "swarm", as dockerd does for
// a swarm (daemon/cluster events): Type service|node|network|secret|config,
// Action create|update|remove, Actor.ID the object's ID and
// Actor.Attributes its name plus, on updates, what changed (services:
// image.old/new, replicas.old/new, updatestate.old/new; nodes:
// availability, role, state, leader, reachability .old/.new).
//
// Tasks are shoal's addition (Docker has no task events): Type "task",
// Action the new state in lower case ("pending", "running", "failed", ...),
// "create" for a new task and "remove" when it leaves the store; the
// attributes are name (SERVICE.SLOT, or SERVICE.NODE for a global task),
// service.id, service.name, slot, node.id, desiredstate, state.old,
// state.new and error when the task has one. The state as the action makes
// the docker CLI's line read "task running ID (...)" and lets
// `--filter event=failed` pick failures. Task writes that do not change the
// state (desired state, health streak) make no event.
//
// Filters are dockerd's: type, event (also "action"), scope, service, node,
// network, secret, config, label (matched against the object's labels; a
// task has its service's), plus shoal's id (ID prefix) and name. Values of
// one key are ORed, keys are ANDed. Keys dockerd accepts for local objects
// (container, image, volume, daemon, plugin) are accepted and match nothing.
//
// # Bounds
//
// The Source keeps the last Config.RingSize events (default 1,024) in
// memory, so a `since` in the past replays what is still in the ring and
// nothing older; after a restart of the node the ring starts empty. Each
// subscriber has a buffer of Config.ClientBuffer messages (default 4,096):
// a subscriber that falls that far behind is cut off (Subscription.Done)
// and ServeEvents ends its stream with a final "daemon error" message and
// an aborted response, never buffering without limit. While the Watch
// stream is down the Source reconnects with a backoff between
// Config.MinBackoff and Config.MaxBackoff; changes made meanwhile make no
// event (the Watch RPC cannot resume).
//
// # Concurrency
//
// Run owns the one goroutine that reads the Watch stream; it must be
// called once and ends with its context. Subscribe, Subscription's methods
// and ServeEvents are safe for concurrent use; ServeEvents runs on the
// caller's goroutine and ends at `until`, when ctx ends or the client goes
// away. The conversion functions are pure.
package events
