// Package containerd is shoal's container executor: it implements
// worker.Executor, and per task worker.Controller and worker.LogSource, on
// containerd (client v2.0, speaking to Debian's containerd 1.6 and later).
// It is the only package of shoal that imports the containerd client.
//
// # What a task becomes
//
// Prepare pulls the task's image (plain HTTP for loopback registries and
// Config.InsecureRegistries), unpacks it with the overlayfs snapshotter, and
// creates a container whose ID is the task ID, with an OCI spec built from
// the ContainerSpec the way Docker combines it with the image config
// (command replaces the entrypoint and drops the image's cmd; args replace
// the cmd; image env then spec env; workdir, user, hostname defaulting to the
// first 12 characters of the task ID; read-only rootfs; bind, tmpfs and
// local volume mounts; memory, CFS quota and pids limits). Go templates in
// the hostname, env values and mount sources are expanded
// ({{.Service.ID}} {{.Service.Name}} {{.Service.Labels}} {{.Node.ID}}
// {{.Node.Hostname}} {{.Task.ID}} {{.Task.Name}} {{.Task.Slot}}).
//
// Every task has its own network namespace, joined by a veth pair to the
// node-local bridge (Config.Bridge, default shoal0) with an address from the
// node's subnet, a default route via the bridge, and /etc/hosts,
// /etc/resolv.conf and /etc/hostname written by the executor and
// bind-mounted read-only.
//
// Start subscribes to the exit before starting the process; Wait returns nil
// on exit 0 and a *worker.ExitError otherwise (Cause "OOM killed" when the
// memory cgroup recorded an OOM kill); Shutdown sends the stop signal (spec,
// else image, else SIGTERM), then SIGKILL after the stop grace period
// (default 10s); Terminate sends SIGKILL; Remove deletes everything.
// An image the registry does not know and an invalid spec are
// worker.Rejected; other failures are transient.
//
// # Restarts
//
// The executor keeps no state in memory that matters: a new Executor and a
// new Controller for an existing task find its container (Prepare answers
// worker.ErrTaskPrepared, Start worker.ErrTaskStarted once the process runs
// or ran), and Wait attaches to the running process or returns the status of
// one that exited while no daemon watched (the runc shim keeps it until the
// task is removed). Tasks lists the task IDs of all containers of the
// namespace by label, so the agent removes the ones it no longer owns.
//
// # Concurrency
//
// An Executor is safe for concurrent use; concurrent pulls of one image
// share one transfer. A controller's methods are called from one goroutine
// at a time, except that Wait may run while Shutdown, Terminate or Status is
// called from another, as the worker.Controller contract says. Several
// Executors may share one DataDir (a restarted daemon beside a lingering
// one): the address allocator locks its file for each operation.
//
// # Labels
//
// Every container carries:
//
//	io.shoal.node.id     the node that created it (Config.NodeID or the task's node)
//	io.shoal.service.id  the task's service
//	io.shoal.task.id     the task (also the container ID)
//	io.shoal.stop-signal the resolved stop signal, as a number
//
// plus the spec's container labels, which cannot override these.
//
// # On-disk layout
//
//	<DataDir>/                    Config.DataDir, default /var/lib/shoal/executor
//	  network.json               {"bridge","subnet"}: the chosen subnet, kept across restarts
//	  ipam.json                  {"subnet","last","allocated":{taskID: IP}}, rewritten atomically
//	  ipam.lock                  flock serializing ipam.json updates
//	  logs/<taskID>.log          the task's stdout and stderr, written by the shim
//	  netns/<taskID>             bind mount of the task's network namespace
//	  tasks/<taskID>/hosts       bind-mounted at /etc/hosts
//	  tasks/<taskID>/resolv.conf bind-mounted at /etc/resolv.conf
//	  tasks/<taskID>/hostname    bind-mounted at /etc/hostname
//	  tasks/<taskID>/started     marker: the process was created (survives a reboot)
//	  tasks/<taskID>/volumes/    anonymous volumes of the task
//	  volumes/<name>/_data       named local volumes; they outlive tasks
//
// Remove deletes the task's log, netns, tasks/<taskID> and address; named
// volumes and pulled images stay.
//
// # Limits
//
// Logs have no per-line timestamps and mix stdout and stderr (cio.LogFile);
// health checks, secrets, configs, init, tty and stdin are not handled here
// yet.
package containerd
