// Package scheduler is shoal's placement engine: given the cluster as a
// View and a batch of pending tasks, it decides which node runs each task,
// or why none can.
//
// # Pure and single-owner
//
// The package does no I/O, starts no goroutines and reads no clock: the
// caller passes the time, and ties between equal nodes break on a hash of
// node and service IDs, so the same view and the same pending tasks always
// give the same Plan. It imports only proto, errdefs and the standard
// library. The manager wraps it in its scheduler loop, which owns the View:
// a View is not safe for concurrent use.
//
// The View is maintained incrementally. The loop feeds it every store event
// (UpsertNode, RemoveNode, UpsertTask, RemoveTask) and every task failure
// (RecordFailure); each costs O(1) amortized. A node whose task count or
// schedulability changed is moved in each load index that holds it (the
// view's and at most 32 shared ones, see below), O(log nodes) each, once,
// when the next Schedule call needs the indexes. Schedule records its own
// placements in the view, so the next call sees them before the store does;
// an assignment the manager fails to commit is released by feeding the task
// back as stored. The loop looks like:
//
//	plan := view.Schedule(pending, now)
//	// propose plan.Assigned; write plan.Unplaced reasons into task status;
//	// UpsertTask(stored) for any assignment that did not commit.
//
// # Groups
//
// Pending tasks are grouped by (ServiceID, SpecVersion); a group shares one
// spec, so the filters run at most once per node per group, not per task,
// and each node's result is how many tasks of the group it can take. Tasks that
// already name a node (global services) are only validated on that node;
// they are decided before free tasks, since they can go nowhere else.
//
// # Filters
//
// In this fixed order, each refusing a node with a reason Docker users
// know:
//
//  1. ready: the node's status is READY ("N nodes not ready");
//  2. availability: ACTIVE; paused and drained nodes take nothing new;
//  3. platform: the node's OS/architecture is one the service lists;
//  4. constraints: node.id, node.hostname, node.role, node.platform.os,
//     node.platform.arch, node.labels.*, engine.labels.* with == and !=
//     (see ParseConstraints);
//  5. resources: CPU, memory and generic reservations against the node's
//     resources minus the reservations of tasks already there;
//  6. host ports: host-mode published ports free on the node (one task of
//     the group per node);
//  7. max replicas: Placement.max_replicas tasks of the service per node.
//
// The first four depend only on the node; the last three bound how many
// tasks fit. A node refused by several filters counts under the first, and
// the counts make the reason of a task left pending: "no suitable node
// (scheduling constraints not satisfied on 3 nodes; insufficient resources
// on 2 nodes)".
//
// # Scoring
//
// Among the nodes that fit, spread preferences come first: the group's
// tasks are divided among the values of the first preference's label
// (nodes without the label form their own branch) so that every value ends
// with as even a count of the service's tasks as capacity allows, counting
// tasks already there; each value's share is divided by the next
// preference the same way. Within a branch, each task goes to the node
// that ranks first by:
//
//  1. not having seen 5 or more failures of the service in the last 5
//     minutes (such nodes come last);
//  2. fewest tasks of the service;
//  3. fewest tasks in all;
//  4. the node's place on a hash ring (a hash of its ID), counted from the
//     service's own point on the ring (a hash of the service ID), so that
//     services tied on the same nodes do not all pick the same one;
//  5. the node ID.
//
// Ranking uses a heap, so a task costs O(log nodes). Only reservations
// count, never measured usage; nothing already placed is ever moved.
//
// # Cost of a group
//
// A group with spread preferences, or one that may not fit, costs one pass
// over the nodes plus O(tasks · log nodes). A group of k tasks without
// preferences first tries the load index: the view keeps its READY, ACTIVE
// nodes in a balanced tree ordered by (tasks in all, ring position), which
// is exactly the rank of a node where the service has no task and no
// recent failures. The nodes where the service has tasks or failures are
// looked at one by one; the others are walked in the tree's order, from
// the service's point on the ring within each task count, through the
// filters, until k of them can take a task: only those can receive any of
// the group's tasks, so the plan is the one the full pass gives, at
// O((k + nodes skipped by the filters) · log nodes). If the walk runs out
// of nodes or looks at more than an eighth of them, the group takes the
// full pass, which also counts the refusals for the reason.
//
// The static filters (1–4) read only the nodes and the group's platforms
// and constraints, so groups equal in those share one pass of them: the
// nodes that pass, the refusal counts, and, once a group walks it, a load
// index of just those nodes (so a constraint that few nodes meet costs the
// walk nothing for the others). A shared pass lives until a node changes;
// at most 32 are kept, and the view keeps each one's index current as task
// counts change, at O(log nodes) each. The rest is per group: the
// service's tasks and failures per node, max replicas, resources and host
// ports (which the groups placed before change). A pass is shared when
// another group of the same Schedule call has the same platforms and
// constraints, or a full pass made one.
package scheduler
