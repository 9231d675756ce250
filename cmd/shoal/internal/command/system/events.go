package system

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	dockerevents "github.com/shoal-project/shoal/dockerapi/events"
	api "github.com/shoal-project/shoal/proto"
)

// timeLayout is the docker CLI's event time (jsonmessage.RFC3339NanoFixed).
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

type eventsOptions struct {
	since, until string
	filters      []string
	format       string
}

// NewEventsCommand returns `shoal events` (docker events): the swarm's
// events as they happen.
func NewEventsCommand(cli *command.Cli) *cobra.Command {
	var o eventsOptions
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Get real time events from the swarm",
		Long: `Get real time events from the swarm: services, nodes, networks, secrets and configs
(create, update, remove) and tasks (their state changes).

The control socket streams events from now on: --since only drops events older than
it. The Docker API's /events keeps the last 1,024 events for "docker events --since".`,
		Args: command.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEvents(cmd.Context(), cli, o)
		},
	}
	flags := cmd.Flags()
	flags.StringArrayVarP(&o.filters, "filter", "f", nil, "Filter output based on conditions provided")
	flags.StringVar(&o.format, "format", "", "Format output using a custom template:\n'json':             Print in JSON format\n'TEMPLATE':         Print output using the given Go template.")
	flags.StringVar(&o.since, "since", "", "Show all events created since timestamp")
	flags.StringVar(&o.until, "until", "", "Stream events until this timestamp")
	return cmd
}

// parseFilters reads --filter name=value flags as docker does.
func parseFilters(in []string) (dockerevents.Filter, error) {
	f := map[string][]string{}
	for _, kv := range in {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("bad format of filter (expected name=value): %s", kv)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		f[k] = append(f[k], strings.TrimSpace(v))
	}
	return dockerevents.NewFilter(f)
}

func runEvents(ctx context.Context, cli *command.Cli, o eventsOptions) error {
	filter, err := parseFilters(o.filters)
	if err != nil {
		return err
	}
	now := cli.Clock.Now()
	since, err := dockerevents.ParseTime("--since", o.since, now)
	if err != nil {
		return err
	}
	until, err := dockerevents.ParseTime("--until", o.until, now)
	if err != nil {
		return err
	}
	emit, err := eventPrinter(cli.Out, o.format)
	if err != nil {
		return err
	}
	if !until.IsZero() && !until.After(now) {
		return nil // the window is over: the socket keeps no past events
	}
	client, err := cli.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var end <-chan time.Time
	if !until.IsZero() {
		end = cli.Clock.After(until.Sub(now))
	}
	stream, err := client.Watch.Watch(ctx, dockerevents.WatchRequest())
	if err != nil {
		return err
	}
	msgs := make(chan *eventsBatch, 1)
	go func() {
		for {
			m, err := stream.Recv()
			select {
			case msgs <- &eventsBatch{m: m, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-end:
			return nil
		case b := <-msgs:
			if b.err != nil {
				if errors.Is(b.err, io.EOF) {
					return errors.New("the daemon ended the event stream")
				}
				return b.err
			}
			at := cli.Clock.Now()
			for _, we := range b.m.GetEvents() {
				e, ok := dockerevents.Convert(we, at)
				if !ok || !filter.Match(e) {
					continue
				}
				t := time.Unix(0, e.Msg.TimeNano)
				if t.Before(since) || !until.IsZero() && t.After(until) {
					continue
				}
				if err := emit(e.Msg); err != nil {
					return err
				}
			}
		}
	}
}

// eventsBatch is one message of the Watch stream, or its end.
type eventsBatch struct {
	m   *api.WatchMessage
	err error
}

// eventPrinter returns what writes one event: docker's line, or a template
// ("json" is {{json .}}).
func eventPrinter(out io.Writer, format string) (func(events.Message) error, error) {
	switch format {
	case "":
		return func(m events.Message) error { _, err := io.WriteString(out, formatEvent(m)); return err }, nil
	case "json":
		format = "{{json .}}"
	}
	tmpl, err := formatter.Parse(format)
	if err != nil {
		return nil, err
	}
	return func(m events.Message) error { return writeTemplate(out, tmpl, m) }, nil
}

func writeTemplate(out io.Writer, tmpl *template.Template, m events.Message) error {
	var b strings.Builder
	if err := tmpl.Execute(&b, m); err != nil {
		return fmt.Errorf("template: %w", err)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(out, b.String())
	return err
}

// formatEvent is docker's line: TIME TYPE ACTION ID (k=v, ...) with the
// attributes sorted by key.
func formatEvent(m events.Message) string {
	var b strings.Builder
	switch {
	case m.TimeNano != 0:
		b.WriteString(time.Unix(0, m.TimeNano).Format(timeLayout) + " ")
	case m.Time != 0:
		b.WriteString(time.Unix(m.Time, 0).Format(timeLayout) + " ")
	}
	fmt.Fprintf(&b, "%s %s %s", m.Type, m.Action, m.Actor.ID)
	if len(m.Actor.Attributes) > 0 {
		keys := make([]string, 0, len(m.Actor.Attributes))
		for k := range m.Actor.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		attrs := make([]string, len(keys))
		for i, k := range keys {
			attrs[i] = k + "=" + m.Actor.Attributes[k]
		}
		b.WriteString(" (" + strings.Join(attrs, ", ") + ")")
	}
	b.WriteByte('\n')
	return b.String()
}
