package scheduler

import (
	"github.com/hivesec/hive/structs"
)

// evalCtx is what the stages of one evaluation share: the nodes with
// their rows (class, capacity, usage kept up to date as the plan grows),
// how many of the job's allocations each node holds, and the metrics of
// the placement in progress. Everything is indexed by the node's position
// in nodes, so the hot path reads arrays, not maps.
type evalCtx struct {
	st       State
	nodes    []*structs.Node
	rows     []NodeRow
	loaded   []bool // nil when the State gave rows; else rows are filled lazily
	classes  map[string]uint32
	nclasses int
	jobCount []int32 // this job's allocations per node, all groups, after this plan

	index map[string]int // node ID → position; built on first use

	metrics placementMetrics
	reasons []string // filter reasons, by id
}

func newEvalCtx(st State) *evalCtx {
	c := &evalCtx{st: st}
	if t, ok := st.(NodeTableState); ok {
		c.nodes, c.rows = t.NodeTable()
		for _, r := range c.rows {
			c.nclasses = max(c.nclasses, int(r.Class)+1)
		}
	} else {
		c.nodes = st.Nodes()
		c.rows = make([]NodeRow, len(c.nodes))
		c.loaded = make([]bool, len(c.nodes))
		c.classes = map[string]uint32{}
	}
	c.jobCount = make([]int32, len(c.nodes))
	return c
}

// nodeIndex returns the node's position, or -1 if it is not in nodes.
func (c *evalCtx) nodeIndex(id string) int {
	if c.index == nil {
		c.index = make(map[string]int, len(c.nodes))
		for i, n := range c.nodes {
			c.index[n.ID] = i
		}
	}
	if i, ok := c.index[id]; ok {
		return i
	}
	return -1
}

// row returns node i's row, deriving it on first use when the State keeps
// no table.
func (c *evalCtx) row(i int) *NodeRow {
	r := &c.rows[i]
	if c.loaded != nil && !c.loaded[i] {
		c.loaded[i] = true
		n := c.nodes[i]
		key := ComputedClass(n)
		cl, ok := c.classes[key]
		if !ok {
			cl = uint32(len(c.classes))
			c.classes[key] = cl
			c.nclasses = len(c.classes)
		}
		r.Class, r.Capacity = cl, n.Resources
		// Plan deltas recorded before the load are already in r.Used.
		for _, a := range c.st.AllocsByNode(n.ID) {
			if live(a) {
				r.Used.CPU += a.Resources.CPU
				r.Used.MemoryMB += a.Resources.MemoryMB
			}
		}
	}
	return r
}

// addUsage records a placement (sign 1) or a stop (sign -1) in this plan.
func (c *evalCtx) addUsage(i int, res structs.Resources, sign int) {
	r := &c.rows[i]
	r.Used.CPU += sign * res.CPU
	r.Used.MemoryMB += sign * res.MemoryMB
}

// reason interns a filter reason and returns its id.
func (c *evalCtx) reason(r string) int {
	for i, x := range c.reasons {
		if x == r {
			return i
		}
	}
	c.reasons = append(c.reasons, r)
	return len(c.reasons) - 1
}

// placementMetrics counts what one placement attempt saw. It is kept as
// plain counters and turned into an AllocMetric only when needed.
type placementMetrics struct {
	evaluated, filtered, exhausted int
	byReason                       []int // by reason id
	cpu, memory                    int   // exhausted dimensions
}

func (m *placementMetrics) reset() {
	m.evaluated, m.filtered, m.exhausted, m.cpu, m.memory = 0, 0, 0, 0, 0
	for i := range m.byReason {
		m.byReason[i] = 0
	}
}

func (m *placementMetrics) filter(reason int) {
	m.filtered++
	for len(m.byReason) <= reason {
		m.byReason = append(m.byReason, 0)
	}
	m.byReason[reason]++
}

// allocMetric renders the counters; maps are only made when non-empty.
func (c *evalCtx) allocMetric() *structs.AllocMetric {
	m := &c.metrics
	am := &structs.AllocMetric{NodesEvaluated: m.evaluated, NodesFiltered: m.filtered, NodesExhausted: m.exhausted}
	for id, n := range m.byReason {
		if n > 0 {
			if am.ConstraintFiltered == nil {
				am.ConstraintFiltered = map[string]int{}
			}
			am.ConstraintFiltered[c.reasons[id]] = n
		}
	}
	if m.cpu > 0 || m.memory > 0 {
		am.DimensionExhausted = map[string]int{}
		if m.cpu > 0 {
			am.DimensionExhausted["cpu"] = m.cpu
		}
		if m.memory > 0 {
			am.DimensionExhausted["memory"] = m.memory
		}
	}
	return am
}
