// Package controlapi implements the Control gRPC service: validation of
// user specs with errors that say what is wrong and how to fix it, and the
// create/read/update/delete of services, tasks, nodes and the cluster on the
// replicated store. Network creation allocates the network's subnet (given,
// or cut from the cluster's address pools; never overlapping another
// network or a node's local subnet), gateway, range, MTU and VNI in the
// same write; task addresses are the allocator's (manager/allocator).
//
// The server runs on the leader only; the manager forwards calls that reach
// a follower (manager.Forwarder). Every write is one store transaction, so a
// failed call changes nothing. Reads see the leader's store, which has
// applied every acknowledged write: the manager's interceptor makes every
// call wait for a read barrier first (raft ReadIndex), so a deposed leader
// that still believes it leads fails the call rather than answer from a stale
// store. Server is safe for concurrent use.
package controlapi
