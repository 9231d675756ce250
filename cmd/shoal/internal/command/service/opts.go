package service

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	"github.com/shoal-project/shoal/internal/logopt"
	api "github.com/shoal-project/shoal/proto"
)

// Flag names shared by `service create` and `service update`.
const (
	flagName               = "name"
	flagMode               = "mode"
	flagReplicas           = "replicas"
	flagMaxConcurrent      = "max-concurrent"
	flagWorkdir            = "workdir"
	flagUser               = "user"
	flagHostname           = "hostname"
	flagEntrypoint         = "entrypoint"
	flagInit               = "init"
	flagReadOnly           = "read-only"
	flagStopGracePeriod    = "stop-grace-period"
	flagStopSignal         = "stop-signal"
	flagLimitCPU           = "limit-cpu"
	flagLimitMemory        = "limit-memory"
	flagLimitPids          = "limit-pids"
	flagReserveCPU         = "reserve-cpu"
	flagReserveMemory      = "reserve-memory"
	flagRestartCondition   = "restart-condition"
	flagRestartDelay       = "restart-delay"
	flagRestartMaxAttempts = "restart-max-attempts"
	flagRestartWindow      = "restart-window"
	flagHealthCmd          = "health-cmd"
	flagHealthInterval     = "health-interval"
	flagHealthTimeout      = "health-timeout"
	flagHealthRetries      = "health-retries"
	flagHealthStartPeriod  = "health-start-period"
	flagHealthStartIntv    = "health-start-interval"
	flagNoHealthcheck      = "no-healthcheck"
	flagEndpointMode       = "endpoint-mode"
	flagMaxPerNode         = "replicas-max-per-node"
	flagLogDriver          = "log-driver"
	flagLogOpt             = "log-opt"
	flagDetach             = "detach"
	flagQuiet              = "quiet"
)

// updateFlags are the --update-* or --rollback-* settings.
type updateFlags struct {
	prefix          string // "update" or "rollback"
	parallelism     uint64
	delay           opts.Duration
	monitor         opts.Duration
	failureAction   *opts.Enum
	maxFailureRatio opts.Ratio
	order           *opts.Enum
}

func (u *updateFlags) flag(name string) string { return u.prefix + "-" + name }

// names lists the flags of this group.
func (u *updateFlags) names() []string {
	var out []string
	for _, n := range []string{"parallelism", "delay", "monitor", "failure-action", "max-failure-ratio", "order"} {
		out = append(out, u.flag(n))
	}
	return out
}

// serviceOptions are the flags of create and update: scalars are shared;
// list flags exist as plain lists on create and as -add/-rm on update.
type serviceOptions struct {
	name          string
	mode          *opts.Enum
	replicas      uint64
	maxConcurrent uint64

	workdir    string
	user       string
	hostname   string
	entrypoint string
	init       bool
	readOnly   bool
	stopGrace  opts.Duration
	stopSignal string

	limitCPU   opts.NanoCPUs
	limitMem   opts.MemBytes
	limitPids  int64
	reserveCPU opts.NanoCPUs
	reserveMem opts.MemBytes

	restartCondition   *opts.Enum
	restartDelay       opts.Duration
	restartMaxAttempts uint64
	restartWindow      opts.Duration

	update   updateFlags
	rollback updateFlags

	healthCmd           string
	healthInterval      opts.Duration
	healthTimeout       opts.Duration
	healthRetries       int
	healthStartPeriod   opts.Duration
	healthStartInterval opts.Duration
	noHealthcheck       bool

	endpointMode *opts.Enum
	maxPerNode   uint64

	logDriver string
	logOpts   *opts.ListOpts

	detach           bool
	quiet            bool
	withRegistryAuth bool
	noResolveImage   bool

	// create-only list flags
	env              *opts.ListOpts
	envFile          *opts.ListOpts
	labels           *opts.ListOpts
	containerLabels  *opts.ListOpts
	capAdd           *opts.ListOpts
	capDrop          *opts.ListOpts
	sysctls          *opts.ListOpts
	ulimits          *opts.ListOpts
	constraints      *opts.ListOpts
	placementPrefs   *opts.ListOpts
	dns              *opts.ListOpts
	dnsSearch        *opts.ListOpts
	dnsOptions       *opts.ListOpts
	hosts            *opts.ListOpts
	groups           *opts.ListOpts
	genericResources *opts.ListOpts
	publish          *opts.PortOpt
	mounts           *opts.MountOpt
	secrets          *opts.FileRefOpt
	configs          *opts.FileRefOpt
	networks         *opts.NetworkOpt
}

func newServiceOptions() *serviceOptions {
	newUpdate := func(prefix string) updateFlags {
		return updateFlags{
			prefix:        prefix,
			failureAction: opts.NewEnum("", "pause", "continue", "rollback"),
			order:         opts.NewEnum("", "start-first", "stop-first"),
		}
	}
	o := &serviceOptions{
		mode:             opts.NewEnum("replicated", "replicated", "global", "replicated-job", "global-job"),
		restartCondition: opts.NewEnum("", "none", "on-failure", "any"),
		endpointMode:     opts.NewEnum("vip", "vip", "dnsrr"),
		update:           newUpdate("update"),
		rollback:         newUpdate("rollback"),
		env:              opts.NewListOpts(opts.ValidateEnv),
		envFile:          opts.NewListOpts(nil),
		labels:           opts.NewListOpts(opts.ValidateLabel),
		containerLabels:  opts.NewListOpts(opts.ValidateLabel),
		capAdd:           opts.NewListOpts(nil),
		capDrop:          opts.NewListOpts(nil),
		sysctls:          opts.NewListOpts(opts.ValidateKeyValue),
		ulimits:          opts.NewListOpts(opts.ValidateUlimit),
		constraints:      opts.NewListOpts(opts.ValidateConstraint),
		placementPrefs:   opts.NewListOpts(opts.ValidatePlacementPref),
		dns:              opts.NewListOpts(opts.ValidateIP),
		dnsSearch:        opts.NewListOpts(opts.ValidateNotEmpty),
		dnsOptions:       opts.NewListOpts(nil),
		hosts:            opts.NewListOpts(opts.ValidateExtraHost),
		groups:           opts.NewListOpts(opts.ValidateNotEmpty),
		genericResources: opts.NewListOpts(opts.ValidateGenericResource),
		publish:          &opts.PortOpt{},
		mounts:           &opts.MountOpt{},
		secrets:          &opts.FileRefOpt{Kind: "secret"},
		configs:          &opts.FileRefOpt{Kind: "config"},
		networks:         &opts.NetworkOpt{},
		logOpts:          opts.NewListOpts(opts.ValidateKeyValue),
	}
	return o
}

// addServiceFlags defines the scalar flags common to create and update.
func addServiceFlags(flags *pflag.FlagSet, o *serviceOptions) {
	flags.BoolVarP(&o.detach, flagDetach, "d", false, "Exit immediately instead of waiting for the service to converge")
	flags.BoolVarP(&o.quiet, flagQuiet, "q", false, "Suppress progress output")

	flags.Uint64Var(&o.replicas, flagReplicas, 0, "Number of tasks")
	flags.Uint64Var(&o.maxConcurrent, flagMaxConcurrent, 0, "Number of job tasks to run concurrently (default equal to --replicas)")
	flags.StringVarP(&o.workdir, flagWorkdir, "w", "", "Working directory inside the container")
	flags.StringVarP(&o.user, flagUser, "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	flags.StringVar(&o.hostname, flagHostname, "", "Container hostname")
	flags.StringVar(&o.entrypoint, flagEntrypoint, "", "Overwrite the default ENTRYPOINT of the image")
	flags.BoolVar(&o.init, flagInit, false, "Use an init inside each service container to forward signals and reap processes")
	flags.BoolVar(&o.readOnly, flagReadOnly, false, "Mount the container's root filesystem as read only")
	flags.Var(&o.stopGrace, flagStopGracePeriod, "Time to wait before force killing a container (ns|us|ms|s|m|h) (default 10s)")
	flags.StringVar(&o.stopSignal, flagStopSignal, "", "Signal to stop the container")

	flags.Var(&o.limitCPU, flagLimitCPU, "Limit CPUs")
	flags.Var(&o.limitMem, flagLimitMemory, "Limit Memory")
	flags.Int64Var(&o.limitPids, flagLimitPids, 0, "Limit maximum number of processes (default 0 = unlimited)")
	flags.Var(&o.reserveCPU, flagReserveCPU, "Reserve CPUs")
	flags.Var(&o.reserveMem, flagReserveMemory, "Reserve Memory")

	flags.Var(o.restartCondition, flagRestartCondition, `Restart when condition is met ("none", "on-failure", "any") (default "any")`)
	flags.Var(&o.restartDelay, flagRestartDelay, "Delay between restart attempts (ns|us|ms|s|m|h) (default 5s)")
	flags.Uint64Var(&o.restartMaxAttempts, flagRestartMaxAttempts, 0, "Maximum number of restarts before giving up")
	flags.Var(&o.restartWindow, flagRestartWindow, "Window used to evaluate the restart policy (ns|us|ms|s|m|h)")

	for _, u := range []*updateFlags{&o.update, &o.rollback} {
		what := "updated"
		if u.prefix == "rollback" {
			what = "rolled back"
		}
		flags.Uint64Var(&u.parallelism, u.flag("parallelism"), 1, "Maximum number of tasks "+what+" simultaneously (0 to "+u.prefix+" all at once)")
		flags.Var(&u.delay, u.flag("delay"), "Delay between task "+u.prefix+"s (ns|us|ms|s|m|h) (default 0s)")
		flags.Var(&u.monitor, u.flag("monitor"), "Duration after each task "+u.prefix+" to monitor for failure (ns|us|ms|s|m|h) (default 5s)")
		actions := `("pause", "continue", "rollback")`
		if u.prefix == "rollback" {
			u.failureAction.Allowed = []string{"pause", "continue"}
			actions = `("pause", "continue")`
		}
		flags.Var(u.failureAction, u.flag("failure-action"), "Action on "+u.prefix+" failure "+actions+` (default "pause")`)
		flags.Var(&u.maxFailureRatio, u.flag("max-failure-ratio"), "Failure rate to tolerate during "+article(u.prefix)+" "+u.prefix)
		flags.Var(u.order, u.flag("order"), titleOrder(u.prefix)+` order ("start-first", "stop-first") (default "stop-first")`)
	}

	flags.StringVar(&o.healthCmd, flagHealthCmd, "", "Command to run to check health")
	flags.Var(&o.healthInterval, flagHealthInterval, "Time between running the check (ms|s|m|h)")
	flags.Var(&o.healthTimeout, flagHealthTimeout, "Maximum time to allow one check to run (ms|s|m|h)")
	flags.IntVar(&o.healthRetries, flagHealthRetries, 0, "Consecutive failures needed to report unhealthy")
	flags.Var(&o.healthStartPeriod, flagHealthStartPeriod, "Start period for the container to initialize before counting retries towards unstable (ms|s|m|h)")
	flags.Var(&o.healthStartInterval, flagHealthStartIntv, "Time between running the check during the start period (ms|s|m|h)")
	flags.BoolVar(&o.noHealthcheck, flagNoHealthcheck, false, "Disable any container-specified HEALTHCHECK")

	flags.Var(o.endpointMode, flagEndpointMode, `Endpoint mode ("vip", "dnsrr")`)
	flags.Uint64Var(&o.maxPerNode, flagMaxPerNode, 0, "Maximum number of tasks per node (default 0 = unlimited)")

	flags.StringVar(&o.logDriver, flagLogDriver, "", `Logging driver for service ("json-file", "local" or "none"; default: the node's, json-file)`)
	flags.Var(o.logOpts, flagLogOpt, "Logging driver options (max-size=10m, max-file=3; default: the node's, 10MiB and 3)")

	flags.BoolVar(&o.withRegistryAuth, "with-registry-auth", false, "Send registry authentication details to swarm agents (accepted for compatibility; shoal has no registry credentials yet)")
	flags.BoolVar(&o.noResolveImage, "no-resolve-image", false, "Do not query the registry to resolve image digest and supported platforms")
	annotateLimits(flags)
}

func article(prefix string) string {
	if prefix == "update" {
		return "an"
	}
	return "a"
}

func titleOrder(prefix string) string {
	if prefix == "update" {
		return "Update"
	}
	return "Rollback"
}

// healthFlags are the flags that shape a health check.
var healthFlags = []string{flagHealthCmd, flagHealthInterval, flagHealthTimeout, flagHealthRetries, flagHealthStartPeriod, flagHealthStartIntv}

// anyChanged tells whether one of names was given.
func anyChanged(flags *pflag.FlagSet, names ...string) bool {
	for _, n := range names {
		if flags.Changed(n) {
			return true
		}
	}
	return false
}

func dur(d opts.Duration) time.Duration { return time.Duration(d) }

// logDriverSpec is the TaskSpec's log driver of --log-driver name and the
// --log-opt values, checked as the managers check it; nil when both are
// empty (the node's default applies). Unlike Docker's CLI, --log-opt
// without --log-driver is not ignored: the options apply to the node's
// default driver.
func logDriverSpec(name string, kvs []string) (*api.Driver, error) {
	options, err := logopt.ParseKV(kvs)
	if err != nil {
		return nil, err
	}
	if _, err := logopt.Parse(name, options); err != nil {
		return nil, err
	}
	if name == "" && len(options) == 0 {
		return nil, nil
	}
	if len(options) == 0 {
		options = nil
	}
	return &api.Driver{Name: name, Options: options}, nil
}
