// Package task prints task lists for `service ps` and `node ps` the way
// Docker does: tasks named web.1 (replicated slot) or web.<node id> (global),
// grouped by slot with the newest first and older ones indented as
// " \_ web.1", nodes shown by hostname unless --no-resolve.
package task

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shoal-project/shoal/cmd/shoal/internal/command"
	"github.com/shoal-project/shoal/cmd/shoal/internal/formatter"
	"github.com/shoal-project/shoal/cmd/shoal/internal/opts"
	api "github.com/shoal-project/shoal/proto"
)

// PrintOptions are the display flags of a task list.
type PrintOptions struct {
	NoTrunc   bool
	NoResolve bool
	Quiet     bool
	Format    string
	// NameFilter keeps tasks whose name starts with one of these (-f name=).
	NameFilter []string
}

// Print writes tasks to cli.Out.
func Print(ctx context.Context, cli *command.Cli, c api.ControlClient, tasks []*api.Task, o PrintOptions) error {
	names, err := taskNames(ctx, c, tasks, o.NoResolve)
	if err != nil {
		return err
	}
	if len(o.NameFilter) > 0 {
		var kept []*api.Task
		for _, t := range tasks {
			for _, prefix := range o.NameFilter {
				if strings.HasPrefix(names[t.GetId()], prefix) {
					kept = append(kept, t)
					break
				}
			}
		}
		tasks = kept
	}
	sorted := append([]*api.Task(nil), tasks...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := names[sorted[i].GetId()], names[sorted[j].GetId()]
		if a != b {
			return formatter.NaturalLess(a, b)
		}
		return created(sorted[j]).Before(created(sorted[i]))
	})
	nodes, err := nodeNames(ctx, c, o.NoResolve)
	if err != nil {
		return err
	}
	format := formatter.Resolve(o.Format, o.Quiet, formatter.DefaultTaskTable)
	now := cli.Clock.Now()
	rows := make([]any, 0, len(sorted))
	prev := ""
	for _, t := range sorted {
		name := names[t.GetId()]
		display := name
		if name == prev && format.IsTable() {
			display = ` \_ ` + name
		}
		prev = name
		node := t.GetNodeId()
		if n, ok := nodes[node]; ok {
			node = n
		}
		rows = append(rows, formatter.NewTaskRow(t, display, node, !o.NoTrunc, now))
	}
	return formatter.Write(cli.Out, format, formatter.TaskHeader, rows)
}

func created(t *api.Task) time.Time {
	if ts := t.GetMeta().GetCreatedAt(); ts != nil {
		return ts.AsTime()
	}
	return time.Time{}
}

// Name is a task's display name: <service>.<slot> or <service>.<node id>.
func Name(service string, t *api.Task) string {
	if t.GetSlot() != 0 {
		return fmt.Sprintf("%s.%d", service, t.GetSlot())
	}
	return fmt.Sprintf("%s.%s", service, t.GetNodeId())
}

// taskNames computes display names, resolving service names unless
// noResolve (then the service ID is used, as Docker does).
func taskNames(ctx context.Context, c api.ControlClient, tasks []*api.Task, noResolve bool) (map[string]string, error) {
	services := map[string]string{}
	names := make(map[string]string, len(tasks))
	for _, t := range tasks {
		sid := t.GetServiceId()
		svc := sid
		if !noResolve {
			if n, ok := services[sid]; ok {
				svc = n
			} else if n := t.GetServiceAnnotations().GetName(); n != "" {
				svc, services[sid] = n, n
			} else {
				resp, err := c.GetService(ctx, &api.GetServiceRequest{ServiceId: sid})
				if err == nil {
					svc = resp.GetService().GetSpec().GetAnnotations().GetName()
				}
				services[sid] = svc
			}
		}
		names[t.GetId()] = Name(svc, t)
	}
	return names, nil
}

// nodeNames maps node IDs to hostnames (nil with noResolve).
func nodeNames(ctx context.Context, c api.ControlClient, noResolve bool) (map[string]string, error) {
	if noResolve {
		return nil, nil
	}
	return NodeHostnames(ctx, c)
}

// NodeHostnames maps every node ID to its hostname.
func NodeHostnames(ctx context.Context, c api.ControlClient) (map[string]string, error) {
	resp, err := c.ListNodes(ctx, &api.ListNodesRequest{})
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(resp.GetNodes()))
	for _, n := range resp.GetNodes() {
		m[n.GetId()] = n.GetDescription().GetHostname()
	}
	return m, nil
}

// Filters turns `ps -f` flags into list filters and a client-side name
// filter. Node names and "self" are resolved to IDs.
func Filters(ctx context.Context, cli *command.Cli, c api.ControlClient, f *opts.Filter) (*api.ListFilters, []string, error) {
	if err := f.Validate(filterKeys...); err != nil {
		return nil, nil, err
	}
	lf := &api.ListFilters{IdPrefixes: f.Get("id")}
	for _, s := range f.Get("desired-state") {
		st, ok := api.TaskState_value[strings.ToUpper(s)]
		if !ok {
			return nil, nil, fmt.Errorf("invalid filter 'desired-state=%s': expected running, shutdown, accepted or another task state", s)
		}
		lf.DesiredStates = append(lf.DesiredStates, api.TaskState(st))
	}
	if nodes := f.Get("node"); len(nodes) > 0 {
		ids, err := ResolveNodes(ctx, cli, c, nodes)
		if err != nil {
			return nil, nil, err
		}
		lf.NodeIds = ids
	}
	return lf, f.Get("name"), nil
}

// ResolveNodes maps "self" to the local node's ID and hostnames to IDs;
// anything else is passed on for the daemon to resolve.
func ResolveNodes(ctx context.Context, cli *command.Cli, c api.ControlClient, refs []string) ([]string, error) {
	var hosts map[string]string
	out := make([]string, 0, len(refs))
	for _, ref := range refs {
		if ref == "self" {
			id, err := cli.SelfNodeID(ctx)
			if err != nil {
				return nil, err
			}
			out = append(out, id)
			continue
		}
		if hosts == nil {
			m, err := NodeHostnames(ctx, c)
			if err != nil {
				return nil, err
			}
			hosts = m
		}
		id := ref
		for nid, h := range hosts {
			if h == ref {
				id = nid
				break
			}
		}
		out = append(out, id)
	}
	return out, nil
}
