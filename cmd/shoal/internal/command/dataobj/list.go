package dataobj

import (
	"encoding/json"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

func newListCommand[T Object](cli *command.Cli, k *Kind[T]) *cobra.Command {
	return command.NewListCommand("List "+k.plural(), "Only display IDs", "Filter output based on conditions provided",
		func(cmd *cobra.Command, o *command.ListOptions) error {
			if err := o.Filter.Validate("id", "label", "name"); err != nil {
				return err
			}
			f, err := o.Template(k.defaultTable())
			if err != nil {
				return err
			}
			c, err := cli.Control()
			if err != nil {
				return err
			}
			lf := &api.ListFilters{IdPrefixes: o.Filter.Get("id"), NamePrefixes: o.Filter.Get("name"), Labels: o.Filter.Get("label")}
			objs, err := k.List(cmd.Context(), c, lf)
			if err != nil {
				return err
			}
			formatter.SortNatural(objs, func(obj T) string { return k.Annotations(obj).GetName() })
			now := cli.Clock.Now()
			var rows []any
			for _, obj := range objs {
				ann := k.Annotations(obj)
				if opts.MatchPrefix(lf.IdPrefixes, obj.GetId()) && opts.MatchPrefix(lf.NamePrefixes, ann.GetName()) &&
					opts.MatchLabels(ann.GetLabels(), lf.Labels) {
					rows = append(rows, k.row(obj, now))
				}
			}
			return formatter.Write(cli.Out, f, k.header(), rows)
		})
}

func (k *Kind[T]) defaultTable() string {
	if k.Driver {
		return "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.CreatedAt}}\t{{.UpdatedAt}}"
	}
	return "table {{.ID}}\t{{.Name}}\t{{.CreatedAt}}\t{{.UpdatedAt}}"
}

func (k *Kind[T]) header() formatter.Header {
	h := formatter.Header{"ID": "ID", "Name": "NAME", "CreatedAt": "CREATED", "UpdatedAt": "UPDATED", "Labels": "LABELS"}
	if k.Driver {
		h["Driver"] = "DRIVER"
	}
	return h
}

func (k *Kind[T]) row(obj T, now time.Time) any {
	return k.NewRow(&Row{id: obj.GetId(), ann: k.Annotations(obj), meta: obj.GetMeta(), now: now})
}

// Row is one line of `ls`; its methods are the columns. Each kind wraps it
// in a row type of its own (Kind.NewRow), which template errors name.
type Row struct {
	id   string
	ann  *api.Annotations
	meta *api.Meta
	now  time.Time
}

// ID is the object's full ID.
func (r *Row) ID() string { return r.id }

// Name is the object's name.
func (r *Row) Name() string { return r.ann.GetName() }

// CreatedAt says how long ago the object was created.
func (r *Row) CreatedAt() string { return ago(r.now, r.meta.GetCreatedAt()) }

// UpdatedAt says how long ago the object was last updated.
func (r *Row) UpdatedAt() string { return ago(r.now, r.meta.GetUpdatedAt()) }

// Labels joins the object's labels, k=v,k2=v2.
func (r *Row) Labels() string { return formatter.JoinLabels(r.ann.GetLabels()) }

func (r *Row) columns() map[string]string {
	return map[string]string{"ID": r.ID(), "Name": r.Name(),
		"CreatedAt": r.CreatedAt(), "UpdatedAt": r.UpdatedAt(), "Labels": r.Labels()}
}

// MarshalJSON prints every column, for --format json.
func (r *Row) MarshalJSON() ([]byte, error) { return json.Marshal(r.columns()) }

// DriverRow is a Row with the Driver column of secrets, always empty.
type DriverRow struct{ *Row }

// Driver is the secret's driver: shoal has none.
func (r *DriverRow) Driver() string { return "" }

// MarshalJSON prints every column, for --format json.
func (r *DriverRow) MarshalJSON() ([]byte, error) {
	m := r.columns()
	m["Driver"] = r.Driver()
	return json.Marshal(m)
}

// ago words a timestamp as Docker's lists do: "About an hour ago".
func ago(now time.Time, ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return units.HumanDuration(now.Sub(ts.AsTime())) + " ago"
}
