package dataobj

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	"github.com/shoal-project/shoal/dockerapi/convert"
	api "github.com/shoal-project/shoal/proto"
)

// dockerObject is obj in Docker's schema, as the Engine API answers it
// (and `docker secret inspect` or `docker config inspect` prints it).
func dockerObject(obj Object) any {
	switch o := obj.(type) {
	case *api.Secret:
		return convert.SecretToMoby(o)
	case *api.Config:
		return convert.ConfigToMoby(o)
	}
	panic(fmt.Sprintf("dataobj: no Docker form for %T", obj))
}

func newInspectCommand[T Object](cli *command.Cli, k *Kind[T]) *cobra.Command {
	var (
		format string
		pretty bool
	)
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] " + k.upper() + " [" + k.upper() + "...]",
		Short: "Display detailed information on one or more " + k.plural(),
		Args:  command.MinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := command.CheckInspectFormat(format, pretty); err != nil {
				return err
			}
			c, err := cli.Control()
			if err != nil {
				return err
			}
			get := func(ref string) (T, error) { return k.Get(cmd.Context(), c, ref) }
			notFound := func(ref string) string {
				return "Error response from daemon: " + k.Name + " " + command.Ref(ref) + " not found"
			}
			if !pretty {
				return command.InspectDocker(cli, args, format, func(ref string) (any, error) {
					obj, err := get(ref)
					if err != nil {
						return nil, err
					}
					return dockerObject(obj), nil
				}, notFound)
			}
			printed := 0
			return command.InspectPretty(args, get, notFound, func(_ int, obj T) {
				if printed > 0 {
					fmt.Fprintln(cli.Out)
				}
				printed++
				k.printPretty(cli.Out, obj)
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	cmd.Flags().BoolVar(&pretty, "pretty", false, "Print the information in a human friendly format")
	return cmd
}

// printPretty writes one object of `inspect --pretty` laid out as docker
// 28.2 does: secrets and configs differ in their alignment (docker's two
// templates), and times are shown as docker shows them ("2025-01-01
// 12:00:00 +0000 utc").
func (k *Kind[T]) printPretty(w io.Writer, obj T) {
	ann := k.Annotations(obj)
	if k.Driver {
		fmt.Fprintf(w, "ID:              %s\n", obj.GetId())
		fmt.Fprintf(w, "Name:              %s\n", ann.GetName())
	} else {
		fmt.Fprintf(w, "ID:\t\t\t%s\n", obj.GetId())
		fmt.Fprintf(w, "Name:\t\t\t%s\n", ann.GetName())
	}
	formatter.PrintLabels(w, "Labels", ann.GetLabels())
	if k.Driver {
		fmt.Fprintf(w, "Driver:            \n")
		fmt.Fprintf(w, "Created at:        %s\n", timeString(obj.GetMeta().GetCreatedAt()))
		fmt.Fprintf(w, "Updated at:        %s\n", timeString(obj.GetMeta().GetUpdatedAt()))
	} else {
		fmt.Fprintf(w, "Created at:            \t%s\n", timeString(obj.GetMeta().GetCreatedAt()))
		fmt.Fprintf(w, "Updated at:            \t%s\n", timeString(obj.GetMeta().GetUpdatedAt()))
	}
	if k.PrettyData != nil {
		k.PrettyData(w, obj)
	}
}

// timeString prints a timestamp as docker's pretty inspect shows it: Go's
// time.String with all but the first letter lower-cased ("+0000 utc").
func timeString(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return formatter.DockerPretty(ts.AsTime().UTC().String())
}
