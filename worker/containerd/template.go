package containerd

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"text/template"

	api "github.com/shoal-project/shoal/proto"
)

// templateContext is what Go templates in a container spec's hostname, env
// values and mount sources see, with the field names Docker swarm uses:
// {{.Service.ID}} {{.Service.Name}} {{.Service.Labels}} {{.Node.ID}}
// {{.Node.Hostname}} {{.Task.ID}} {{.Task.Name}} {{.Task.Slot}}.
type templateContext struct {
	Service struct {
		ID     string
		Name   string
		Labels map[string]string
	}
	Node struct {
		ID       string
		Hostname string
	}
	Task struct {
		ID   string
		Name string
		// Slot is a string, as in Docker, so "{{.Task.Slot}}" reads the same
		// for global tasks (where it is the node ID).
		Slot string
	}
}

func newTemplateContext(t *api.Task, nodeID, nodeHostname string) *templateContext {
	var c templateContext
	c.Service.ID = t.GetServiceId()
	c.Service.Name = t.GetServiceAnnotations().GetName()
	c.Service.Labels = t.GetServiceAnnotations().GetLabels()
	if c.Service.Labels == nil {
		c.Service.Labels = map[string]string{}
	}
	if t.GetNodeId() != "" {
		nodeID = t.GetNodeId()
	}
	c.Node.ID = nodeID
	c.Node.Hostname = nodeHostname
	c.Task.ID = t.GetId()
	c.Task.Name = TaskName(t)
	if t.GetSlot() != 0 {
		c.Task.Slot = strconv.FormatUint(t.GetSlot(), 10)
	} else {
		c.Task.Slot = nodeID
	}
	return &c
}

// TaskName is a task's display name, as `service ps` and {{.Task.Name}}
// show it: the task's own annotation name if it has one, else
// "<service>.<slot>.<taskid>", or "<service>.<nodeid>.<taskid>" for a global
// task (slot 0).
func TaskName(t *api.Task) string {
	if n := t.GetAnnotations().GetName(); n != "" {
		return n
	}
	svc := t.GetServiceAnnotations().GetName()
	if svc == "" {
		svc = t.GetServiceId()
	}
	if t.GetSlot() != 0 {
		return fmt.Sprintf("%s.%d.%s", svc, t.GetSlot(), t.GetId())
	}
	return fmt.Sprintf("%s.%s.%s", svc, t.GetNodeId(), t.GetId())
}

// expand evaluates s as a template; strings without "{{" are returned as
// they are, without parsing.
func (c *templateContext) expand(what, s string) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	tmpl, err := template.New(what).Option("missingkey=zero").Parse(s)
	if err != nil {
		return "", fmt.Errorf("template in %s: %w", what, err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, c); err != nil {
		return "", fmt.Errorf("template in %s: %w", what, err)
	}
	return b.String(), nil
}
