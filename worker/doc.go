// Package worker is shoal's node agent, and the contract between the agent
// and a container runtime.
//
// controller.go holds the runtime contract: Executor (describe the node,
// make a Controller per task, list the containers it has), Controller
// (Prepare, Start, Wait, Shutdown, Terminate, Remove, Status, Close; every
// method idempotent, so a restarted agent can replay a lifecycle), LogSource,
// ExitError, Rejected and the ErrTask* sentinels. worker/containerd is the
// real implementation; worker/fakeexec is an in-memory one for tests of
// whole clusters (internal/testcluster), and the agent's own tests use a
// scripted fake.
//
// The rest is the Agent: New(Config), then Run(ctx).
//
// # Session
//
// The agent keeps one session with one manager at a time: a Dispatcher.Session
// stream (the first message carries the session ID, the node, the weighted
// manager list and the root CA; later ones update the list and the node),
// a Heartbeat call at once and then every period the manager names (5s until
// it names one), the Assignments stream, UpdateTaskStatus calls, and the
// LogBroker's ListenSubscriptions stream. A session ends when a stream
// fails or ends, when a call fails with NotFound or FailedPrecondition (the
// manager does not know the session: a new one is opened with the same
// manager, without the old ID), when MaxHeartbeatFailures heartbeats fail
// in a row, or when UpdateTaskStatus fails (MaxStatusTimeouts times in a
// row when it runs out of time: a manager answers once the reports are
// committed, and a leader loaded with writes answers late; the reports
// go again 1 s, 2 s later, in the same session). Any other end down-weights the
// manager (its weight halves per failure until a session with it succeeds)
// and the next session goes to another one, picked at random by weight
// (internal/remotes, which the scale harness's simulated nodes use too).
// Sessions are retried after a jittered exponential backoff, 100ms to 8s
// but never more than two heartbeat periods (a new leader gives known
// nodes six periods to come back), reset once a session has lasted longer
// than a heartbeat period. After a session that had been established ends
// on the managers' side, the first attempt waits a random time up to a
// fifth of the heartbeat period (reconnectSpread): a dead leader ends every
// agent's session at once, and thousands coming back within 100 ms slowed
// the election they were waiting for. Log subscriptions never end a session.
//
// # Tasks
//
// Each assigned task has one goroutine (a taskRunner) that makes all of its
// Controller calls and moves it forward: ACCEPTED, PREPARING (Prepare;
// ErrTaskPrepared counts as done; a Rejected error is REJECTED, other
// errors are retried PrepareRetries times with a doubling delay, then
// FAILED), READY (held there while the desired state is READY), STARTING
// (Start; ErrTaskStarted counts as started, never started twice), RUNNING
// (Wait), then COMPLETE on exit 0 or FAILED with the ExitError text and the
// exit code in the container status. A desired state of SHUTDOWN or above
// interrupts any step, shuts the process down (Shutdown, else Terminate)
// and reports SHUTDOWN unless the task had already ended; the container
// stays. A task whose service was removed (desired REMOVE with
// service_removed, set by the orchestrator) gets at most
// RemovedServiceStopGrace (1 min) from the moment the runner learns of it,
// also when a stop with the full grace period (an update, a scale-down) is
// already under way: Shutdown's context is then cancelled and Terminate
// kills the process; a controller implementing ServiceRemovedNotifier
// hears of the removal first (the routing mesh frees the published ports at
// once). Updates and scale-downs keep the full grace period. A desired state of REMOVE also removes the container, deletes the
// task from the db and reports SHUTDOWN if the task had not ended; a task
// no longer assigned is shut down, removed and forgotten without a report.
// Reported states only move forward; every report carries a timestamp from
// the injected clock and, once started, the container status.
//
// Status updates are batched: one pending update per task (the latest), sent
// every StatusFlushInterval or as soon as StatusBatchSize are pending, at
// most StatusBatchSize per call. Updates a call failed to deliver stay
// pending for the next session. When an assignment shows a status behind
// the agent's (an update lost with a session), the agent's is sent again.
//
// Each COMPLETE assignments message is the whole set: tasks held but not
// listed are removed, and then every container the Executor lists that
// belongs to no held task (an orphan) is shut down and removed. Nothing is
// removed for not being listed before a complete set has arrived. Secrets
// and configs are held in memory only.
//
// At start, Run loads the task db and resumes every task in it before any
// manager answers: controllers are made again (the executor finds the
// containers), a running task is waited on again, a task half-way through
// its lifecycle carries on. Its last status is sent again once a session
// opens.
//
// # Logs
//
// For each subscription the agent reads the lines of the tasks it holds
// that the selector names (by task, service, or this node), through a
// fresh controller of each task that implements LogSource, labels each
// line with its task, service and node, and sends them on a PublishLogs
// stream in batches (LogBatchSize lines, 1 MiB), then a message with
// close=true. Every subscription is answered with a close message, even one
// that matches no task here. With follow, lines stream until the manager
// closes the subscription or the stream ends; without, until the lines run
// out or LogTimeout passes.
//
// # Time
//
// Schedules (heartbeat period, backoff, status flushes, Prepare retries) and
// status timestamps use Config.Clock, so tests drive them with a fake clock.
// Deadlines of network calls are real time (context.WithTimeout): gRPC sends
// them to the server as durations. Every unary call has one (RPCTimeout; a
// heartbeat, its period); streams live as long as their session.
//
// # Concurrency
//
// Run owns every goroutine it starts and returns only when they have all
// returned: the session loop and one session's goroutines (session stream,
// heartbeat, assignments, status sender, log subscriptions and their
// readers), and one runner per held task. Controller calls for a task all
// come from its runner's goroutine, one at a time; log reads use a separate
// controller. Controllers must honour their context: stopping the agent
// cancels the calls in flight and waits for them. Stopping the agent
// leaves containers running. Node, RootCA and Managers are safe to call at
// any time.
//
// # Task db
//
// <DataDir>/tasks.db is a bbolt file, checked with internal/boltcheck before
// it is opened. It only caches what the managers and containerd know, so
// damage never stops the agent: a record that does not decode (or does not
// open with the key) is deleted and logged with the file and the task ID;
// a file beyond use (not a bbolt file, damaged pages, an unknown layout
// version) is moved aside to tasks.db.damaged-<UTC time>, logged, and
// replaced by an empty one. Either way the first complete set of
// assignments rebuilds the db: the tasks it lists are resumed from the
// managers' status onto the containers containerd still has (Prepare and
// Start answer ErrTaskPrepared and ErrTaskStarted, Wait re-attaches, so
// nothing runs twice) and the orphan sweep removes the other containers;
// "task db rebuilt" is logged then. Only if the damaged file cannot be
// moved does Run fail, with a *DamagedDBError that says to remove the file
// and restart (which leads to the same rebuild).
//
// With Config.TaskDBKey every value is sealed (taskdb_seal.go:
// 0x00 'S' '1' || AES-256-GCM of "<task ID>\0<value name>\0" + protobuf,
// with pki.Seal), and the layout version becomes 2. Plaintext values found
// at open are sealed and the file is then compacted into a new one, so no
// free page keeps the plaintext. Layout:
//
//	meta/
//	  version            "1" (plaintext values) or "2" (values may be
//	                     sealed); another version is moved aside
//	tasks/
//	  <task ID>/
//	    task             api.Task (protobuf) as last assigned, without status;
//	                     desired state REMOVE once its removal is decided
//	    status           api.TaskStatus (protobuf), the last one reported
//
// Every assignments message is written in one transaction before the task
// runners act on it; every status before it is queued for the manager; a
// task is deleted once its container is removed.
package worker
