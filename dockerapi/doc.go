// Package dockerapi serves the Docker Engine API (the swarm subset) over
// HTTP, so that the docker CLI, the docker SDKs and tools built on them
// (Prometheus' dockerswarm_sd, Traefik, Portainer, ...) drive shoal
// unchanged: DOCKER_HOST=unix:///run/shoal/docker.sock.
//
// The gateway is a client of the manager like the shoal CLI: it translates
// each request into calls of the Control, LocalNode, Logs and Watch gRPC
// services on the node's own control socket, and their answers into the
// types of github.com/moby/moby/api (conversion in dockerapi/convert). It
// keeps no state of its own but the event ring of GET /events (package
// dockerapi/events, bounded, in memory).
//
// Files: server.go (Config, Server: listeners, unix socket permissions,
// mTLS TCP, graceful stop), router.go (version negotiation, routes, the one
// handler signature, request deadlines), errors.go (the one mapping of
// errors to HTTP statuses and docker's messages), decode.go (strict JSON
// bodies with a size limit), lookup.go ({id} as full ID, name or unique ID
// prefix), system.go (/_ping, /version, /info), swarm.go (/swarm/*),
// nodes.go, services.go (/services and /tasks), logs.go (service and task
// logs: one Logs subscription per request, streamed as docker's multiplexed
// frames), distribution.go (/distribution: the only handler that talks to
// something else than the node, an image registry, under the request
// deadline), secrets.go (secrets and configs), networks.go, events.go (GET
// /events and the watcher that follows the manager only while this node is
// one), volumes.go (/volumes: this node's local volumes, through the
// control socket's Volumes service; a volume in use is 409 as in dockerd),
// unsupported.go (what shoal does not serve: 501 naming the swarm
// equivalent).
//
// Concurrency: a Server serves requests concurrently; handlers share only
// the gRPC clients, which are safe for concurrent use. Serve owns every
// goroutine it starts (one per listener, net/http's per connection, and
// the event source's, which follows the manager's Watch stream once this
// node serves the control API, checking every second or when a swarm
// init, join or unlock through the gateway wakes it) and returns after
// they end: when its context ends it stops accepting,
// gives requests in flight Config.ShutdownGrace to finish, then closes the
// rest (streams end when their client goes away or the server stops). Every
// request except streams runs under Config.RequestTimeout.
package dockerapi
