// Package scheduler turns an evaluation into a plan: a pure function of a
// read-only state snapshot and the evaluation, with time, randomness and
// IDs passed in (Options), so the same inputs give the same plan.
//
// Like Nomad's generic scheduler it works in two steps: a reconciler
// compares the job with its allocations (place, stop, update in place or
// destructively within a rolling deployment, replace lost, reschedule
// failed, migrate drained), then, per task group, a chain of small
// iterators picks a node for each placement (see stack.go).
package scheduler

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/hivesec/hive/structs"
)

// Options carries everything that would otherwise be implicit.
type Options struct {
	// Now is the scheduler's clock: reschedule delays, timestamps.
	Now time.Time
	// Rand orders the nodes; nil uses a generator seeded from the
	// evaluation ID.
	Rand *rand.Rand
	// NewID makes allocation, deployment and evaluation IDs; nil makes
	// UUID-shaped IDs from Rand.
	NewID func() string
}

// Result is the scheduler's answer.
type Result struct {
	Plan *structs.Plan
	// FollowUps are evaluations to create: pending ones with WaitUntil for
	// delayed reschedules, and, when Blocked, one with status blocked
	// (TriggeredBy queued-allocs) to retry when capacity appears.
	FollowUps []*structs.Evaluation
	// Blocked: some group could not be fully placed (Plan.FailedTGAllocs
	// says why, Plan.Queued how many wait).
	Blocked     bool
	Description string
}

// Schedule reconciles eval's job with the cluster and returns the plan.
func Schedule(st State, eval *structs.Evaluation, opts Options) (*Result, error) {
	if opts.Rand == nil {
		h := fnv.New64a()
		h.Write([]byte(eval.ID))
		opts.Rand = rand.New(rand.NewPCG(h.Sum64(), 0x6869766573636864))
	}
	if opts.NewID == nil {
		opts.NewID = uuidFrom(opts.Rand)
	}
	job := st.Job(eval.Namespace, eval.JobID)
	plan := &structs.Plan{EvalID: eval.ID, Priority: eval.Priority, Job: job}
	res := &Result{Plan: plan}

	ctx := newEvalCtx(st)
	nodes := ctx.nodes

	// Static feasibility for in-place updates, compiled once per group.
	inPlace := map[*structs.TaskGroup]*feasibilityIter{}
	r := &reconciler{
		job: job, jobID: eval.JobID, ns: eval.Namespace,
		allocs:     st.AllocsByJob(eval.Namespace, eval.JobID),
		deployment: st.LatestDeployment(eval.Namespace, eval.JobID),
		now:        opts.Now, newID: opts.NewID, node: st.Node,
		inPlaceOK: func(a *structs.Allocation, tg *structs.TaskGroup) bool {
			it, ok := inPlace[tg]
			if !ok {
				checks, _, _, err := staticChecks(ctx, job, tg)
				if err == nil {
					// A cordoned or draining node keeps what it runs.
					it = newFeasibilityIter(ctx, nil, checks)
					it.unschedOK = true
				}
				inPlace[tg] = it
			}
			i := ctx.nodeIndex(a.NodeID)
			return it != nil && i >= 0 && it.feasible(i)
		},
	}
	rec := r.compute()

	// Definite stops first: they free resources for the placements.
	stopped := map[string]bool{}
	for _, s := range rec.stops {
		stopped[s.alloc.ID] = true
		cp := s.alloc
		if s.clientStatus != "" {
			c := *s.alloc
			c.ClientStatus = s.clientStatus
			cp = &c
		}
		plan.AppendStop(cp, s.desc)
		if live(s.alloc) {
			if i := ctx.nodeIndex(s.alloc.NodeID); i >= 0 {
				ctx.addUsage(i, s.alloc.Resources, -1)
			}
		}
	}
	if rec.deployment != nil && (rec.deploymentNew || rec.deploymentChanged) {
		plan.Deployment = rec.deployment
	}
	if job == nil || job.Stop {
		res.Description = fmt.Sprintf("stop %d", len(rec.stops))
		return res, nil
	}

	// Where the job's remaining allocations are, per group and overall.
	var remaining []*structs.Allocation
	for _, a := range r.allocs {
		if !live(a) || stopped[a.ID] {
			continue
		}
		remaining = append(remaining, a)
		if i := ctx.nodeIndex(a.NodeID); i >= 0 {
			ctx.jobCount[i]++
		}
	}
	// The random node order, drawn once: every group's scan continues
	// where the previous placement stopped. Only workers take allocations:
	// managers are left out here, so placement metrics (nodes evaluated,
	// filtered) describe workers only.
	order := make([]int32, 0, len(nodes))
	for i, n := range nodes {
		if n.Role == structs.RoleWorker {
			order = append(order, int32(i))
		}
	}
	opts.Rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	src := &sourceIter{order: order}
	if n := countPlacements(rec); n > 0 {
		plan.NodeAllocation = make(map[string][]*structs.Allocation, min(n, len(nodes)))
	}
	var desc []string
	var blockedGroups []string
	for _, g := range rec.groups {
		tg := g.tg
		for _, a := range g.inPlace {
			a.EvalID = eval.ID
			plan.AppendAlloc(a)
		}
		if plan.Queued == nil {
			plan.Queued = map[string]int{}
		}
		plan.Queued[tg.Name] = 0
		placed, failed := 0, 0
		if len(g.place) > 0 {
			counts := make([]int32, len(nodes))
			for _, a := range remaining {
				if a.Group == tg.Name {
					if i := ctx.nodeIndex(a.NodeID); i >= 0 {
						counts[i]++
					}
				}
			}
			stk, err := newStack(ctx, src, job, tg, counts)
			if err != nil {
				return nil, fmt.Errorf("schedule %s/%s group %q: %w", eval.Namespace, eval.JobID, tg.Name, err)
			}
			if stk.spread != nil {
				for _, a := range remaining {
					if a.Group == tg.Name {
						if i := ctx.nodeIndex(a.NodeID); i >= 0 {
							for _, sp := range stk.spread.specs {
								sp.add(i, 1)
							}
						}
					}
				}
			}
			placed, failed = placeGroup(ctx, stk, plan, eval, job, g, rec.deployment, opts)
			plan.Queued[tg.Name] = failed
			if failed > 0 {
				blockedGroups = append(blockedGroups, tg.Name)
			}
		}
		if g.dstate != nil {
			g.dstate.PlacedAllocs += placed
			if placed > 0 {
				if g.dstate.RequireProgressBy.IsZero() || rec.deploymentNew {
					if u := r.updateStrategy(tg); u != nil && u.HealthyDeadline > 0 {
						g.dstate.RequireProgressBy = opts.Now.Add(u.HealthyDeadline)
					}
				}
				if plan.Deployment == nil {
					rec.deployment.ModifyTime = opts.Now
					plan.Deployment = rec.deployment
				}
			}
		}
		desc = append(desc, fmt.Sprintf("%s: place %d (lost %d, rescheduled %d, migrated %d, updated %d, canaries %d), in-place %d, stop %d, failed %d, reschedule later %d",
			tg.Name, placed, g.lost, g.rescheduleNow, g.migrate, g.destructive, g.canaries, len(g.inPlace), g.stopped, failed, g.rescheduleLater))
	}

	followUp := func(at time.Time, trigger string) {
		res.FollowUps = append(res.FollowUps, &structs.Evaluation{
			ID: opts.NewID(), Namespace: eval.Namespace, JobID: eval.JobID, Type: job.Type, Priority: eval.Priority,
			TriggeredBy: trigger, Status: structs.EvalStatusPending,
			PreviousEval: eval.ID, WaitUntil: at, CreateTime: opts.Now, ModifyTime: opts.Now,
		})
	}
	for _, at := range rec.followUps {
		followUp(at, structs.EvalTriggerAllocFailure)
	}
	for _, at := range rec.drainFollowUps {
		followUp(at, structs.EvalTriggerNodeDrain)
	}
	if len(blockedGroups) > 0 {
		res.Blocked = true
		queued := map[string]int{}
		for k, v := range plan.Queued {
			queued[k] = v
		}
		res.FollowUps = append(res.FollowUps, &structs.Evaluation{
			ID: opts.NewID(), Namespace: eval.Namespace, JobID: eval.JobID, Type: job.Type, Priority: eval.Priority,
			TriggeredBy: structs.EvalTriggerQueuedAllocs, Status: structs.EvalStatusBlocked,
			StatusDescription: "created to place remaining allocations: " + strings.Join(blockedGroups, ", "),
			FailedTGAllocs:    plan.FailedTGAllocs, QueuedAllocations: queued,
			PreviousEval: eval.ID, CreateTime: opts.Now, ModifyTime: opts.Now,
		})
	}
	res.Description = strings.Join(desc, "; ")
	return res, nil
}

// placeGroup picks a node for each of the group's placements and adds them
// (and the stops they imply) to the plan. After the first failure the rest
// are not tried — they would fail the same way — and are counted as
// coalesced failures, as Nomad does.
func placeGroup(ctx *evalCtx, stk *stack, plan *structs.Plan, eval *structs.Evaluation, job *structs.Job,
	g *groupResult, d *structs.Deployment, opts Options) (placed, failed int) {
	tg := g.tg
	var metric *structs.AllocMetric
	for _, p := range g.place {
		if metric != nil {
			metric.CoalescedFailures++
			failed++
			continue
		}
		prevIdx := -1
		if p.prev != nil {
			prevIdx = ctx.nodeIndex(p.prev.NodeID)
		}
		// A replaced allocation's resources and slot are free for its
		// replacement, unless the replacement cannot be placed.
		tentative := p.stopPrev && prevIdx >= 0 && live(p.prev)
		if tentative {
			stk.adjust(prevIdx, p.prev.Resources, -1)
		}
		avoid := -1
		if p.avoidPrev {
			avoid = prevIdx
		}
		o := stk.selectNode(avoid)
		if o == nil {
			if tentative {
				stk.adjust(prevIdx, p.prev.Resources, 1)
			}
			metric = ctx.allocMetric()
			if plan.FailedTGAllocs == nil {
				plan.FailedTGAllocs = map[string]*structs.AllocMetric{}
			}
			plan.FailedTGAllocs[tg.Name] = metric
			failed++
			continue
		}
		m := &ctx.metrics
		a := &structs.Allocation{
			ID: opts.NewID(), Namespace: job.Namespace, NodeID: ctx.nodes[o.idx].ID, JobID: job.ID, Group: tg.Name,
			Tasks: tg.Tasks, Ports: tg.Ports, DesiredStatus: structs.AllocDesiredRun, ClientStatus: structs.AllocPending,
			Name: p.name, EvalID: eval.ID, JobVersion: job.Version, Resources: stk.ask,
			// Successful placements keep the counts only: per-reason maps
			// for every allocation would dominate the scheduler's cost.
			Metrics:    &structs.AllocMetric{NodesEvaluated: m.evaluated, NodesFiltered: m.filtered, NodesExhausted: m.exhausted},
			CreateTime: opts.Now, ModifyTime: opts.Now,
		}
		if g.dstate != nil && d != nil {
			a.DeploymentID = d.ID
			if p.canary {
				a.Canary = true
				g.dstate.PlacedCanaries = append(g.dstate.PlacedCanaries, a.ID)
			}
		}
		if p.prev != nil {
			a.PreviousAllocation = p.prev.ID
			if p.reschedule {
				a.RescheduleTimes = append(append([]time.Time(nil), p.prev.RescheduleTimes...), opts.Now)
			}
		}
		stk.adjust(o.idx, stk.ask, 1)
		plan.AppendAlloc(a)
		if p.stopPrev {
			cp := *p.prev
			cp.NextAllocation = a.ID
			plan.AppendStop(&cp, p.stopDesc)
		}
		placed++
	}
	return placed, failed
}

// uuidFrom makes UUID-shaped (version 4) IDs from r.
func uuidFrom(r *rand.Rand) func() string {
	return func() string {
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:8], r.Uint64())
		binary.LittleEndian.PutUint64(b[8:], r.Uint64())
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
	}
}

func countPlacements(rec *reconcileResult) int {
	n := 0
	for _, g := range rec.groups {
		n += len(g.place) + len(g.inPlace)
	}
	return n
}
