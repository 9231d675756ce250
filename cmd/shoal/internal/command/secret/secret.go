// Package secret holds `shoal secret create|ls|inspect|rm`, Docker's
// commands. Secret data is read from a file or stdin, checked against the
// daemon's limit (500 KiB) before it is sent, and never
// printed: the daemon returns a secret's metadata and digest, not its data.
package secret

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/dataobj"
	api "github.com/shoal-project/shoal/proto"
)

// MaxSize is the daemon's limit on secret data.
const MaxSize = api.MaxSecretDataBytes

// NewCommand returns `shoal secret`.
func NewCommand(cli *command.Cli) *cobra.Command {
	return dataobj.NewCommand(cli, Kind)
}

// Kind describes secrets to the shared commands; `service create|update` and
// `stack deploy` look secrets up through it.
var Kind = &dataobj.Kind[*api.Secret]{
	Name:        "secret",
	MaxSize:     MaxSize,
	CreateUse:   "create [OPTIONS] SECRET [file|-]",
	CreateShort: "Create a secret from a file or STDIN as content",
	CreateLong: "Create a secret from a file or STDIN as content\n\n" +
		"The data is limited to 500 KiB. It is stored encrypted and never printed.",
	Driver:      true,
	NewRow:      func(r *dataobj.Row) any { return &secretRow{&dataobj.DriverRow{Row: r}} },
	Annotations: func(s *api.Secret) *api.Annotations { return s.GetSpec().GetAnnotations() },
	Create: func(ctx context.Context, c api.ControlClient, ann *api.Annotations, data []byte) (string, error) {
		resp, err := c.CreateSecret(ctx, &api.CreateSecretRequest{Spec: &api.SecretSpec{Annotations: ann, Data: data}})
		return resp.GetSecret().GetId(), err
	},
	List: func(ctx context.Context, c api.ControlClient, f *api.ListFilters) ([]*api.Secret, error) {
		resp, err := c.ListSecrets(ctx, &api.ListSecretsRequest{Filters: f})
		return resp.GetSecrets(), err
	},
	Get: getSecret,
	Remove: func(ctx context.Context, c api.ControlClient, ref string) error {
		_, err := c.RemoveSecret(ctx, &api.RemoveSecretRequest{SecretId: ref})
		return err
	},
}

// secretRow is one line of `secret ls`.
type secretRow struct{ *dataobj.DriverRow }

// getSecret fetches a secret and makes sure no data is kept.
func getSecret(ctx context.Context, c api.ControlClient, ref string) (*api.Secret, error) {
	resp, err := c.GetSecret(ctx, &api.GetSecretRequest{SecretId: ref})
	if err != nil {
		return nil, err
	}
	s := resp.GetSecret()
	if s.GetSpec() != nil {
		s.Spec.Data = nil
	}
	s.Sealed = nil
	return s, nil
}
