package scheduler

import (
	"fmt"
	"math"
	"strings"

	api "github.com/shoal-project/shoal/proto"
)

// unlimited is the fit of a filter that puts no bound on how many tasks of
// a group a node can take.
const unlimited = math.MaxInt

// A filter decides whether a node can take tasks of a group and how many.
// Filters see the group's spec once (setTask) and then every node, so a
// group costs one pass over the nodes however many tasks it has.
type filter interface {
	// setTask readies the filter for group g and reports whether the filter
	// has anything to check for it; a filter that does not apply is skipped.
	setTask(g *groupSpec) bool
	// fit returns how many more tasks of the group node c can take: 0
	// refuses the node, unlimited means this filter sets no bound.
	fit(c *candidate) int
	// Explain says why the filter refused the given number of nodes, in
	// the words Docker users know ("insufficient resources on 3 nodes").
	Explain(nodes int) string
	// Cause names the filter in a word, for metrics (Unplaced.Cause).
	Cause() string
}

// onNodes renders "<what> on 1 node" / "<what> on N nodes".
func onNodes(what string, nodes int) string {
	if nodes == 1 {
		return what + " on 1 node"
	}
	return fmt.Sprintf("%s on %d nodes", what, nodes)
}

// nodesAre renders "1 node <what>" / "N nodes <what>".
func nodesAre(what string, nodes int) string {
	if nodes == 1 {
		return "1 node " + what
	}
	return fmt.Sprintf("%d nodes %s", nodes, what)
}

func yesNo(ok bool) int {
	if ok {
		return unlimited
	}
	return 0
}

// readyFilter refuses nodes whose agent is not connected and healthy.
type readyFilter struct{}

func (readyFilter) setTask(*groupSpec) bool { return true }
func (readyFilter) fit(c *candidate) int    { return yesNo(c.n.ready) }
func (readyFilter) Cause() string           { return "node-not-ready" }

func (readyFilter) Explain(nodes int) string { return nodesAre("not ready", nodes) }

// availabilityFilter refuses paused and drained nodes: both keep what runs
// there (drain moves it away elsewhere) but take nothing new.
type availabilityFilter struct{}

func (availabilityFilter) setTask(*groupSpec) bool { return true }
func (availabilityFilter) fit(c *candidate) int    { return yesNo(c.n.active) }
func (availabilityFilter) Cause() string           { return "node-availability" }

func (availabilityFilter) Explain(nodes int) string {
	return nodesAre("not available for new tasks (paused or drained)", nodes)
}

// platformFilter keeps nodes whose OS and architecture match one of the
// platforms the service lists (its image's platforms).
type platformFilter struct{ platforms []*api.Platform }

func (f *platformFilter) setTask(g *groupSpec) bool {
	f.platforms = g.platforms
	return len(f.platforms) > 0
}

func (f *platformFilter) fit(c *candidate) int {
	np := c.n.node.GetDescription().GetPlatform()
	for _, p := range f.platforms {
		if (p.GetOs() == "" || strings.EqualFold(p.GetOs(), np.GetOs())) &&
			(p.GetArchitecture() == "" || normArch(p.GetArchitecture()) == normArch(np.GetArchitecture())) {
			return unlimited
		}
	}
	return 0
}

func (*platformFilter) Cause() string { return "platform" }

func (f *platformFilter) Explain(nodes int) string { return onNodes("unsupported platform", nodes) }

// normArch folds the names uname and image configs use for one
// architecture, so an x86_64 node runs an amd64 image.
func normArch(a string) string {
	a = strings.ToLower(a)
	switch a {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64":
		return "arm64"
	case "armhf", "armv7l", "armel":
		return "arm"
	case "i386", "i686":
		return "386"
	}
	return a
}

// constraintFilter keeps nodes satisfying every placement constraint.
type constraintFilter struct{ cs []Constraint }

func (f *constraintFilter) setTask(g *groupSpec) bool {
	f.cs = g.constraints
	return len(f.cs) > 0
}

func (f *constraintFilter) fit(c *candidate) int { return yesNo(MatchAll(f.cs, c.n.node)) }

func (*constraintFilter) Cause() string { return "constraints" }

func (f *constraintFilter) Explain(nodes int) string {
	return onNodes("scheduling constraints not satisfied", nodes)
}

// resourceFilter fits tasks into what the node's description offers minus
// what tasks already there reserve. Only reservations count, never usage.
type resourceFilter struct{ g *groupSpec }

func (f *resourceFilter) setTask(g *groupSpec) bool {
	f.g = g
	return g.cpu > 0 || g.mem > 0 || len(g.generic) > 0
}

func (f *resourceFilter) fit(c *candidate) int {
	n, g := c.n, f.g
	fit := unlimited
	if g.cpu > 0 {
		fit = min(fit, quota(n.cpu-n.resCPU, g.cpu))
	}
	if g.mem > 0 {
		fit = min(fit, quota(n.mem-n.resMem, g.mem))
	}
	for _, r := range g.generic {
		fit = min(fit, quota(n.generic[r.kind]-n.resGeneric[r.kind], r.value))
	}
	return fit
}

// quota is how many times req fits in avail.
func quota(avail, req int64) int {
	if avail < req {
		return 0
	}
	return int(min(avail/req, int64(unlimited)))
}

// Explain names the resource when the task reserves only one kind, since
// "insufficient memory" tells the user more than "insufficient resources".
func (*resourceFilter) Cause() string { return "resources" }

func (f *resourceFilter) Explain(nodes int) string {
	g := f.g
	switch {
	case g.mem > 0 && g.cpu == 0 && len(g.generic) == 0:
		return onNodes("insufficient memory", nodes)
	case g.cpu > 0 && g.mem == 0 && len(g.generic) == 0:
		return onNodes("insufficient CPU", nodes)
	}
	return onNodes("insufficient resources", nodes)
}

// hostPortFilter refuses nodes where a host-mode port the task publishes is
// taken, and lets a node take only one task of the group, since two would
// collide with each other. It remembers which ports refused nodes, for
// Explain.
type hostPortFilter struct {
	ports []hostPort
	hit   []hostPort // ports found in use, in the order of g.ports
}

func (f *hostPortFilter) setTask(g *groupSpec) bool {
	f.ports = g.ports
	f.hit = f.hit[:0]
	return len(f.ports) > 0
}

func (f *hostPortFilter) fit(c *candidate) int {
	for _, p := range f.ports {
		if c.n.ports[p] > 0 {
			f.note(p)
			return 0
		}
	}
	return 1
}

func (f *hostPortFilter) note(p hostPort) {
	for _, h := range f.hit {
		if h == p {
			return
		}
	}
	f.hit = append(f.hit, p)
}

// Explain names the ports: "host-mode port 8080/tcp is in use on every
// eligible node" (the nodes that passed the filters before this one). A
// node filled by the group's own tasks holds all its ports: when no other
// task refused a node, all the group's ports are named.
func (*hostPortFilter) Cause() string { return "host-port" }

func (f *hostPortFilter) Explain(int) string {
	hit := f.hit
	if len(hit) == 0 {
		hit = f.ports
	}
	names := make([]string, len(hit))
	for i, p := range hit {
		names[i] = fmt.Sprintf("%d/%s", p.port, strings.ToLower(p.proto.String()))
	}
	if len(names) == 1 {
		return "host-mode port " + names[0] + " is in use on every eligible node"
	}
	return "host-mode port " + strings.Join(names, " or ") + " is in use on every eligible node"
}

// maxReplicasFilter caps the service's tasks per node (all spec versions
// count: during a rolling update old and new tasks share the node).
type maxReplicasFilter struct{ max uint64 }

func (f *maxReplicasFilter) setTask(g *groupSpec) bool {
	f.max = g.maxReplicas
	return f.max > 0
}

func (f *maxReplicasFilter) fit(c *candidate) int {
	if uint64(c.svc) >= f.max {
		return 0
	}
	return int(min(f.max-uint64(c.svc), uint64(unlimited)))
}

func (*maxReplicasFilter) Cause() string { return "max-replicas" }

func (f *maxReplicasFilter) Explain(nodes int) string {
	return onNodes(fmt.Sprintf("max replicas per node (%d) reached", f.max), nodes)
}

// pipeline runs the filters in a fixed order and counts, per filter, the
// nodes it was the first to refuse; the counts make the reason a task
// stays pending. The order is part of the output (a node refused by several
// filters is counted under the first), so it is fixed, cheapest and most
// telling first. Static filters depend only on the node and the spec;
// dynamic ones also on what is placed, and bound how many tasks fit.
type pipeline struct {
	filters []filter
	static  int   // filters[:static] are static
	on      []int // indexes of the filters that apply to the current group
	counts  []int
}

func newPipeline() pipeline {
	fs := []filter{
		readyFilter{}, availabilityFilter{}, &platformFilter{}, &constraintFilter{},
		&resourceFilter{}, &hostPortFilter{}, &maxReplicasFilter{},
	}
	return pipeline{filters: fs, static: 4, counts: make([]int, len(fs))}
}

// setTask readies the pipeline for g and clears the counts.
func (p *pipeline) setTask(g *groupSpec) {
	p.on = p.on[:0]
	for i, f := range p.filters {
		if f.setTask(g) {
			p.on = append(p.on, i)
		}
		p.counts[i] = 0
	}
}

// passStatic runs the static filters on c and counts a refusal.
func (p *pipeline) passStatic(c *candidate) bool {
	for _, i := range p.on {
		if i >= p.static {
			break
		}
		if p.filters[i].fit(c) == 0 {
			p.counts[i]++
			return false
		}
	}
	return true
}

// capacity runs the dynamic filters on c and sets c.cap, how many tasks
// fit (at most limit), and c.bind, the filter that bounds it (-1 if only
// limit does). A node that fits none counts as refused by that filter.
func (p *pipeline) capacity(c *candidate, limit int) {
	c.cap, c.bind = limit, -1
	for _, i := range p.on {
		if i < p.static {
			continue
		}
		if f := p.filters[i].fit(c); f < c.cap {
			c.cap, c.bind = f, int8(i)
			if f == 0 {
				p.counts[i]++
				return
			}
		}
	}
}

// cause names the filter that refused the most nodes ("no-nodes" when
// there were none), for metrics.
func (p *pipeline) cause() string {
	best, most := "no-nodes", 0
	for i, n := range p.counts {
		if n > most {
			best, most = p.filters[i].Cause(), n
		}
	}
	return best
}

// reason renders the counts as Docker does:
// "no suitable node (scheduling constraints not satisfied on 3 nodes; insufficient resources on 2 nodes)".
func (p *pipeline) reason() string {
	var parts []string
	for i, n := range p.counts {
		if n > 0 {
			parts = append(parts, p.filters[i].Explain(n))
		}
	}
	if len(parts) == 0 {
		return "no suitable node (no nodes in the cluster)"
	}
	return "no suitable node (" + strings.Join(parts, "; ") + ")"
}
