package server

import (
	"sync"

	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/scheduler"
	"github.com/hivesec/hive/structs"
)

// schedState adapts a state store snapshot to the scheduler's read-only
// State. One is made per scheduling attempt, over a fresh snapshot.
type schedState struct {
	snap  *state.Snapshot
	nodes []*structs.Node // read once: the scheduler asks for them often
	// job, when set, replaces the stored job of the same namespace and ID
	// (a plan dry run schedules the proposed version).
	job *structs.Job
}

var _ scheduler.State = (*schedState)(nil)

func newSchedState(snap *state.Snapshot) *schedState { return &schedState{snap: snap} }

func (s *schedState) Nodes() []*structs.Node {
	if s.nodes == nil {
		s.nodes = s.snap.Nodes(nil)
	}
	return s.nodes
}

func (s *schedState) Node(id string) *structs.Node { return s.snap.Node(nil, id) }

func (s *schedState) Job(ns, id string) *structs.Job {
	if s.job != nil && s.job.Namespace == ns && s.job.ID == id {
		return s.job
	}
	return s.snap.Job(nil, ns, id)
}

func (s *schedState) AllocsByJob(ns, jobID string) []*structs.Allocation {
	return s.snap.AllocsByJob(nil, ns, jobID)
}

func (s *schedState) AllocsByNode(nodeID string) []*structs.Allocation {
	return s.snap.AllocsByNode(nil, nodeID)
}

func (s *schedState) LatestDeployment(ns, jobID string) *structs.Deployment {
	return s.snap.LatestDeployment(nil, ns, jobID)
}

// nodeTable is the scheduler's per-node table (class, capacity, usage of
// live allocations) for one state: the one whose allocations and nodes
// tables were last written at allocIdx and nodeIdx in store. Every write of an
// allocation or a node bumps its table's index in the same transaction, so
// two snapshots with equal indexes hold equal allocations and nodes, and a
// table built from one is exact for the other. It is read-only once built.
type nodeTable struct {
	store             *state.Store
	allocIdx, nodeIdx uint64
	nodes             []*structs.Node
	rows              []scheduler.NodeRow
	keys              []string // ComputedClass of nodes[i]
	pos               map[string]int
}

// nodeTableCache keeps the latest table so the evaluations and the plan
// applier batches that see the same state build it once.
type nodeTableCache struct {
	mu  sync.Mutex
	cur *nodeTable
}

// get returns the table for snap, a snapshot of store, building it when
// the cached one is for another state.
func (c *nodeTableCache) get(store *state.Store, snap *state.Snapshot) *nodeTable {
	ai, ni := snap.Index(state.TableAllocs), snap.Index(state.TableNodes)
	c.mu.Lock()
	prev := c.cur
	c.mu.Unlock()
	if prev != nil && prev.store != store {
		prev = nil // replaced (a snapshot restore): start afresh
	}
	if prev != nil && prev.allocIdx == ai && prev.nodeIdx == ni {
		return prev
	}
	t := buildNodeTable(snap, ai, ni, prev)
	t.store = store
	c.mu.Lock()
	if c.cur == nil || c.cur.store != store || ai > c.cur.allocIdx || (ai == c.cur.allocIdx && ni >= c.cur.nodeIdx) {
		c.cur = t
	}
	c.mu.Unlock()
	return t
}

func buildNodeTable(snap *state.Snapshot, ai, ni uint64, prev *nodeTable) *nodeTable {
	nodes := snap.Nodes(nil)
	t := &nodeTable{
		allocIdx: ai, nodeIdx: ni, nodes: nodes,
		rows: make([]scheduler.NodeRow, len(nodes)),
		keys: make([]string, len(nodes)),
		pos:  make(map[string]int, len(nodes)),
	}
	classes := map[string]uint32{}
	for i, n := range nodes {
		t.pos[n.ID] = i
		// Stored nodes are never modified in place: the same pointer is
		// the same node, and its class is already known.
		key := ""
		if prev != nil {
			if j, ok := prev.pos[n.ID]; ok && prev.nodes[j] == n {
				key = prev.keys[j]
			}
		}
		if key == "" {
			key = scheduler.ComputedClass(n)
		}
		t.keys[i] = key
		c, ok := classes[key]
		if !ok {
			c = uint32(len(classes))
			classes[key] = c
		}
		r := &t.rows[i]
		r.Class, r.Capacity = c, n.Resources
		r.Used = snap.NodeUsed(n.ID)
	}
	return t
}

// tableSchedState is a schedState that also gives the scheduler its node
// table (scheduler.NodeTableState) from a shared cache.
type tableSchedState struct {
	*schedState
	table *nodeTable
}

var _ scheduler.NodeTableState = tableSchedState{}

func newTableSchedState(store *state.Store, snap *state.Snapshot, c *nodeTableCache) tableSchedState {
	t := c.get(store, snap)
	return tableSchedState{schedState: &schedState{snap: snap, nodes: t.nodes}, table: t}
}

// NodeTable implements scheduler.NodeTableState.
func (s tableSchedState) NodeTable() ([]*structs.Node, []scheduler.NodeRow) {
	return s.table.nodes, append([]scheduler.NodeRow(nil), s.table.rows...)
}
