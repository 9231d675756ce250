// Package dataobj builds the commands of the swarm objects that carry data,
// secrets and configs: `create` from a file or stdin within the daemon's size
// limit, `ls` with id, label and name filters, `inspect` (JSON, template or
// --pretty) and `rm`. The secret and config packages describe their kind
// with a Kind: words, limit and RPCs; the flows are the same.
package dataobj

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

// Object is a secret or a config as the daemon returns it.
type Object interface {
	proto.Message
	GetId() string
	GetMeta() *api.Meta
}

// Kind describes secrets or configs to the shared commands.
type Kind[T Object] struct {
	// Name is the kind in lower case ("secret"), as help and errors word it.
	Name string
	// MaxSize is the daemon's limit: data may be at most this long.
	MaxSize int
	// CreateUse, CreateShort and CreateLong are the help of `create`.
	CreateUse, CreateShort, CreateLong string
	// Driver adds the Driver column and --pretty line (always empty) that
	// Docker shows for secrets; their rows are then DriverRows.
	Driver bool

	// NewRow wraps an `ls` row in a row type of the kind's own package:
	// template errors name it ("can't evaluate field X in type
	// *secret.secretRow").
	NewRow func(*Row) any

	// Annotations gives an object's name and labels.
	Annotations func(T) *api.Annotations
	// PrettyData, when set, ends the object's `inspect --pretty`.
	PrettyData func(w io.Writer, obj T)

	// The daemon's calls; Create returns the new object's ID.
	Create func(ctx context.Context, c api.ControlClient, ann *api.Annotations, data []byte) (string, error)
	List   func(ctx context.Context, c api.ControlClient, f *api.ListFilters) ([]T, error)
	Get    func(ctx context.Context, c api.ControlClient, ref string) (T, error)
	Remove func(ctx context.Context, c api.ControlClient, ref string) error
}

// plural is "secrets"; upper is "SECRET", as usage lines name arguments.
func (k *Kind[T]) plural() string { return k.Name + "s" }
func (k *Kind[T]) upper() string  { return strings.ToUpper(k.Name) }

// NewCommand returns `shoal <kind>` with create, ls, inspect and rm.
func NewCommand[T Object](cli *command.Cli, k *Kind[T]) *cobra.Command {
	return command.NewGroup(k.Name, "Manage Swarm "+k.plural(),
		newCreateCommand(cli, k), newListCommand(cli, k), newInspectCommand(cli, k), newRemoveCommand(cli, k))
}

// readData reads an object's data from path, or from in when path is "-",
// refusing data longer than limit bytes and empty data; kind words the
// errors.
func readData(in io.Reader, path, kind string, limit int) ([]byte, error) {
	r, source := in, "STDIN"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("error reading content from %q: %w", path, err)
		}
		defer f.Close()
		r, source = f, fmt.Sprintf("%q", path)
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("error reading content from %s: %w", source, err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("the content of %s is too large: %s data is limited to %s", source, kind, api.FormatBytes(int64(limit)))
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("the content of %s is empty: a %s needs data", source, kind)
	}
	return data, nil
}

func newCreateCommand[T Object](cli *command.Cli, k *Kind[T]) *cobra.Command {
	var (
		labels         = opts.NewListOpts(opts.ValidateLabel)
		templateDriver string
	)
	cmd := &cobra.Command{
		Use:   k.CreateUse,
		Short: k.CreateShort,
		Long:  k.CreateLong,
		Args:  command.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readData(cli.In, args[1], k.Name, k.MaxSize)
			if err != nil {
				return err
			}
			c, err := cli.Control()
			if err != nil {
				return err
			}
			id, err := k.Create(cmd.Context(), c, &api.Annotations{Name: args[0], Labels: opts.KVMap(labels.GetAll())}, data)
			if err != nil {
				return err
			}
			fmt.Fprintln(cli.Out, id)
			return nil
		},
	}
	flags := cmd.Flags()
	flags.VarP(labels, "label", "l", strings.ToUpper(k.Name[:1])+k.Name[1:]+" labels")
	flags.StringVar(&templateDriver, "template-driver", "",
		"Template driver (accepted for compatibility; shoal does not template "+k.plural()+")")
	return cmd
}

func newRemoveCommand[T Object](cli *command.Cli, k *Kind[T]) *cobra.Command {
	return command.NewRemoveCommand(cli, "rm "+k.upper()+" ["+k.upper()+"...]", "Remove one or more "+k.plural(), k.Remove)
}
