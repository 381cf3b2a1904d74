package server

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// The plan applier is the single goroutine on the leader that turns
// scheduler plans into committed allocations. Workers schedule in parallel
// on snapshots that may be stale by the time their plans arrive, so every
// node a plan places on is checked again here against the latest state plus
// the plans accepted before it: the node must still exist and take work,
// and what is placed must fit next to its live allocations. A node that no
// longer fits loses its part of the plan (partial rejection); the worker
// then schedules the evaluation again on fresh state.

// maxPlanBatch bounds how many queued plans share one round of commits.
const maxPlanBatch = 64

type planRequest struct {
	plan *structs.Plan
	resp chan planResult
}

// planResult tells a worker what became of its plan.
type planResult struct {
	index    uint64   // Raft index of the commit (0: nothing committed)
	rejected []string // nodes whose part was refused
	err      error
}

type planApplier struct {
	s     *Server
	queue chan *planRequest
	// tables caches the per-node usage of the latest state, shared with
	// the scheduler workers.
	tables nodeTableCache
}

func newPlanApplier(s *Server) *planApplier {
	return &planApplier{s: s, queue: make(chan *planRequest, 256)}
}

// submit hands a plan to the applier and waits for the outcome.
func (p *planApplier) submit(ctx context.Context, plan *structs.Plan) planResult {
	req := &planRequest{plan: plan, resp: make(chan planResult, 1)}
	select {
	case p.queue <- req:
	case <-ctx.Done():
		return planResult{err: ctx.Err()}
	}
	select {
	case r := <-req.resp:
		return r
	case <-ctx.Done():
		return planResult{err: ctx.Err()}
	}
}

func (p *planApplier) run(ctx context.Context) {
	for {
		var batch []*planRequest
		select {
		case <-ctx.Done():
			return
		case r := <-p.queue:
			batch = append(batch, r)
		}
	gather:
		for len(batch) < maxPlanBatch {
			select {
			case r := <-p.queue:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		p.applyBatch(batch)
	}
}

// applyBatch checks the plans in order against one snapshot plus the
// effect of the plans before them, then commits them together: the write
// batcher packs concurrent applies into one Raft entry.
func (p *planApplier) applyBatch(batch []*planRequest) {
	store := p.s.fsm.State()
	snap := store.Snapshot()
	u := newUsage(snap, p.tables.get(store, snap))
	now := time.Now().UTC()
	reqs := make([]*fsm.PlanApplyRequest, len(batch))
	rejected := make([][]string, len(batch))
	freed := false
	for i, r := range batch {
		reqs[i], rejected[i] = evaluatePlan(snap, u, r.plan, now)
		freed = freed || len(reqs[i].Stops) > 0
	}
	results := make([]planResult, len(batch))
	var wg sync.WaitGroup
	for i := range batch {
		req := reqs[i]
		results[i].rejected = rejected[i]
		if len(req.Stops) == 0 && len(req.Allocs) == 0 && len(req.Placed) == 0 && req.Deployment == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, idx, err := p.s.applyIndex(fsm.PlanApplyType, req)
			results[i].index, results[i].err = idx, err
		}()
	}
	wg.Wait()
	for i, r := range batch {
		r.resp <- results[i]
	}
	if freed {
		// Stopped allocations free capacity blocked evaluations may need.
		p.s.unblockEvals("allocations were stopped")
	}
}

// usage tracks the resources of live allocations per node as the plans of
// a batch are accepted: the snapshot's usage (from its node table) plus
// what the batch changed.
type usage struct {
	snap  *state.Snapshot
	table *nodeTable // for snap; nil: sum each node's allocations
	nodes map[string]*nodeUsage
}

type nodeUsage struct {
	id   string
	snap *state.Snapshot
	used structs.Resources
	// changed overrides, for the allocations this batch stopped or
	// placed on the node, what the snapshot says they take.
	changed map[string]allocUse
}

type allocUse struct {
	res  structs.Resources
	live bool
}

func newUsage(snap *state.Snapshot, table *nodeTable) *usage {
	return &usage{snap: snap, table: table, nodes: map[string]*nodeUsage{}}
}

// live reports whether an allocation holds resources on its node, the
// scheduler's rule: wanted running and not given up by the worker.
func live(a *structs.Allocation) bool { return a.HoldsResources() }

func (u *usage) node(id string) *nodeUsage {
	if n := u.nodes[id]; n != nil {
		return n
	}
	n := &nodeUsage{id: id, snap: u.snap}
	if i, ok := u.tablePos(id); ok {
		n.used = u.table.rows[i].Used
	} else {
		n.used = u.snap.NodeUsed(id)
	}
	u.nodes[id] = n
	return n
}

func (u *usage) tablePos(id string) (int, bool) {
	if u.table == nil {
		return 0, false
	}
	i, ok := u.table.pos[id]
	return i, ok
}

// takes returns what allocation id takes on the node, if it is live there.
func (n *nodeUsage) takes(id string) (structs.Resources, bool) {
	if c, ok := n.changed[id]; ok {
		return c.res, c.live
	}
	if a := n.snap.Alloc(nil, id); a != nil && a.NodeID == n.id && live(a) {
		return a.Resources, true
	}
	return structs.Resources{}, false
}

func (n *nodeUsage) remove(id string) {
	if r, ok := n.takes(id); ok {
		n.used.CPU -= r.CPU
		n.used.MemoryMB -= r.MemoryMB
	}
	if n.changed == nil {
		n.changed = map[string]allocUse{}
	}
	n.changed[id] = allocUse{}
}

func (n *nodeUsage) add(id string, r structs.Resources) {
	n.remove(id)
	n.changed[id] = allocUse{res: r, live: true}
	n.used.CPU += r.CPU
	n.used.MemoryMB += r.MemoryMB
}

// evaluatePlan decides, node by node, what of plan is accepted, records
// the accepted part in u and returns it as a command.
func evaluatePlan(snap *state.Snapshot, u *usage, plan *structs.Plan, now time.Time) (*fsm.PlanApplyRequest, []string) {
	req := &fsm.PlanApplyRequest{EvalID: plan.EvalID, Now: now}
	nodeIDs := map[string]bool{}
	for id := range plan.NodeUpdate {
		nodeIDs[id] = true
	}
	for id := range plan.NodeAllocation {
		nodeIDs[id] = true
	}
	ids := make([]string, 0, len(nodeIDs))
	for id := range nodeIDs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var rejected []string
	for _, id := range ids {
		stops := plan.NodeUpdate[id]
		places := make([]*structs.Allocation, len(plan.NodeAllocation[id]))
		for i, a := range plan.NodeAllocation[id] {
			places[i] = completeAlloc(plan, a)
		}
		if len(places) > 0 {
			if why := nodeFits(snap, u, id, stops, places); why != "" {
				rejected = append(rejected, id)
				continue
			}
		}
		n := u.node(id)
		for _, a := range stops {
			if snap.Alloc(nil, a.ID) == nil {
				continue // gone meanwhile (a purge); nothing to stop
			}
			n.remove(a.ID)
			req.Stops = append(req.Stops, a)
		}
		for _, a := range places {
			if live(a) {
				n.add(a.ID, a.Resources)
			} else {
				n.remove(a.ID)
			}
			req.Allocs = append(req.Allocs, withoutGroupTasks(plan, a))
		}
	}
	if len(rejected) == 0 || len(req.Allocs) > 0 || len(req.Stops) > 0 {
		req.Deployment = plan.Deployment
	}
	req.Allocs, req.Placed = fsm.CompactAllocs(req.Allocs)
	return req, rejected
}

// nodeFits says why node id cannot take places after stops, or "".
func nodeFits(snap *state.Snapshot, u *usage, id string, stops, places []*structs.Allocation) string {
	node := snap.Node(nil, id)
	if node == nil {
		return "node no longer exists"
	}
	newPlacement := false
	for _, a := range places {
		if old := snap.Alloc(nil, a.ID); old == nil || old.NodeID != id {
			newPlacement = true
		}
	}
	if newPlacement && !node.Schedulable() {
		return fmt.Sprintf("node is %s (cordoned %v, draining %v)", node.Status, node.Cordoned, node.Draining)
	}
	if node.Status == structs.NodeStatusDown {
		return "node is down"
	}
	n := u.node(id)
	used := n.used
	for _, a := range stops {
		if r, ok := n.takes(a.ID); ok {
			used.CPU -= r.CPU
			used.MemoryMB -= r.MemoryMB
		}
	}
	for _, a := range places {
		if r, ok := n.takes(a.ID); ok { // in-place: replaces what it took
			used.CPU -= r.CPU
			used.MemoryMB -= r.MemoryMB
		}
		if live(a) {
			used.CPU += a.Resources.CPU
			used.MemoryMB += a.Resources.MemoryMB
		}
	}
	if used.CPU > node.Resources.CPU || used.MemoryMB > node.Resources.MemoryMB {
		return fmt.Sprintf("needs cpu %d/%d MHz, memory %d/%d MiB", used.CPU, node.Resources.CPU, used.MemoryMB, node.Resources.MemoryMB)
	}
	return ""
}

// withoutGroupTasks leaves out an allocation's tasks when they are its
// group's tasks in the plan's job version, which the FSM looks up instead
// (see fsm.PlanApplyRequest).
func withoutGroupTasks(plan *structs.Plan, a *structs.Allocation) *structs.Allocation {
	if plan.Job == nil || a.JobVersion != plan.Job.Version || a.JobID != plan.Job.ID || a.Namespace != plan.Job.Namespace {
		return a
	}
	g := plan.Job.LookupGroup(a.Group)
	if g == nil || !sameTasks(a.Tasks, g.Tasks) {
		return a
	}
	cp := *a
	cp.Tasks = nil
	return &cp
}

// sameTasks reports whether two task lists are the same slice, which is
// how the scheduler hands out a group's tasks.
func sameTasks(a, b []*structs.Task) bool {
	return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0]
}

// completeAlloc fills in what the worker agent and the watchers need and
// the scheduler may have left out.
func completeAlloc(plan *structs.Plan, a *structs.Allocation) *structs.Allocation {
	if a.EvalID != "" && len(a.Tasks) > 0 && a.Resources != (structs.Resources{}) {
		return a
	}
	cp := *a
	if cp.EvalID == "" {
		cp.EvalID = plan.EvalID
	}
	if plan.Job != nil {
		if g := plan.Job.LookupGroup(cp.Group); g != nil {
			if len(cp.Tasks) == 0 {
				cp.Tasks = g.Tasks
			}
			if cp.Resources == (structs.Resources{}) {
				cp.Resources = g.Resources()
			}
		}
	}
	return &cp
}
