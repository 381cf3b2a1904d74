package scheduler

import (
	"math"

	"github.com/hivesec/hive/structs"
)

// rankedNode is a feasible node with room, and its scores. Components are
// in [-1, 1] except spread, whose scale is explained at spreadScorer.
type rankedNode struct {
	idx      int
	util     structs.Resources // node usage if the allocation lands here
	binpack  float64
	penalty  float64 // job anti-affinity and previous-node penalties, <= 0
	affinity float64
	spread   float64
	final    float64
}

// rankIter yields ranked options; nil when done.
type rankIter interface {
	Next() *rankedNode
	Reset()
}

// fitIter turns feasible nodes into options if the ask fits in what the
// node has left (its capacity minus live allocations minus this plan).
// Options come from a pool reused across placements, so the hot path does
// not allocate.
type fitIter struct {
	ctx  *evalCtx
	src  nodeIter
	ask  structs.Resources
	pool []*rankedNode
	used int
}

func (it *fitIter) Next() *rankedNode {
	for {
		i := it.src.Next()
		if i < 0 {
			return nil
		}
		r := it.ctx.row(i)
		u, capacity := r.Used, r.Capacity
		u.CPU += it.ask.CPU
		u.MemoryMB += it.ask.MemoryMB
		cpuOK, memOK := u.CPU <= capacity.CPU, u.MemoryMB <= capacity.MemoryMB
		if !cpuOK || !memOK {
			m := &it.ctx.metrics
			m.exhausted++
			if !cpuOK {
				m.cpu++
			} else {
				m.memory++
			}
			continue
		}
		if it.used == len(it.pool) {
			it.pool = append(it.pool, new(rankedNode))
		}
		o := it.pool[it.used]
		it.used++
		*o = rankedNode{idx: i, util: u}
		return o
	}
}

func (it *fitIter) Reset() {
	it.used = 0
	it.src.Reset()
}

// binpackScorer scores best fit as Nomad does: 20 - (10^freeCPU +
// 10^freeMem) with free fractions after placement, clamped to [0, 18] and
// normalized to [0, 1]. Fuller nodes score higher.
type binpackScorer struct {
	ctx *evalCtx
	src rankIter
}

func (it *binpackScorer) Next() *rankedNode {
	o := it.src.Next()
	if o == nil {
		return nil
	}
	o.binpack = binpackScore(it.ctx.rows[o.idx].Capacity, o.util)
	return o
}

func (it *binpackScorer) Reset() { it.src.Reset() }

// pow10 is 10^x for x in [0, 1] by linear interpolation in a table (error
// below 1e-5), which keeps math.Exp out of the hot path.
func pow10(x float64) float64 {
	if x <= 0 {
		return math.Pow(10, x)
	}
	if x >= 1 {
		return math.Pow(10, x)
	}
	f := x * pow10Steps
	i := int(f)
	return pow10Table[i] + (pow10Table[i+1]-pow10Table[i])*(f-float64(i))
}

const pow10Steps = 1024

var pow10Table = func() (t [pow10Steps + 1]float64) {
	for i := range t {
		t[i] = math.Pow(10, float64(i)/pow10Steps)
	}
	return t
}()

func binpackScore(capacity, util structs.Resources) float64 {
	free := func(used, total int) float64 {
		if total <= 0 {
			return 0
		}
		return 1 - float64(used)/float64(total)
	}
	total := pow10(free(util.CPU, capacity.CPU)) + pow10(free(util.MemoryMB, capacity.MemoryMB))
	s := 20 - total
	return math.Max(0, math.Min(18, s)) / 18
}

// penaltyScorer applies job anti-affinity — -(collisions+1)/count for a
// node already holding collisions allocations of the group, as Nomad — and
// a -1 penalty on the node a rescheduled allocation failed on.
type penaltyScorer struct {
	src        rankIter
	groupCount []int32
	count      int
	avoid      int // node position to avoid for this placement, or -1
}

func (it *penaltyScorer) Next() *rankedNode {
	o := it.src.Next()
	if o == nil {
		return nil
	}
	if c := it.groupCount[o.idx]; c > 0 {
		o.penalty = -float64(c+1) / float64(max(it.count, 1))
	}
	if o.idx == it.avoid {
		o.penalty -= 1
	}
	o.penalty = math.Max(o.penalty, -1)
	return o
}

func (it *penaltyScorer) Reset() { it.src.Reset() }

// affinityScorer adds the weights of the affinities a node matches, divided
// by the sum of their absolute weights. Per-node scores are cached.
type affinityScorer struct {
	ctx    *evalCtx
	src    rankIter
	checks []nodeCheck
	weight []float64
	total  float64
	cache  []float64 // NaN: not computed
}

func newAffinityScorer(ctx *evalCtx, src rankIter, affs []*structs.Affinity) (*affinityScorer, error) {
	it := &affinityScorer{ctx: ctx, src: src, cache: make([]float64, len(ctx.nodes))}
	for i := range it.cache {
		it.cache[i] = math.NaN()
	}
	for _, a := range affs {
		chk, err := compileConstraint(&structs.Constraint{LTarget: a.LTarget, RTarget: a.RTarget, Operand: a.Operand})
		if err != nil {
			return nil, err
		}
		if chk == nil {
			continue
		}
		it.checks = append(it.checks, chk)
		it.weight = append(it.weight, float64(a.Weight))
		it.total += math.Abs(float64(a.Weight))
	}
	return it, nil
}

func (it *affinityScorer) Next() *rankedNode {
	o := it.src.Next()
	if o == nil {
		return nil
	}
	s := it.cache[o.idx]
	if math.IsNaN(s) {
		s = 0
		n := it.ctx.nodes[o.idx]
		for k, chk := range it.checks {
			if chk(n) {
				s += it.weight[k]
			}
		}
		if it.total > 0 {
			s /= it.total
		}
		it.cache[o.idx] = s
	}
	o.affinity = s
	return o
}

func (it *affinityScorer) Reset() { it.src.Reset() }

// normalizer computes the final score: the mean of the bin-pack, penalty
// and (when the group has any) affinity components, plus the spread
// component, which is scaled to dominate them (see spreadScorer).
type normalizer struct {
	src         rankIter
	hasAffinity bool
}

func (it *normalizer) Next() *rankedNode {
	o := it.src.Next()
	if o == nil {
		return nil
	}
	if it.hasAffinity {
		o.final = (o.binpack + o.penalty + o.affinity) / 3
	} else {
		o.final = (o.binpack + o.penalty) / 2
	}
	o.final += o.spread
	return o
}

func (it *normalizer) Reset() { it.src.Reset() }

// limitIter passes at most limit options, like Nomad's LimitIterator, so a
// service placement looks at O(log n) candidates however large the cluster.
// Options carrying a penalty are set aside (up to maxSkip of them) and
// only returned if the source runs dry first.
type limitIter struct {
	src     rankIter
	limit   int
	maxSkip int
	seen    int
	skipped []*rankedNode
	next    int
}

func (it *limitIter) Next() *rankedNode {
	if it.seen >= it.limit {
		return nil
	}
	o := it.src.Next()
	for o != nil && o.penalty < 0 && len(it.skipped) < it.maxSkip {
		it.skipped = append(it.skipped, o)
		o = it.src.Next()
	}
	if o == nil && it.next < len(it.skipped) {
		o = it.skipped[it.next]
		it.next++
	}
	if o != nil {
		it.seen++
	}
	return o
}

func (it *limitIter) Reset() {
	it.seen, it.next = 0, 0
	it.skipped = it.skipped[:0]
	it.src.Reset()
}

// maxScoreIter drains its source and yields the best option once. Ties go
// to the first seen, so results depend only on the node order.
type maxScoreIter struct {
	src  rankIter
	done bool
}

func (it *maxScoreIter) Next() *rankedNode {
	if it.done {
		return nil
	}
	it.done = true
	var best *rankedNode
	for o := it.src.Next(); o != nil; o = it.src.Next() {
		if best == nil || o.final > best.final {
			best = o
		}
	}
	return best
}

func (it *maxScoreIter) Reset() {
	it.done = false
	it.src.Reset()
}
