package controlapi

import (
	"context"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/errdefs"
	"github.com/shoal-project/shoal/internal/specs"
	api "github.com/shoal-project/shoal/proto"
	"github.com/shoal-project/shoal/raftstore"
)

// Hostname is the name a node is known by: its spec name, else the
// hostname it reported (`node ls`, lookups by name).
func Hostname(n *api.Node) string {
	if h := n.GetSpec().GetAnnotations().GetName(); h != "" {
		return h
	}
	return n.GetDescription().GetHostname()
}

// decorate fills a node's manager status with the live raft view: who leads
// and who is reachable. The store keeps only the member's raft ID and
// address; liveness is not replicated state.
func (s *Server) decorate(nodes []*api.Node) []*api.Node {
	var members []raftstore.MemberStatus
	if s.members != nil {
		members = s.members.Members()
	}
	byNode := map[string]raftstore.MemberStatus{}
	for _, m := range members {
		byNode[m.NodeID] = m
	}
	out := make([]*api.Node, len(nodes))
	for i, n := range nodes {
		m, isMember := byNode[n.Id]
		if !isMember && n.ManagerStatus == nil {
			out[i] = n
			continue
		}
		c := proto.Clone(n).(*api.Node)
		if !isMember {
			c.ManagerStatus = nil
			out[i] = c
			continue
		}
		reach := api.Reachability_UNREACHABLE
		if m.Reachable {
			reach = api.Reachability_REACHABLE
		}
		c.ManagerStatus = &api.ManagerStatus{RaftId: m.RaftID, Addr: m.Addr, Leader: m.Leader, Reachability: reach, DiskFault: m.DiskFault}
		out[i] = c
	}
	return out
}

func (s *Server) lookupNode(ref string) (*api.Node, error) {
	var out *api.Node
	var err error
	s.store.View(func(tx raftstore.ReadTx) {
		out, err = raftstore.Lookup(tx, raftstore.KindNode, ref, Hostname)
	})
	if errdefs.IsNotFound(err) {
		return nil, errdefs.NotFound("node %s not found", refText(ref))
	}
	return out, err
}

// GetNode returns a node by ID, ID prefix or hostname.
func (s *Server) GetNode(_ context.Context, req *api.GetNodeRequest) (*api.GetNodeResponse, error) {
	n, err := s.lookupNode(req.GetNodeId())
	if err != nil {
		return nil, err
	}
	return &api.GetNodeResponse{Node: s.decorate([]*api.Node{n})[0]}, nil
}

// ListNodes lists nodes with filters, ordered by hostname then ID, one page
// at a time.
func (s *Server) ListNodes(_ context.Context, req *api.ListNodesRequest) (*api.ListNodesResponse, error) {
	f := req.GetFilters()
	var nodes []*api.Node
	s.store.View(func(tx raftstore.ReadTx) {
		for _, n := range tx.Nodes() {
			if !matchCommon(f, n.Id, Hostname(n), n.GetDescription().GetEngine().GetLabels()) {
				continue
			}
			if len(f.GetRoles()) > 0 && !containsRole(f.GetRoles(), n.GetSpec().GetDesiredRole()) {
				continue
			}
			if len(f.GetMemberships()) > 0 && !containsMembership(f.GetMemberships(), n.GetSpec().GetMembership()) {
				continue
			}
			if len(f.GetNodeLabels()) > 0 && !matchLabels(f.GetNodeLabels(), n.GetSpec().GetAnnotations().GetLabels()) {
				continue
			}
			nodes = append(nodes, n)
		}
	})
	key := func(n *api.Node) string { return Hostname(n) + "\x00" + n.Id }
	sort.Slice(nodes, func(i, j int) bool { return key(nodes[i]) < key(nodes[j]) })
	// Decoration adds a manager status of a few dozen bytes.
	size := func(n *api.Node) int { return entrySize(n) + 64 }
	nodes, next := page(nodes, key, size, req.GetPageToken(), s.pageBudget())
	return &api.ListNodesResponse{Nodes: s.decorate(nodes), NextPageToken: next}, nil
}

// UpdateNode changes a node's spec: availability, labels, role.
func (s *Server) UpdateNode(ctx context.Context, req *api.UpdateNodeRequest) (*api.UpdateNodeResponse, error) {
	spec := req.GetSpec()
	if spec == nil {
		return nil, errdefs.InvalidArgument("node spec is missing")
	}
	if err := specs.CheckUTF8("node spec", spec); err != nil {
		return nil, err
	}
	if err := specs.CheckLabels("node label", spec.GetAnnotations().GetLabels()); err != nil {
		return nil, err
	}
	var out *api.Node
	err := s.update(ctx, func(tx *raftstore.Tx) error {
		cur, err := raftstore.Lookup(tx.ReadTx, raftstore.KindNode, req.GetNodeId(), Hostname)
		if err != nil {
			return err
		}
		if err := checkVersion("node", cur.Id, req.GetNodeVersion(), cur.GetMeta().GetVersion(), cur.GetSpecBaseVersion()); err != nil {
			return err
		}
		if spec.DesiredRole == api.NodeRole_WORKER && cur.GetSpec().GetDesiredRole() == api.NodeRole_MANAGER {
			if err := s.checkDemotion(tx.ReadTx, cur); err != nil {
				return err
			}
		}
		next := proto.Clone(cur).(*api.Node)
		next.Spec = spec
		next.SpecBaseVersion = cur.GetMeta().GetVersion()
		out = next
		return tx.Update(next)
	})
	if err != nil {
		return nil, err
	}
	s.store.View(func(tx raftstore.ReadTx) { out = tx.Node(out.Id) })
	return &api.UpdateNodeResponse{Node: s.decorate([]*api.Node{out})[0]}, nil
}

// checkDemotion refuses to demote the last manager.
func (s *Server) checkDemotion(tx raftstore.ReadTx, n *api.Node) error {
	managers := 0
	for _, other := range tx.Nodes() {
		if other.GetSpec().GetDesiredRole() == api.NodeRole_MANAGER {
			managers++
		}
	}
	if managers <= 1 {
		return errdefs.FailedPrecondition("attempting to demote the last manager of the swarm")
	}
	if s.members == nil {
		return nil
	}
	total, reach, isMember := 0, 0, false
	for _, m := range s.members.Members() {
		total++
		if m.NodeID == n.Id {
			isMember = true
			continue // it leaves
		}
		if m.Reachable {
			reach++
		}
	}
	if isMember && reach < (total-1)/2+1 {
		return errdefs.FailedPrecondition("can't demote %s: it would result in the loss of quorum (%d of the remaining %d managers are reachable)", n.Id, reach, total-1)
	}
	return nil
}

// RemoveNode removes a node from the cluster. A manager must be demoted
// first; a node that is not down needs force.
func (s *Server) RemoveNode(ctx context.Context, req *api.RemoveNodeRequest) (*api.RemoveNodeResponse, error) {
	err := s.update(ctx, func(tx *raftstore.Tx) error {
		n, err := raftstore.Lookup(tx.ReadTx, raftstore.KindNode, req.GetNodeId(), Hostname)
		if err != nil {
			return err
		}
		if n.GetSpec().GetDesiredRole() == api.NodeRole_MANAGER || n.GetRole() == api.NodeRole_MANAGER {
			return errdefs.FailedPrecondition("node %s is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal", n.Id)
		}
		if !req.GetForce() && n.GetStatus().GetState() == api.NodeStatus_READY {
			return errdefs.FailedPrecondition("node %s is not down and can't be removed (use --force to remove it anyway)", n.Id)
		}
		if err := tx.Delete(unversioned(n)); err != nil {
			return err
		}
		cl := firstCluster(tx.ReadTx)
		if cl != nil {
			next := proto.Clone(cl).(*api.Cluster)
			next.RemovedNodes = append(next.RemovedNodes, &api.RemovedNode{NodeId: n.Id})
			return tx.Update(next)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &api.RemoveNodeResponse{}, nil
}

func firstCluster(tx raftstore.ReadTx) *api.Cluster {
	cs := tx.Clusters()
	if len(cs) == 0 {
		return nil
	}
	return cs[0]
}

// ---- filters ----

func matchCommon(f *api.ListFilters, id, name string, labels map[string]string) bool {
	if f == nil {
		return true
	}
	if len(f.Names) > 0 && !contains(f.Names, name) {
		return false
	}
	if len(f.NamePrefixes) > 0 && !anyPrefix(f.NamePrefixes, name) {
		return false
	}
	if len(f.IdPrefixes) > 0 && !anyPrefix(f.IdPrefixes, id) {
		return false
	}
	if len(f.Labels) > 0 && !matchLabels(f.Labels, labels) {
		return false
	}
	return true
}

// matchLabels: every filter must match ("key" = present, "key=value" exact).
func matchLabels(filters []string, labels map[string]string) bool {
	for _, l := range filters {
		k, v, hasValue := strings.Cut(l, "=")
		got, ok := labels[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	return true
}

// stringSet is list as a set; nil for an empty list (no filter).
func stringSet(list []string) map[string]bool {
	if len(list) == 0 {
		return nil
	}
	m := make(map[string]bool, len(list))
	for _, x := range list {
		m[x] = true
	}
	return m
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func anyPrefix(list []string, s string) bool {
	for _, p := range list {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func containsState(list []api.TaskState, s api.TaskState) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsRole(list []api.NodeRole, r api.NodeRole) bool {
	for _, x := range list {
		if x == r {
			return true
		}
	}
	return false
}

func containsMembership(list []api.NodeSpec_Membership, m api.NodeSpec_Membership) bool {
	for _, x := range list {
		if x == m {
			return true
		}
	}
	return false
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
