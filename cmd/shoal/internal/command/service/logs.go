package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/command/task"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	"github.com/shoal-project/shoal/errdefs"
	api "github.com/shoal-project/shoal/proto"
)

type logsOptions struct {
	follow     bool
	tail       string
	since      string
	timestamps bool
	noTaskIDs  bool
	noTrunc    bool
	noResolve  bool
	raw        bool
	details    bool
}

func newLogsCommand(cli *command.Cli) *cobra.Command {
	o := &logsOptions{}
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] SERVICE|TASK",
		Short: "Fetch the logs of a service or task",
		Args:  command.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLogs(cmd, cli, o, args[0])
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.follow, "follow", "f", false, "Follow log output")
	flags.StringVarP(&o.tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	flags.StringVar(&o.since, "since", "", "Show logs since timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)")
	flags.BoolVarP(&o.timestamps, "timestamps", "t", false, "Show timestamps")
	flags.BoolVar(&o.noTaskIDs, "no-task-ids", false, "Do not include task IDs in output")
	flags.BoolVar(&o.noTrunc, "no-trunc", false, "Do not truncate output")
	flags.BoolVar(&o.noResolve, "no-resolve", false, "Do not map IDs to Names in output")
	flags.BoolVar(&o.raw, "raw", false, "Do not neatly format logs")
	flags.BoolVar(&o.details, "details", false, "Show extra details provided to logs (accepted; shoal attaches none)")
	return cmd
}

func parseTail(s string) (int64, error) {
	if s == "all" || s == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid value for \"tail\": %q (expected a number of lines or \"all\")", s)
	}
	if n < 0 {
		return -1, nil
	}
	return n, nil
}

// parseSince reads a relative duration (10m), a timestamp or Unix seconds.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("invalid value for \"since\": %q is not a duration (10m), a timestamp (2013-01-02T13:23:37Z) or a Unix time", s)
}

func runLogs(cmd *cobra.Command, cli *command.Cli, o *logsOptions, ref string) error {
	tail, err := parseTail(o.tail)
	if err != nil {
		return err
	}
	opts := &api.LogSubscriptionOptions{Follow: o.follow, Tail: tail}
	if o.since != "" {
		t, err := parseSince(o.since, cli.Clock.Now())
		if err != nil {
			return err
		}
		opts.Since = timestamppb.New(t)
	}
	ctx := cmd.Context()
	cl, err := cli.Client()
	if err != nil {
		return err
	}
	c := cl.Control
	f := &logFormatter{o: o, c: c, tasks: map[string]*api.Task{}, services: map[string]string{}, width: 1}
	sel := &api.LogSelector{}
	if sresp, err := c.GetService(ctx, &api.GetServiceRequest{ServiceId: ref}); err == nil {
		svc := sresp.GetService()
		sel.ServiceIds = []string{svc.GetId()}
		f.services[svc.GetId()] = svc.GetSpec().GetAnnotations().GetName()
		if r := svc.GetSpec().GetReplicated(); r != nil {
			f.width = len(strconv.FormatUint(r.GetReplicas(), 10))
		}
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return err
	} else {
		tresp, terr := c.GetTask(ctx, &api.GetTaskRequest{TaskId: ref})
		if terr != nil {
			if errors.Is(terr, errdefs.ErrNotFound) {
				return fmt.Errorf("no such task or service: %s", command.Ref(ref))
			}
			return terr
		}
		t := tresp.GetTask()
		sel.TaskIds = []string{t.GetId()}
		f.tasks[t.GetId()] = t
	}
	if !o.noResolve {
		if f.nodes, err = task.NodeHostnames(ctx, c); err != nil {
			return err
		}
	}
	stream, err := cl.Logs.SubscribeLogs(ctx, &api.SubscribeLogsRequest{Selector: sel, Options: opts})
	if err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, w := range msg.GetWarnings() {
			fmt.Fprintln(cli.Err, w)
		}
		for _, m := range msg.GetMessages() {
			out := cli.Out
			if m.GetStream() == api.LogStream_LOG_STREAM_STDERR {
				out = cli.Err
			}
			f.write(ctx, out, m)
		}
	}
}

// logFormatter prefixes log lines with web.1.<task id>@<node>    | .
type logFormatter struct {
	o        *logsOptions
	c        api.ControlClient
	tasks    map[string]*api.Task
	services map[string]string
	nodes    map[string]string
	width    int
}

func (f *logFormatter) write(ctx context.Context, out io.Writer, m *api.LogMessage) {
	data := strings.TrimSuffix(string(m.GetData()), "\n")
	prefix := ""
	if !f.o.raw {
		prefix = f.prefix(ctx, m.GetContext()) + "    | "
	}
	if f.o.timestamps && m.GetTimestamp() != nil {
		prefix += m.GetTimestamp().AsTime().Format("2006-01-02T15:04:05.000000000Z07:00") + " "
	}
	var b strings.Builder
	for _, line := range strings.Split(data, "\n") {
		b.WriteString(prefix + line + "\n")
	}
	_, _ = io.WriteString(out, b.String())
}

func (f *logFormatter) prefix(ctx context.Context, lc *api.LogContext) string {
	t := f.task(ctx, lc.GetTaskId())
	serviceID := lc.GetServiceId()
	if serviceID == "" {
		serviceID = t.GetServiceId()
	}
	svc := serviceID
	if !f.o.noResolve {
		svc = f.service(ctx, serviceID)
	}
	if t == nil {
		t = &api.Task{Id: lc.GetTaskId(), NodeId: lc.GetNodeId()}
	}
	name := task.Name(svc, t)
	if !f.o.noTaskIDs {
		id := lc.GetTaskId()
		if !f.o.noTrunc {
			id = formatter.TruncateID(id)
		}
		name += "." + id
	}
	node := lc.GetNodeId()
	if h, ok := f.nodes[node]; ok && !f.o.noResolve {
		node = h
	}
	pad := 0
	if t.GetSlot() != 0 {
		pad = f.width - len(strconv.FormatUint(t.GetSlot(), 10))
	}
	return name + "@" + node + strings.Repeat(" ", max(pad, 0))
}

func (f *logFormatter) task(ctx context.Context, id string) *api.Task {
	if t, ok := f.tasks[id]; ok {
		return t
	}
	var t *api.Task
	if resp, err := f.c.GetTask(ctx, &api.GetTaskRequest{TaskId: id}); err == nil {
		t = resp.GetTask()
	}
	f.tasks[id] = t
	return t
}

func (f *logFormatter) service(ctx context.Context, id string) string {
	if n, ok := f.services[id]; ok {
		return n
	}
	name := id
	if resp, err := f.c.GetService(ctx, &api.GetServiceRequest{ServiceId: id}); err == nil {
		name = resp.GetService().GetSpec().GetAnnotations().GetName()
	}
	f.services[id] = name
	return name
}
