// Package metrics serves a node's observability endpoints on
// --metrics-addr (off by default, as dockerd's): /metrics in the
// Prometheus text format (client_golang), /healthz ("the process is up")
// and /readyz ("a manager has a leader and has applied what it
// acknowledged; an agent has a session"), so a load balancer in front of
// the managers can use them.
//
// It owns no metric itself: the node builds one registry, the packages
// that own state register their collectors on it (docs/metrics.md lists
// every metric), and this package serves it. It imports no project
// package.
//
// Concurrency: a Server is started once and closed once; Close waits for
// the serving goroutine. The registry's collectors run on scrape, in the
// HTTP handler's goroutine, and must be safe for concurrent use; the Ready
// function runs per /readyz request under the request's deadline.
package metrics
