// Package volume holds `shoal volume create|ls|inspect|rm|prune`, Docker's
// commands for the local volumes of the node the CLI talks to (the
// daemon's Volumes service on its control socket). Volumes are per node,
// as each Docker daemon has its own: service mounts of type volume make
// them on the nodes their tasks run on. Inspect prints Docker's
// volume.Volume JSON; rm refuses a volume a container of the node uses,
// with dockerd's words.
package volume

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/volume"
	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	"github.com/shoal-project/shoal/dockerapi/convert"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

// NewCommand returns `shoal volume`.
func NewCommand(cli *command.Cli) *cobra.Command {
	return command.NewGroup("volume", "Manage volumes",
		newCreateCommand(cli), newListCommand(cli), newInspectCommand(cli), newRemoveCommand(cli), newPruneCommand(cli))
}

// client returns the Volumes client of the daemon's control socket.
func client(cli *command.Cli) (api.VolumesClient, error) {
	c, err := cli.Client()
	if err != nil {
		return nil, err
	}
	return c.Volumes, nil
}

// noSuchVolume is Docker's CLI wording of a volume the daemon does not know.
func noSuchVolume(name string) string { return "Error: No such volume: " + command.Ref(name) }

func newCreateCommand(cli *command.Cli) *cobra.Command {
	var (
		driver, name string
		labels       = opts.NewListOpts(opts.ValidateLabel)
		options      = opts.NewListOpts(nil)
	)
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Long: "Create a volume\n\n" +
			"The volume is a directory on this node (the node the CLI talks to). Without a\n" +
			"name it is anonymous: `volume prune` removes it once no container uses it.",
		Args: command.MaxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if name != "" && name != args[0] {
					return fmt.Errorf("conflicting options: either specify --name or provide positional arg, not both")
				}
				name = args[0]
			}
			c, err := client(cli)
			if err != nil {
				return err
			}
			resp, err := c.Create(cmd.Context(), &api.CreateVolumeRequest{
				Name: name, Driver: driver, Labels: opts.KVMap(labels.GetAll()), Options: opts.KVMap(options.GetAll()),
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(cli.Out, resp.GetVolume().GetName())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&driver, "driver", "d", "local", "Specify volume driver name")
	f.StringVar(&name, "name", "", "Specify volume name")
	_ = f.MarkHidden("name")
	f.Var(labels, "label", "Set metadata for a volume")
	f.VarP(options, "opt", "o", "Set driver specific options")
	return cmd
}

const defaultVolumeTable = "table {{.Driver}}\t{{.Name}}"

var volumeHeader = formatter.Header{
	"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
	"Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "CreatedAt": "CREATED AT",
}

// volumeRow is one line of `volume ls`, with the columns Docker's has.
type volumeRow struct{ v *api.Volume }

func (r *volumeRow) Name() string       { return r.v.GetName() }
func (r *volumeRow) Driver() string     { return r.v.GetDriver() }
func (r *volumeRow) Scope() string      { return r.v.GetScope() }
func (r *volumeRow) Mountpoint() string { return r.v.GetMountpoint() }
func (r *volumeRow) Labels() string     { return formatter.JoinLabels(r.v.GetLabels()) }
func (r *volumeRow) Label(name string) string {
	return r.v.GetLabels()[name]
}
func (r *volumeRow) Links() string     { return fmt.Sprint(len(r.v.GetUsedBy())) }
func (r *volumeRow) Size() string      { return "N/A" }
func (r *volumeRow) CreatedAt() string { return convert.VolumeToMoby(r.v, false).CreatedAt }

// MarshalJSON prints the columns, for --format json.
func (r *volumeRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"Name": r.Name(), "Driver": r.Driver(), "Scope": r.Scope(),
		"Mountpoint": r.Mountpoint(), "Labels": r.Labels(), "Links": r.Links(), "Size": r.Size(),
		"Availability": "N/A", "Group": "N/A", "Status": "N/A"})
}

func newListCommand(cli *command.Cli) *cobra.Command {
	return command.NewListCommand("List volumes", "Only display volume names", `Provide filter values (e.g. "dangling=true")`,
		func(cmd *cobra.Command, o *command.ListOptions) error {
			if err := o.Filter.Validate("dangling", "driver", "label", "name"); err != nil {
				return err
			}
			f, err := formatter.ParseList(o.Format, false, defaultVolumeTable)
			if err != nil {
				return err
			}
			if o.Quiet {
				f = "{{.Name}}"
			}
			c, err := client(cli)
			if err != nil {
				return err
			}
			resp, err := c.List(cmd.Context(), &api.ListVolumesRequest{Filters: filtersOf(o.Filter)})
			if err != nil {
				return err
			}
			vols := resp.GetVolumes()
			formatter.SortNatural(vols, func(v *api.Volume) string { return v.GetName() })
			rows := make([]any, 0, len(vols))
			for _, v := range vols {
				rows = append(rows, &volumeRow{v: v})
			}
			return formatter.Write(cli.Out, f, volumeHeader, rows)
		})
}

// filtersOf sends -f KEY=VALUE flags as the daemon takes them.
func filtersOf(f *opts.Filter) []*api.VolumeFilter {
	var out []*api.VolumeFilter
	for _, k := range f.Keys() {
		for _, v := range f.Get(k) {
			out = append(out, &api.VolumeFilter{Key: k, Value: v})
		}
	}
	return out
}

func newInspectCommand(cli *command.Cli) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format == "json" {
				format = ""
			}
			if err := command.CheckInspectFormat(format, false); err != nil {
				return err
			}
			c, err := client(cli)
			if err != nil {
				return err
			}
			get := func(name string) (volume.Volume, error) {
				resp, err := c.Get(cmd.Context(), &api.GetVolumeRequest{Name: name})
				if err != nil {
					return volume.Volume{}, err
				}
				return convert.VolumeToMoby(resp.GetVolume(), false), nil
			}
			return command.InspectDocker(cli, args, format, get, noSuchVolume)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template:\n"+
		"'json':             Print in JSON format\n"+
		"'TEMPLATE':         Print output using the given Go template")
	return cmd
}

func newRemoveCommand(cli *command.Cli) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Long:    "Remove one or more volumes. You cannot remove a volume that is in use by a container.",
		Args:    command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client(cli)
			if err != nil {
				return err
			}
			return command.Remove(cli, args, func(name string) error {
				_, err := c.Remove(cmd.Context(), &api.RemoveVolumeRequest{Name: name, Force: force})
				if errors.Is(err, errdefs.ErrNotFound) {
					return errors.New(noSuchVolume(name))
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of one or more volumes")
	return cmd
}

const (
	pruneWarning    = "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] "
	pruneAllWarning = "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] "
)

func newPruneCommand(cli *command.Cli) *cobra.Command {
	var (
		force, all bool
		filter     = opts.NewFilter()
	)
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused local volumes",
		Long: "Remove unused local volumes\n\n" +
			"Without --all only anonymous volumes go; a volume is unused when no container\n" +
			"on this node (running or stopped) mounts it.",
		Args: command.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := filter.Validate("label", "label!", "all"); err != nil {
				return err
			}
			for _, v := range filter.Get("all") {
				switch strings.ToLower(v) {
				case "true", "1":
					all = true
				case "false", "0":
				default:
					return fmt.Errorf("invalid filter 'all=%s': want true or false", v)
				}
			}
			if !force && !confirm(cli, all) {
				return nil
			}
			c, err := client(cli)
			if err != nil {
				return err
			}
			var fs []*api.VolumeFilter
			for _, k := range []string{"label", "label!"} {
				for _, v := range filter.Get(k) {
					fs = append(fs, &api.VolumeFilter{Key: k, Value: v})
				}
			}
			resp, err := c.Prune(cmd.Context(), &api.PruneVolumesRequest{Filters: fs, All: all})
			if err != nil {
				return err
			}
			printPrune(cli, resp)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	f.Var(filter, "filter", `Provide filter values (e.g. "label=<label>")`)
	f.BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	return cmd
}

// confirm asks Docker's question on stdout and reads the answer from stdin.
func confirm(cli *command.Cli, all bool) bool {
	if all {
		fmt.Fprint(cli.Out, pruneAllWarning)
	} else {
		fmt.Fprint(cli.Out, pruneWarning)
	}
	line, _ := bufio.NewReader(cli.In).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes"
}

// printPrune prints Docker's summary: the volumes deleted and the space
// they held.
func printPrune(cli *command.Cli, resp *api.PruneVolumesResponse) {
	if d := resp.GetDeleted(); len(d) > 0 {
		fmt.Fprintf(cli.Out, "Deleted Volumes:\n%s\n\n", strings.Join(d, "\n"))
	}
	fmt.Fprintf(cli.Out, "Total reclaimed space: %s\n", units.HumanSize(float64(resp.GetSpaceReclaimed())))
}
