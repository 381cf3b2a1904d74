package scheduler

import (
	"github.com/hivesec/hive/structs"
)

// nodeIter yields node positions (indexes into evalCtx.nodes); -1 when done.
type nodeIter interface {
	Next() int
	Reset()
}

// sourceIter walks the nodes in a random order (a permutation drawn once
// per evaluation), round-robin. Reset starts a new pass where the last one
// stopped, as Nomad's StaticIterator does: a placement that looks at a
// dozen nodes leaves the next one to start at the thirteenth, so
// consecutive placements spread over the cluster and the scan stays short.
type sourceIter struct {
	order        []int32
	offset, seen int
}

func (it *sourceIter) Next() int {
	if it.seen >= len(it.order) {
		return -1
	}
	i := it.order[it.offset]
	it.offset++
	if it.offset == len(it.order) {
		it.offset = 0
	}
	it.seen++
	return int(i)
}

func (it *sourceIter) Reset() { it.seen = 0 }

// staticCheck is one feasibility rule that depends only on the node and the
// group, so its answer is cached for the evaluation: per node class, or per
// node when the rule reads the node's ID or name (unique).
type staticCheck struct {
	reason int
	check  nodeCheck
	unique bool
}

// feasibilityIter drops nodes that fail a static check. Each class of
// nodes is checked once per group per evaluation — Nomad's computed node
// classes — and each node once more for the rules that read its ID or
// name.
type feasibilityIter struct {
	ctx       *evalCtx
	src       nodeIter
	checks    []staticCheck // class-wide
	unique    []staticCheck // per node
	byClass   []uint16      // 0 unknown, 1 feasible, 2+r filtered by reason r
	byNode    []uint16      // for unique checks only
	unschedOK bool          // for in-place updates: cordon/drain do not filter
}

const (
	feasUnknown  = 0
	feasOK       = 1
	feasFiltered = 2
)

func newFeasibilityIter(ctx *evalCtx, src nodeIter, checks []staticCheck) *feasibilityIter {
	it := &feasibilityIter{ctx: ctx, src: src}
	for _, c := range checks {
		if c.unique {
			it.unique = append(it.unique, c)
		} else {
			it.checks = append(it.checks, c)
		}
	}
	if len(it.unique) > 0 {
		it.byNode = make([]uint16, len(ctx.nodes))
	}
	return it
}

func (it *feasibilityIter) Next() int {
	for {
		i := it.src.Next()
		if i < 0 {
			return -1
		}
		it.ctx.metrics.evaluated++
		code := it.status(i)
		if code == feasOK {
			return i
		}
		it.ctx.metrics.filter(int(code - feasFiltered))
	}
}

// status returns the cached verdict for node i, computing it on first use.
func (it *feasibilityIter) status(i int) uint16 {
	cl := int(it.ctx.row(i).Class)
	for cl >= len(it.byClass) {
		it.byClass = append(it.byClass, make([]uint16, max(it.ctx.nclasses, cl+1)-len(it.byClass))...)
	}
	code := it.byClass[cl]
	if code == feasUnknown {
		code = it.run(it.ctx.nodes[i], it.checks, true)
		it.byClass[cl] = code
	}
	if code != feasOK || it.byNode == nil {
		return code
	}
	if code = it.byNode[i]; code == feasUnknown {
		code = it.run(it.ctx.nodes[i], it.unique, false)
		it.byNode[i] = code
	}
	return code
}

func (it *feasibilityIter) run(n *structs.Node, checks []staticCheck, sched bool) uint16 {
	if sched {
		if r := schedulableReason(n); r != "" && !(it.unschedOK && (n.Cordoned || n.Draining) && n.Role == structs.RoleWorker && n.Status == structs.NodeStatusReady) {
			return uint16(it.ctx.reason(r) + feasFiltered)
		}
	}
	for _, c := range checks {
		if !c.check(n) {
			return uint16(c.reason + feasFiltered)
		}
	}
	return feasOK
}

// feasible reports whether node i passes the static checks.
func (it *feasibilityIter) feasible(i int) bool { return it.status(i) == feasOK }

func (it *feasibilityIter) Reset() { it.src.Reset() }

// schedulableReason names why a node takes no new allocations.
func schedulableReason(n *structs.Node) string {
	switch {
	case n.Role != structs.RoleWorker:
		return "node is not a worker"
	case n.Status != structs.NodeStatusReady:
		return "node is not ready"
	case n.Cordoned:
		return "node is cordoned"
	case n.Draining:
		return "node is draining"
	}
	return ""
}

// distinctHostsIter drops nodes that already hold an allocation of the job
// (job-level distinct_hosts) or of the group (group-level), counting this
// plan's placements. Its answer changes as the plan grows, so it is not
// cached.
type distinctHostsIter struct {
	ctx        *evalCtx
	src        nodeIter
	job, group bool
	groupCount []int32 // the group's allocations per node, after this plan
	reason     int
}

func (it *distinctHostsIter) Next() int {
	for {
		i := it.src.Next()
		if i < 0 {
			return -1
		}
		if (it.job && it.ctx.jobCount[i] > 0) || (it.group && it.groupCount[i] > 0) {
			it.ctx.metrics.filter(it.reason)
			continue
		}
		return i
	}
}

func (it *distinctHostsIter) Reset() { it.src.Reset() }
