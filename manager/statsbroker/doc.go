// Package statsbroker serves `shoal stats` for the whole swarm: a client's
// Stats.TaskStats becomes one StatsRequest per node that runs selected
// tasks, sent on the node's ListenStatsRequests stream; each agent reads its
// tasks' containers once and answers with PublishStats; the broker answers
// the client with what arrived, naming the nodes that did not.
//
// Nothing waits long: a round ends when every node asked has answered or
// after RoundTimeout, whichever comes first. Queues are bounded (a node
// whose queue is full is named, not waited for), and at most MaxRounds run
// at once. A node's answer counts only for the tasks it was asked about.
//
// Broker is safe for concurrent use. Run marks the leadership term: the
// listener streams end when the manager stops leading, so agents listen
// again on the new leader (where the managers forward Stats calls).
package statsbroker
