// Package orchestrator keeps services' tasks in line with their specs: it
// creates tasks for missing replicated slots and for eligible nodes of global
// services, applies restart policies (a restart is a new task in the same
// slot, after the restart delay, counted against max attempts across leader
// failovers because the count travels on the task), moves tasks off down and
// drained nodes, shuts down duplicates and tasks of removed services, and
// reaps history beyond the task history limit.
//
// Reconcile is a pure function from one service's state to the writes it
// needs; Orchestrator.Run is the leader-only loop around it, on a
// reconcile.Driver keyed by service ID: a full reconcile from a snapshot at
// start (and after a cut-off watch), then per event and at each service's
// requested wake-up. It runs in one goroutine owned by Run and stops when
// its context ends.
package orchestrator
