package formatter

import (
	"fmt"
	"sort"
	"strings"

	"github.com/distribution/reference"

	"github.com/shoal-project/shoal/internal/imageref"
	api "github.com/shoal-project/shoal/proto"
)

// DefaultServiceTable is `service ls`'s default format.
const DefaultServiceTable = "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}"

// ServiceHeader titles `service ls` columns.
var ServiceHeader = Header{
	"ID":       "ID",
	"Name":     "NAME",
	"Mode":     "MODE",
	"Replicas": "REPLICAS",
	"Image":    "IMAGE",
	"Ports":    "PORTS",
}

// ServiceRow is one line of `service ls`.
type ServiceRow struct {
	s      *api.Service
	counts *api.ServiceCounts
}

// ServiceRows wraps services, sorted by name, with their task counts.
func ServiceRows(services []*api.Service, counts map[string]*api.ServiceCounts) []any {
	sorted := append([]*api.Service(nil), services...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return NaturalLess(sorted[i].GetSpec().GetAnnotations().GetName(), sorted[j].GetSpec().GetAnnotations().GetName())
	})
	rows := make([]any, 0, len(sorted))
	for _, s := range sorted {
		rows = append(rows, &ServiceRow{s: s, counts: counts[s.GetId()]})
	}
	return rows
}

// MarshalJSON prints every column.
func (r *ServiceRow) MarshalJSON() ([]byte, error) { return marshalRow(r) }

// ID is the service ID cut to 12 characters.
func (r *ServiceRow) ID() string { return TruncateID(r.s.GetId()) }

// Name is the service name.
func (r *ServiceRow) Name() string { return r.s.GetSpec().GetAnnotations().GetName() }

// Mode is replicated, global, replicated job or global job.
func (r *ServiceRow) Mode() string { return ModeName(r.s.GetSpec()) }

// Replicas is running/desired, with job completions and per-node limits.
func (r *ServiceRow) Replicas() string {
	spec := r.s.GetSpec()
	running, desired, completed := r.counts.GetRunning(), r.counts.GetDesired(), r.counts.GetCompleted()
	switch m := spec.GetMode().(type) {
	case *api.ServiceSpec_Replicated:
		if r.counts == nil {
			desired = m.Replicated.GetReplicas()
		}
		if max := spec.GetTask().GetPlacement().GetMaxReplicas(); max > 0 {
			return fmt.Sprintf("%d/%d (max %d per node)", running, desired, max)
		}
	case *api.ServiceSpec_ReplicatedJob:
		total := m.ReplicatedJob.GetTotalCompletions()
		if total == 0 {
			total = max(m.ReplicatedJob.GetMaxConcurrent(), 1)
		}
		return fmt.Sprintf("%d/%d (%d/%d completed)", running, desired, completed, total)
	case *api.ServiceSpec_GlobalJob:
		return fmt.Sprintf("%d/%d (%d/%d completed)", running, desired, completed, desired+completed)
	}
	return fmt.Sprintf("%d/%d", running, desired)
}

// Image is the image reference without a digest when it has a tag.
func (r *ServiceRow) Image() string {
	return DisplayImage(r.s.GetSpec().GetTask().GetContainer().GetImage())
}

// Ports lists ingress-published ports, e.g. *:8080->80/tcp.
func (r *ServiceRow) Ports() string {
	ports := r.s.GetEndpoint().GetPorts()
	if len(ports) == 0 {
		ports = r.s.GetSpec().GetEndpoint().GetPorts()
	}
	var ingress []*api.PortConfig
	for _, p := range ports {
		if p.GetPublishMode() == api.PortConfig_INGRESS {
			ingress = append(ingress, p)
		}
	}
	return FormatPorts(ingress)
}

// ModeName names a service's mode as `service ls` shows it.
func ModeName(spec *api.ServiceSpec) string {
	switch spec.GetMode().(type) {
	case *api.ServiceSpec_Global:
		return "global"
	case *api.ServiceSpec_ReplicatedJob:
		return "replicated job"
	case *api.ServiceSpec_GlobalJob:
		return "global job"
	}
	return "replicated"
}

// DisplayImage drops the digest of a tagged reference: nginx:1.27@sha256:…
// shows as nginx:1.27, in docker's short form (docker.io/library/nginx:1
// as nginx:1), as docker's service ls and ps show it. A reference with a
// digest and no tag keeps the digest.
func DisplayImage(image string) string {
	if _, err := reference.ParseNormalizedNamed(image); err == nil {
		return imageref.StripDigest(image)
	}
	name, _, ok := strings.Cut(image, "@")
	if !ok {
		return image
	}
	if strings.Contains(name[strings.LastIndex(name, "/")+1:], ":") {
		return name
	}
	return image
}

// FormatPorts prints ports as *:PUBLISHED->TARGET/PROTO, joining runs of
// consecutive ports into ranges (*:8080-8081->80-81/tcp).
func FormatPorts(ports []*api.PortConfig) string {
	if len(ports) == 0 {
		return ""
	}
	sorted := append([]*api.PortConfig(nil), ports...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.GetProtocol() != b.GetProtocol() {
			return a.GetProtocol() < b.GetProtocol()
		}
		if a.GetPublishedPort() != b.GetPublishedPort() {
			return a.GetPublishedPort() < b.GetPublishedPort()
		}
		return a.GetTargetPort() < b.GetTargetPort()
	})
	var out []string
	for i := 0; i < len(sorted); {
		start := sorted[i]
		j := i + 1
		for j < len(sorted) {
			prev, next := sorted[j-1], sorted[j]
			if next.GetProtocol() != start.GetProtocol() || start.GetPublishedPort() == 0 ||
				next.GetPublishedPort() != prev.GetPublishedPort()+1 || next.GetTargetPort() != prev.GetTargetPort()+1 {
				break
			}
			j++
		}
		end := sorted[j-1]
		proto := strings.ToLower(start.GetProtocol().String())
		if j-i == 1 {
			out = append(out, fmt.Sprintf("*:%d->%d/%s", start.GetPublishedPort(), start.GetTargetPort(), proto))
		} else {
			out = append(out, fmt.Sprintf("*:%d-%d->%d-%d/%s", start.GetPublishedPort(), end.GetPublishedPort(),
				start.GetTargetPort(), end.GetTargetPort(), proto))
		}
		i = j
	}
	return strings.Join(out, ", ")
}
