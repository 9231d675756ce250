// Package dashboard serves shoald's live web dashboard: one page (HTML,
// CSS and plain JavaScript embedded in the binary, nothing loaded from the
// internet) showing nodes, services, tasks, a live event feed and the
// managers' raft health, with a few actions (scale, rollback, drain or
// activate a node) behind a confirmation.
//
// Like dockerapi it is a client of the node's control socket: it reads
// with Control (ListNodes, ListServices, ListTasks), follows the store with
// Watch, writes with Control's UpdateService and UpdateNode, and keeps no
// state of its own beyond the fan-out of the watch stream. Words and states
// are the CLI's (Ready/Down, Active/Pause/Drain, Leader/Reachable/
// Unreachable, Running/Failed/...), converted once here (view.go).
//
// HTTP:
//
//	GET  /                     the page (or a login form with a token)
//	GET  /?token=TOKEN         sets the session cookie, redirects to /
//	GET  /api/state            every node, service and task, as views
//	GET  /api/events           server-sent events: one "change" per store change
//	POST /api/services/ID/scale     {"version":V,"replicas":N}
//	POST /api/services/ID/rollback  {"version":V}
//	POST /api/nodes/ID/availability {"version":V,"availability":"drain"}
//	POST /login                form field token: sets the session cookie
//
// Auth: Config.Token (bearer header, or the cookie set by the login form
// or the ?token= link) and/or Config.TLS. shoald always gives one of them;
// on loopback without either it keeps a token of its own (LocalToken,
// <data-dir>/dashboard-token, mode 0600). Without both, only loopback Host
// headers are answered (against DNS rebinding).
//
// Errors are JSON {"message": "..."} with a 4xx or 5xx status.
//
// # Concurrency
//
// Serve runs the HTTP server and one hub goroutine that follows the Watch
// stream (reconnecting with a bounded backoff) until its context ends; it
// returns after both stopped. Each events client gets a bounded queue
// (Config.ClientBuffer messages); a client that falls behind is cut off
// and its EventSource reconnects and reloads the state. Handlers may run
// concurrently; the hub's subscriber set is guarded by a mutex.
package dashboard
