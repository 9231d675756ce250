package formatter

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// WriteTemplate runs a template over each proto message (`info -f`) and
// prints one result per line.
func WriteTemplate(out io.Writer, text string, objs []proto.Message) error {
	text = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(text)
	tmpl, err := Parse(text)
	if err != nil {
		return err
	}
	tmpl.Option("missingkey=error")
	for _, m := range objs {
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, TemplateData(m)); err != nil {
			return err
		}
		buf.WriteString("\n")
		if _, err := out.Write(buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// Object is a message as templates see it. Every field is present under its
// JSON name (spec, nodeId) and under a Docker-style alias (Spec, NodeID);
// objects with annotations also answer Name and Labels, so {{.ID}},
// {{.Spec.Name}} and {{.Status.State}} work as they do with Docker. Only the
// JSON names are printed by {{json .}}.
type Object map[string]any

// MarshalJSON prints the JSON-named fields only.
func (o Object) MarshalJSON() ([]byte, error) {
	plain := make(map[string]any, len(o))
	for k, v := range o {
		if k != "" && k[0] >= 'a' && k[0] <= 'z' {
			plain[k] = v
		}
	}
	return json.Marshal(plain)
}

// TemplateData converts a message for templates: enums become their names,
// timestamps time.Time, durations time.Duration, unset messages nil.
func TemplateData(m proto.Message) Object {
	return messageData(m.ProtoReflect())
}

func messageData(m protoreflect.Message) Object {
	obj := Object{}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		var v any
		switch {
		case fd.IsList():
			list := m.Get(fd).List()
			items := make([]any, 0, list.Len())
			for j := 0; j < list.Len(); j++ {
				items = append(items, valueData(fd, list.Get(j)))
			}
			v = items
		case fd.IsMap():
			mp := map[string]any{}
			m.Get(fd).Map().Range(func(k protoreflect.MapKey, val protoreflect.Value) bool {
				mp[k.String()] = valueData(fd.MapValue(), val)
				return true
			})
			v = mp
		case fd.Kind() == protoreflect.MessageKind && !m.Has(fd):
			v = nil
		default:
			v = valueData(fd, m.Get(fd))
		}
		name := fd.JSONName()
		obj[name] = v
		obj[alias(name)] = v
		if d, ok := dockerNames[string(fd.FullName())]; ok {
			obj[d] = v
		}
	}
	oneofs := m.Descriptor().Oneofs()
	for i := 0; i < oneofs.Len(); i++ {
		od := oneofs.Get(i)
		if od.IsSynthetic() {
			continue
		}
		// {{.Spec.Mode.Replicated.Replicas}} as with Docker.
		group := Object{}
		if fd := m.WhichOneof(od); fd != nil {
			group[alias(fd.JSONName())] = obj[fd.JSONName()]
		}
		obj[alias(string(od.Name()))] = group
	}
	if ann, ok := obj["annotations"].(Object); ok {
		for _, k := range []string{"Name", "Labels"} {
			if _, taken := obj[k]; !taken {
				obj[k] = ann[k]
			}
		}
	}
	return obj
}

func valueData(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		msg := v.Message()
		switch msg.Descriptor().FullName() {
		case "google.protobuf.Timestamp":
			f := msg.Descriptor().Fields()
			return time.Unix(msg.Get(f.ByName("seconds")).Int(), msg.Get(f.ByName("nanos")).Int()).UTC()
		case "google.protobuf.Duration":
			f := msg.Descriptor().Fields()
			return time.Duration(msg.Get(f.ByName("seconds")).Int())*time.Second + time.Duration(msg.Get(f.ByName("nanos")).Int())
		}
		return messageData(msg)
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return int32(v.Enum())
	case protoreflect.BytesKind:
		return base64.StdEncoding.EncodeToString(v.Bytes())
	}
	return v.Interface()
}

// dockerNames are the names Docker's API gives fields whose shoal names
// differ, so that scripts written for `docker service inspect -f` work:
// {{.Spec.TaskTemplate.ContainerSpec.Image}}, {{.Spec.UpdateConfig.Parallelism}}.
var dockerNames = map[string]string{
	"shoal.v1.ServiceSpec.task":        "TaskTemplate",
	"shoal.v1.ServiceSpec.update":      "UpdateConfig",
	"shoal.v1.ServiceSpec.rollback":    "RollbackConfig",
	"shoal.v1.ServiceSpec.endpoint":    "EndpointSpec",
	"shoal.v1.TaskSpec.container":      "ContainerSpec",
	"shoal.v1.TaskSpec.restart":        "RestartPolicy",
	"shoal.v1.Resources.nano_cpus":     "NanoCPUs",
	"shoal.v1.Endpoint.virtual_ips":    "VirtualIPs",
	"shoal.v1.NodeSpec.desired_role":   "Role",
	"shoal.v1.Service.previous_spec":   "PreviousSpec",
	"shoal.v1.ContainerSpec.dir":       "Dir",
	"shoal.v1.ContainerSpec.command":   "Command",
	"shoal.v1.ContainerSpec.read_only": "ReadOnly",
}

// alias turns a JSON name into its Docker-style spelling: nodeId -> NodeID.
func alias(name string) string {
	if name == "" {
		return name
	}
	a := strings.ToUpper(name[:1]) + name[1:]
	switch {
	case strings.HasSuffix(a, "Id"):
		a = strings.TrimSuffix(a, "Id") + "ID"
	case strings.HasSuffix(a, "Ids"):
		a = strings.TrimSuffix(a, "Ids") + "IDs"
	}
	return a
}
