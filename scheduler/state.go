package scheduler

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/hivesec/hive/structs"
)

// State is the read-only view the scheduler needs. The server adapts its
// memdb snapshot to it; tests and benchmarks use MemState. Slices returned
// belong to the State: the scheduler never modifies them or what they point
// to.
type State interface {
	Nodes() []*structs.Node // all nodes; the scheduler filters
	Node(id string) *structs.Node
	Job(namespace, id string) *structs.Job
	AllocsByJob(namespace, jobID string) []*structs.Allocation
	AllocsByNode(nodeID string) []*structs.Allocation
	LatestDeployment(namespace, jobID string) *structs.Deployment
}

// NodeTableState is optionally implemented by a State that keeps compact
// per-node data next to its nodes, which makes an evaluation's cost per
// node a few array reads instead of map lookups: rows[i] describes
// nodes[i]. Without it the scheduler derives the same data itself (a
// class per node, and usage by summing AllocsByNode) for the nodes it
// visits.
type NodeTableState interface {
	// NodeTable returns every node (the slice is shared: read-only) and a
	// fresh copy of their rows, which the scheduler may modify.
	NodeTable() (nodes []*structs.Node, rows []NodeRow)
}

// NodeRow is what the scheduler needs of a node on its hot path.
type NodeRow struct {
	// Class is the node's computed class: nodes with the same class agree
	// on everything a placement rule may read except their ID and name
	// (role, status, cordon, drain, labels, attributes), so feasibility is
	// decided once per class — Nomad's computed node classes.
	Class    uint32
	Capacity structs.Resources
	// Used is what the node's live allocations take.
	Used structs.Resources
}

// ComputedClass returns the canonical description of n that NodeRow.Class
// numbers: equal strings, equal classes.
func ComputedClass(n *structs.Node) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%t|%t", n.Role, n.Status, n.Cordoned, n.Draining)
	for _, m := range []map[string]string{n.Labels, n.Attributes} {
		b.WriteString("|")
		for _, k := range sortedKeys(m) {
			fmt.Fprintf(&b, "%q=%q,", k, m[k])
		}
	}
	return b.String()
}

// live reports whether an allocation holds its slot and its resources.
func live(a *structs.Allocation) bool { return a.HoldsResources() }

type nsKey struct{ ns, id string }

// MemState is an in-memory State that plans can be applied to, as the
// leader's plan applier would: the scheduler's tests, the C1M benchmark and
// the server's tests use it. It keeps per-node usage incrementally, so it
// also implements UsageState. Safe for concurrent use.
type MemState struct {
	mu          sync.RWMutex
	nodes       []*structs.Node // sorted by ID
	rows        []NodeRow       // parallel to nodes
	nodePos     map[string]int  // ID → position in nodes
	classes     map[string]uint32
	nodeByID    map[string]*structs.Node
	jobs        map[nsKey]*structs.Job
	allocs      map[string]*structs.Allocation
	byNode      map[string][]*structs.Allocation // nodes not (yet) in nodes
	nodeAllocs  [][]*structs.Allocation          // parallel to nodes
	byJob       map[nsKey][]*structs.Allocation
	deployments map[nsKey]*structs.Deployment
	usage       map[string]structs.Resources // nodes not (yet) in nodes
}

// NewMemState returns an empty state.
func NewMemState() *MemState {
	return &MemState{
		nodeByID:    map[string]*structs.Node{},
		nodePos:     map[string]int{},
		classes:     map[string]uint32{},
		jobs:        map[nsKey]*structs.Job{},
		allocs:      map[string]*structs.Allocation{},
		byNode:      map[string][]*structs.Allocation{},
		byJob:       map[nsKey][]*structs.Allocation{},
		deployments: map[nsKey]*structs.Deployment{},
		usage:       map[string]structs.Resources{},
	}
}

// UpsertNode adds or replaces a node.
func (s *MemState) UpsertNode(n *structs.Node) { s.UpsertNodes([]*structs.Node{n}) }

// UpsertNodes adds or replaces many nodes at once.
func (s *MemState) UpsertNodes(ns []*structs.Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	byID := make(map[string]*structs.Node, len(s.nodeByID)+len(ns))
	for id, n := range s.nodeByID {
		byID[id] = n
	}
	for _, n := range ns {
		byID[n.ID] = n
	}
	// New slices: callers may hold the previous ones.
	nodes := make([]*structs.Node, 0, len(byID))
	for _, n := range byID {
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	rows := make([]NodeRow, len(nodes))
	pos := make(map[string]int, len(nodes))
	for i, n := range nodes {
		key := ComputedClass(n)
		c, ok := s.classes[key]
		if !ok {
			c = uint32(len(s.classes))
			s.classes[key] = c
		}
		rows[i] = NodeRow{Class: c, Capacity: n.Resources}
		pos[n.ID] = i
	}
	// Carry usage and allocation lists over to the new positions.
	lists := make([][]*structs.Allocation, len(nodes))
	for id, i := range s.nodePos {
		j := pos[id]
		lists[j], rows[j].Used = s.nodeAllocs[i], s.rows[i].Used
	}
	for i, n := range nodes {
		if l, ok := s.byNode[n.ID]; ok {
			lists[i], rows[i].Used = l, s.usage[n.ID]
			delete(s.byNode, n.ID)
			delete(s.usage, n.ID)
		}
	}
	s.nodes, s.rows, s.nodePos, s.nodeByID, s.nodeAllocs = nodes, rows, pos, byID, lists
}

// UpsertJob adds or replaces a job.
func (s *MemState) UpsertJob(j *structs.Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs[nsKey{j.Namespace, j.ID}] = j
}

// DeleteJob removes a job (its allocations stay, as after a purge before
// the scheduler has stopped them).
func (s *MemState) DeleteJob(namespace, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, nsKey{namespace, id})
}

// UpsertDeployment adds or replaces a deployment; the latest one per job is
// the one upserted last.
func (s *MemState) UpsertDeployment(d *structs.Deployment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deployments[nsKey{d.Namespace, d.JobID}] = d
}

// UpsertAllocs adds or replaces allocations by ID.
func (s *MemState) UpsertAllocs(allocs ...*structs.Allocation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range allocs {
		s.upsertAllocLocked(a)
	}
}

func (s *MemState) upsertAllocLocked(a *structs.Allocation) {
	jk := nsKey{a.Namespace, a.JobID}
	s.byJob[jk] = s.upsertInJob(s.byJob[jk], a)
}

// upsertInJob upserts a, whose job's allocations are list, and returns the
// job's new list; ApplyPlan calls it directly to look the job up once.
func (s *MemState) upsertInJob(list []*structs.Allocation, a *structs.Allocation) []*structs.Allocation {
	if old, ok := s.allocs[a.ID]; ok {
		if live(old) {
			s.addUsage(old.NodeID, old.Resources, -1)
		}
		if old.NodeID == a.NodeID {
			replaceIn(s.nodeList(a.NodeID), a)
		} else {
			s.setNodeList(old.NodeID, removeFrom(s.nodeList(old.NodeID), a.ID))
			s.setNodeList(a.NodeID, append(s.nodeList(a.NodeID), a))
		}
		replaceIn(list, a)
	} else {
		if i, ok := s.nodePos[a.NodeID]; ok {
			s.nodeAllocs[i] = append(s.nodeAllocs[i], a)
		} else {
			s.byNode[a.NodeID] = append(s.byNode[a.NodeID], a)
		}
		list = append(list, a)
	}
	s.allocs[a.ID] = a
	if live(a) {
		s.addUsage(a.NodeID, a.Resources, 1)
	}
	return list
}

func (s *MemState) nodeList(id string) []*structs.Allocation {
	if i, ok := s.nodePos[id]; ok {
		return s.nodeAllocs[i]
	}
	return s.byNode[id]
}

func (s *MemState) setNodeList(id string, l []*structs.Allocation) {
	if i, ok := s.nodePos[id]; ok {
		s.nodeAllocs[i] = l
		return
	}
	s.byNode[id] = l
}

// addUsage keeps usage in the node's row, or, for allocations on nodes
// not registered, in a map until the node appears.
func (s *MemState) addUsage(nodeID string, r structs.Resources, sign int) {
	if i, ok := s.nodePos[nodeID]; ok {
		u := &s.rows[i].Used
		u.CPU += sign * r.CPU
		u.MemoryMB += sign * r.MemoryMB
		return
	}
	u := s.usage[nodeID]
	u.CPU += sign * r.CPU
	u.MemoryMB += sign * r.MemoryMB
	s.usage[nodeID] = u
}

func replaceIn(list []*structs.Allocation, a *structs.Allocation) {
	for i, old := range list {
		if old.ID == a.ID {
			list[i] = a
			return
		}
	}
}

func removeFrom(list []*structs.Allocation, id string) []*structs.Allocation {
	for i, old := range list {
		if old.ID == id {
			return append(list[:i:i], list[i+1:]...)
		}
	}
	return list
}

// ApplyPlan applies a plan as the leader's plan applier does when every
// node still has room: stops first, then placements and in-place updates,
// then the deployment. It does not re-check capacity.
func (s *MemState) ApplyPlan(p *structs.Plan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, node := range sortedKeys(p.NodeUpdate) {
		for _, a := range p.NodeUpdate[node] {
			s.upsertAllocLocked(a)
		}
	}
	// A plan's allocations are all of one job: look its list up once.
	var jk nsKey
	var list []*structs.Allocation
	have := false
	for _, node := range sortedKeys(p.NodeAllocation) {
		for _, a := range p.NodeAllocation[node] {
			if k := (nsKey{a.Namespace, a.JobID}); !have || k != jk {
				if have {
					s.byJob[jk] = list
				}
				jk, list, have = k, s.byJob[k], true
			}
			list = s.upsertInJob(list, a)
		}
	}
	if have {
		s.byJob[jk] = list
	}
	if p.Deployment != nil {
		s.deployments[nsKey{p.Deployment.Namespace, p.Deployment.JobID}] = p.Deployment
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Alloc returns the allocation with id, or nil.
func (s *MemState) Alloc(id string) *structs.Allocation {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.allocs[id]
}

// Nodes returns every node sorted by ID. The slice is shared: do not modify.
func (s *MemState) Nodes() []*structs.Node {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.nodes
}

func (s *MemState) Node(id string) *structs.Node {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.nodeByID[id]
}

func (s *MemState) Job(namespace, id string) *structs.Job {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.jobs[nsKey{namespace, id}]
}

// AllocsByJob returns a copy of the job's allocations in insertion order.
func (s *MemState) AllocsByJob(namespace, jobID string) []*structs.Allocation {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]*structs.Allocation(nil), s.byJob[nsKey{namespace, jobID}]...)
}

// AllocsByNode returns a copy of the node's allocations in insertion order.
func (s *MemState) AllocsByNode(nodeID string) []*structs.Allocation {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]*structs.Allocation(nil), s.nodeList(nodeID)...)
}

func (s *MemState) LatestDeployment(namespace, jobID string) *structs.Deployment {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.deployments[nsKey{namespace, jobID}]
}

// NodeUsage returns the resources taken by live allocations on the node.
func (s *MemState) NodeUsage(nodeID string) structs.Resources {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if i, ok := s.nodePos[nodeID]; ok {
		return s.rows[i].Used
	}
	return s.usage[nodeID]
}

// NodeTable implements NodeTableState.
func (s *MemState) NodeTable() ([]*structs.Node, []NodeRow) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.nodes, append([]NodeRow(nil), s.rows...)
}
