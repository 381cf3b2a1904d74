package scheduler

import (
	"math"
	"math/bits"
	"strings"

	"github.com/hivesec/hive/structs"
)

// stack is the placement chain for one task group in one evaluation:
//
//	source (shuffled, round-robin) → static feasibility (cached per node)
//	→ distinct_hosts → resources fit → bin-pack → penalties → affinity
//	→ spread → normalize → limit → max score
type stack struct {
	ctx        *evalCtx
	tg         *structs.TaskGroup
	ask        structs.Resources
	groupCount []int32

	feas     *feasibilityIter
	penalty  *penaltyScorer
	spread   *spreadScorer
	top      *maxScoreIter
	distinct *distinctHostsIter
}

// newStack builds the chain. groupCount holds the group's live allocations
// per node (after this plan's definite stops); the stack keeps it current.
func newStack(ctx *evalCtx, src nodeIter, job *structs.Job, tg *structs.TaskGroup, groupCount []int32) (*stack, error) {
	s := &stack{ctx: ctx, tg: tg, ask: tg.Resources(), groupCount: groupCount}

	checks, distinctJob, distinctGroup, err := staticChecks(ctx, job, tg)
	if err != nil {
		return nil, err
	}
	s.feas = newFeasibilityIter(ctx, src, checks)
	var nodes nodeIter = s.feas
	if distinctJob || distinctGroup {
		s.distinct = &distinctHostsIter{ctx: ctx, src: nodes, job: distinctJob, group: distinctGroup,
			groupCount: groupCount, reason: ctx.reason(structs.ConstraintDistinctHosts)}
		nodes = s.distinct
	}
	fit := &fitIter{ctx: ctx, src: nodes, ask: s.ask}
	var ranked rankIter = &binpackScorer{ctx: ctx, src: fit}
	s.penalty = &penaltyScorer{src: ranked, groupCount: groupCount, count: tg.Count, avoid: -1}
	ranked = s.penalty

	affs := append(append([]*structs.Affinity(nil), job.Affinities...), tg.Affinities...)
	if len(affs) > 0 {
		aff, err := newAffinityScorer(ctx, ranked, affs)
		if err != nil {
			return nil, err
		}
		ranked = aff
	}
	spreads := append(append([]*structs.Spread(nil), job.Spreads...), tg.Spreads...)
	if len(spreads) > 0 {
		s.spread = &spreadScorer{src: ranked}
		total := 0
		for _, sp := range spreads {
			total += max(sp.Weight, 0)
		}
		for _, sp := range spreads {
			w := 1 / float64(len(spreads))
			if total > 0 {
				w = float64(max(sp.Weight, 0)) / float64(total)
			}
			s.spread.specs = append(s.spread.specs, newSpreadSpec(ctx, sp, w, tg.Count, s.feas.feasible))
		}
		ranked = s.spread
	}
	ranked = &normalizer{src: ranked, hasAffinity: len(affs) > 0}

	// Like Nomad: service placements look at O(log n) options, batch at
	// two; affinities and spreads need every option to be compared.
	limit := 2
	if job.Type != structs.JobTypeBatch {
		candidates := len(ctx.nodes)
		if s, ok := src.(*sourceIter); ok {
			candidates = len(s.order) // workers only
		}
		limit = max(limit, bits.Len(uint(max(candidates-1, 0))))
	}
	if len(affs) > 0 || len(spreads) > 0 {
		limit = math.MaxInt
	}
	ranked = &limitIter{src: ranked, limit: limit, maxSkip: 3}
	s.top = &maxScoreIter{src: ranked}
	return s, nil
}

// staticChecks compiles what depends only on the node besides being
// schedulable (feasibilityIter checks that first): datacenter, node pool,
// then job and group constraints, in that order, so the reported reason is
// the first that failed.
func staticChecks(ctx *evalCtx, job *structs.Job, tg *structs.TaskGroup) (checks []staticCheck, distinctJob, distinctGroup bool, err error) {
	if len(job.Datacenters) > 0 {
		dcs := job.Datacenters
		checks = append(checks, staticCheck{reason: ctx.reason("datacenter"), check: func(n *structs.Node) bool {
			dc := n.Labels["datacenter"]
			if len(dcs) == 1 {
				return dcs[0] == dc || dcs[0] == "*"
			}
			for _, d := range dcs {
				if d == dc || d == "*" {
					return true
				}
			}
			return false
		}})
	}
	if pool := job.NodePool; pool != "" && pool != "all" {
		checks = append(checks, staticCheck{reason: ctx.reason("node_pool"), check: func(n *structs.Node) bool {
			p, ok := n.Labels["node_pool"]
			if !ok {
				p = "default"
			}
			return p == pool
		}})
	}
	add := func(cs []*structs.Constraint, group bool) error {
		for _, c := range cs {
			if c.Operand == structs.ConstraintDistinctHosts {
				if c.RTarget == "" || c.RTarget == "true" {
					if group {
						distinctGroup = true
					} else {
						distinctJob = true
					}
				}
				continue
			}
			chk, err := compileConstraint(c)
			if err != nil {
				return err
			}
			checks = append(checks, staticCheck{reason: ctx.reason(c.String()), check: chk, unique: readsUnique(c.LTarget, c.RTarget)})
		}
		return nil
	}
	if err := add(job.Constraints, false); err != nil {
		return nil, false, false, err
	}
	if err := add(tg.Constraints, true); err != nil {
		return nil, false, false, err
	}
	return checks, distinctJob, distinctGroup, nil
}

// selectNode runs the chain for one placement; avoid is a node position to
// penalize (where a rescheduled allocation failed) or -1. The metrics of
// the attempt are left in ctx.metrics.
func (s *stack) selectNode(avoid int) *rankedNode {
	s.ctx.metrics.reset()
	s.penalty.avoid = avoid
	s.top.Reset()
	return s.top.Next()
}

// adjust records that an allocation of this group was added to (delta 1)
// or removed from (delta -1) node i by this plan.
func (s *stack) adjust(i int, r structs.Resources, delta int) {
	s.ctx.addUsage(i, r, delta)
	s.ctx.jobCount[i] += int32(delta)
	s.groupCount[i] += int32(delta)
	if s.spread != nil {
		for _, sp := range s.spread.specs {
			sp.add(i, delta)
		}
	}
}

// readsUnique reports whether a rule reads what differs between nodes of
// one class: their ID or name.
func readsUnique(targets ...string) bool {
	for _, t := range targets {
		if strings.Contains(t, "${node.unique.") {
			return true
		}
	}
	return false
}
