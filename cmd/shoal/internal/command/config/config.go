// Package config holds `shoal config create|ls|inspect|rm`, Docker's
// commands. Config data is limited to 500 KiB; unlike a secret's it
// is returned by the daemon and shown by `inspect --pretty`.
package config

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/dataobj"
	api "github.com/shoal-project/shoal/proto"
)

// MaxSize is the daemon's limit on config data.
const MaxSize = api.MaxConfigDataBytes

// NewCommand returns `shoal config`.
func NewCommand(cli *command.Cli) *cobra.Command {
	return dataobj.NewCommand(cli, Kind)
}

// Kind describes configs to the shared commands; `service create|update` and
// `stack deploy` look configs up through it.
var Kind = &dataobj.Kind[*api.Config]{
	Name:        "config",
	MaxSize:     MaxSize,
	CreateUse:   "create [OPTIONS] CONFIG file|-",
	CreateShort: "Create a config from a file or STDIN",
	CreateLong:  "Create a config from a file or STDIN\n\nThe data is limited to 500 KiB.",
	NewRow:      func(r *dataobj.Row) any { return &configRow{r} },
	Annotations: func(cf *api.Config) *api.Annotations { return cf.GetSpec().GetAnnotations() },
	PrettyData:  printData,
	Create: func(ctx context.Context, c api.ControlClient, ann *api.Annotations, data []byte) (string, error) {
		resp, err := c.CreateConfig(ctx, &api.CreateConfigRequest{Spec: &api.ConfigSpec{Annotations: ann, Data: data}})
		return resp.GetConfig().GetId(), err
	},
	List: func(ctx context.Context, c api.ControlClient, f *api.ListFilters) ([]*api.Config, error) {
		resp, err := c.ListConfigs(ctx, &api.ListConfigsRequest{Filters: f})
		return resp.GetConfigs(), err
	},
	Get: func(ctx context.Context, c api.ControlClient, ref string) (*api.Config, error) {
		resp, err := c.GetConfig(ctx, &api.GetConfigRequest{ConfigId: ref})
		return resp.GetConfig(), err
	},
	Remove: func(ctx context.Context, c api.ControlClient, ref string) error {
		_, err := c.RemoveConfig(ctx, &api.RemoveConfigRequest{ConfigId: ref})
		return err
	},
}

// configRow is one line of `config ls`.
type configRow struct{ *dataobj.Row }

// printData ends `config inspect --pretty` with the config's data as docker
// prints it: "Data:", the data as it is, then a newline; nothing when the
// config is empty.
func printData(w io.Writer, cf *api.Config) {
	if d := cf.GetSpec().GetData(); len(d) > 0 {
		fmt.Fprintf(w, "Data:\n%s\n", d)
	}
}
