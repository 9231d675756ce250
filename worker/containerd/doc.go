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
// A task on overlay networks (Task.networks, filled by the allocator) needs
// Config.Overlay (the node's overlay.Agent; without it the task is
// rejected: "this node has no overlay support configured"). Prepare
// attaches it after eth0 (eth1, eth2, … one per network; eth0 keeps the
// default route, and the bridge masquerades its egress) and points its
// resolv.conf at the embedded server 127.0.0.11 with options ndots:0 (the
// user's --dns servers, search domains and options kept after it). Start
// publishes it (Serving) once the process runs and, with a health check,
// has passed a probe; Shutdown withdraws it from DNS and the VIPs and waits
// for that to spread (Draining) before the stop signal; Terminate and any
// exit withdraw it at once (Gone); Remove and a failed Prepare detach it.
// A controller re-created after a daemon restart re-attaches and
// republishes a running task. Status lists the overlay addresses after the
// bridge's, and Describe reports the data path address.
//
// Start subscribes to the exit before starting the process; Wait returns nil
// on exit 0 and a *worker.ExitError otherwise (Cause "OOM killed" when the
// memory cgroup recorded an OOM kill); Shutdown sends the stop signal (spec,
// else image, else SIGTERM), then SIGKILL after the stop grace period
// (default 10s); Terminate sends SIGKILL; Remove deletes everything.
// An image the registry does not know and an invalid spec are
// worker.Rejected; other failures are transient.
//
// # Health checks
//
// The health check is ContainerSpec.healthcheck merged over the image's
// (Healthcheck of the Docker image config, read from the raw config blob):
// an empty test inherits the image's test, each zero timing the image's
// value, as Docker merges them; then the defaults apply (interval 30s,
// timeout 30s, retries 3, no start period). A test of ["NONE"] (the CLI's
// --no-healthcheck) disables it; ["CMD", args...] runs args and
// ["CMD-SHELL", cmd] runs /bin/sh -c cmd; another type, a negative timing
// or one below 1ms is an invalid spec. Prepare records the resolved check
// in tasks/<taskID>/health.json.
//
// A probe is an exec in the container (task.Exec with the container's own
// spec.Process, args replaced, so user, env and working directory match):
// subscribe, start, read the exit code, delete the exec process. Exit 0
// passes; anything else fails, and so does a probe still running after the
// timeout (it is killed; the output is "Health check exceeded timeout
// (30s)"). The first 4 KiB of a probe's output are kept for messages.
// The first probe runs one interval after the process started, each next
// one an interval after the previous ended; while no probe has passed and
// the start period runs, the start interval replaces the interval when it
// is set. A failure before the first pass that began within the start
// period does not count; any other failure counts, a pass resets the count,
// and retries consecutive counted failures make the task unhealthy.
//
// Start returns only once a probe passed, so the agent reports RUNNING
// only when the task is healthy. If the task turns unhealthy first, Start
// kills it (SIGKILL) and fails with "container unhealthy: <last probe
// output>" (the agent reports FAILED); if the process exits first, Start
// returns its exit (nil for 0, as moby does); if Start's context ends, it
// returns the context's error. After the first pass the controller's
// monitor goroutine keeps probing; when the task turns unhealthy it is
// killed with SIGKILL and Wait returns a *worker.ExitError with the exit
// code (137) and the cause "container unhealthy: <output>". The monitor
// stops on Shutdown, Terminate, Remove and Close (a stopping process is not
// an unhealthy one) and when the process exits. Health state lives only in
// the controller: a controller re-created after a restart (Start answers
// worker.ErrTaskStarted) resumes probing in Wait, counting the start period
// from the started marker's time.
//
// # Logs
//
// Where a task's output goes is fixed at Prepare, from the task spec's log
// driver (TaskSpec.log_driver, Docker's --log-driver/--log-opt) over the
// node's defaults (Config.LogMaxSize, LogMaxFile; package logopt), and
// kept in tasks/<taskID>/log.json with the file's path: json-file and
// local (or no driver named) mean records in rotated files; none means
// cio.NullIO (the output goes to /dev/null, and Logs returns
// ErrLogsDisabled, "configured logging driver does not support reading");
// another driver or a bad option is an invalid spec (rejected).
//
// With Config.LogDriver set (the daemon always sets it, to shoal-logdriver),
// the task's process is created with cio.BinaryIO: the shim starts the
// driver beside the process, with its stdout and stderr pipes (package
// logdriver), writing <LogDir>/<taskID>.cri and rotating it to .cri.1 …
// .cri.(max-file-1) at max-size. The driver is the shim's child, so it
// keeps writing while shoald restarts or is down; it exits when the task is
// deleted. It appends one record per line in the CRI log format (the
// kubelet's):
//
//	2025-05-06T07:08:09.123456789Z stdout F a full line
//	2025-05-06T07:08:09.123456789Z stderr P the first 16 KiB of a longer line
//
// that is the time the driver read the line (RFC 3339, nanoseconds, UTC),
// the stream, F for a line's end or P for a piece (a line longer than
// 16 KiB, a line left unfinished for 500ms, or output that ends without a
// newline), and the bytes of the line without its newline. Records are in
// time order across the streams. Logs sends each record as a message with
// its time and stream, from the oldest file on (logdriver.Read); Since
// compares record times; Tail counts records across the files; Follow goes
// on across rotations; a record that does not decode is skipped.
//
// Without a LogDriver (tools and tests of other packages), and for tasks
// created before shoal had the driver, the shim writes the output into the
// plain file <LogDir>/<taskID>.log (cio.LogFile): both streams mixed, as
// STDOUT, lines stamped with the file's modification time, and no size
// limit. The shim (1.6 and 2.0) can lose stderr output written just before
// the process exits there: its stdout copier closes the file both share at
// its EOF.
//
// # Secrets and configs
//
// Prepare takes each referenced secret and config from the
// worker.Dependencies given to Executor.Controller; one that is missing is a
// transient error, "secret NAME (ID) is not assigned to this node" (the
// agent retries Prepare). It mounts a tmpfs (nosuid, nodev, noexec, mode
// 0700, 1 MiB plus the data, private propagation) at
// tasks/<taskID>/secrets, checks that it is a tmpfs, writes the files with
// their uid, gid (default 0) and mode (default 0444), and remounts it
// read-only. Secret bytes are written nowhere else. A secret whose file name
// (default: the secret's name) is relative appears at /run/secrets/<name>,
// through one read-only bind mount of the tmpfs's run/ directory; a config
// appears at its file name (default /<config name>; relative names are
// relative to /), as does a secret with an absolute file name, each through
// a read-only bind mount of its own file. Remove unmounts the tmpfs by path,
// so it works after a restart; a re-created controller finds the mounts as
// they are.
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
//	  logs/                      Config.LogDir, default <DataDir>/logs (shoald --log-dir)
//	    <taskID>.cri             the task's output as records, written by the log driver
//	    <taskID>.cri.1 …         its rotated files, the oldest last (at most max-file in all)
//	    <taskID>.log             the task's output as plain text, written by the shim (no LogDriver)
//	  netns/<taskID>             bind mount of the task's network namespace
//	  tasks/<taskID>/hosts       bind-mounted at /etc/hosts
//	  tasks/<taskID>/resolv.conf bind-mounted at /etc/resolv.conf
//	  tasks/<taskID>/hostname    bind-mounted at /etc/hostname
//	  tasks/<taskID>/started     marker: the process was created (survives a reboot); its time is the process's start
//	  tasks/<taskID>/health.json the resolved health check, when the task has one
//	  tasks/<taskID>/log.json    where the task's output goes: kind, path, max size and files
//	  tasks/<taskID>/secrets/    tmpfs, read-only once filled: run/<name> (bind-mounted at /run/secrets)
//	                             and files/<n> (each bind-mounted at a config's or absolute secret's target)
//	  tasks/<taskID>/volumes/    anonymous volumes of the task
//	  volumes/<name>/_data       named local volumes; they outlive tasks
//	  volumes/<name>/volume.json {"created_at","labels","options"}: what `volume inspect` shows,
//	                             written by `volume create` or by the first mount that made it
//
// Remove deletes the task's log (every file of it, wherever log.json
// says), netns, tasks/<taskID> (unmounting the secrets tmpfs first) and
// address; named volumes and pulled images stay.
//
// # Volumes
//
// ListVolumes, GetVolume, CreateVolume, RemoveVolume and PruneVolumes
// manage the named volumes (volumes.go); a task's anonymous volumes are
// part of the task and go with its Remove. A volume is in use while any
// container of the namespace (running or stopped, until removed)
// bind-mounts its _data; RemoveVolume and PruneVolumes refuse or skip it
// ("remove NAME: volume is in use - [task IDs]"). A Prepare holds the
// volume lock shared from making its volume directories until its
// container exists, and removals hold it exclusively, so a removal racing
// a task start never deletes data under a container.
//
// # Limits
//
// Log records are not fsynced (a crash of the machine may lose the last
// ones). Without a LogDriver, logs have no per-line timestamps, mix stdout
// and stderr and have no size limit. A reader following a log that rotates
// more than max-file-1 times between two of its polls (200ms) misses the
// files dropped meanwhile, as Docker's does. Init, tty and
// stdin are not handled here yet. The health status itself
// is not reported to the managers (only RUNNING after the first passing
// probe, FAILED when unhealthy). Secrets and configs are written once, at
// Prepare: a changed secret needs a new task, as in swarm.
package containerd
