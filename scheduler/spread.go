package scheduler

import (
	"math"

	"github.com/hivesec/hive/structs"
)

// spreadDominance scales the spread component so that it outranks the
// others: they average to [-1, 1] (a spread of 2), and a node whose value
// is behind its share scores at least 1 (× this factor) above one that is
// not. Spreading is therefore a strong preference — any node with room in
// the least used value beats every node elsewhere, and bin-packing picks
// among those — which is what keeps an even spread within one.
const spreadDominance = 3

// spreadScorer scores nodes by how much their value of the spread
// attribute is behind its share of the group's allocations. Even spread:
// values at the current minimum score 0, others -1 - (c-min)/(max-min+1),
// nodes without the attribute -2. With targets: a value below its desired
// count (percent × count) scores -c/desired, one at or above it -1 or less;
// values without a target share what the targets leave. Multiple spreads
// are combined by weight.
type spreadScorer struct {
	src   rankIter
	specs []*spreadSpec
}

type spreadSpec struct {
	weight   float64  // weight / sum of weights
	valueOf  []int32  // node position → value id, -1 when unset
	values   []string // by id
	counts   []int    // allocations of the group per value, after this plan
	eligible []bool   // value occurs on a feasible node
	desired  []float64
	min, max int // over eligible values, refreshed at Reset
}

func newSpreadSpec(ctx *evalCtx, sp *structs.Spread, weight float64, count int, feasible func(int) bool) *spreadSpec {
	s := &spreadSpec{weight: weight, valueOf: make([]int32, len(ctx.nodes))}
	ids := map[string]int32{}
	for i, n := range ctx.nodes {
		v, ok := resolveTarget(spreadTarget(sp.Attribute), n)
		if !ok {
			s.valueOf[i] = -1
			continue
		}
		id, seen := ids[v]
		if !seen {
			id = int32(len(s.values))
			ids[v] = id
			s.values = append(s.values, v)
			s.eligible = append(s.eligible, false)
		}
		s.valueOf[i] = id
		if feasible(i) {
			s.eligible[id] = true
		}
	}
	s.counts = make([]int, len(s.values))
	if len(sp.Targets) > 0 {
		s.desired = make([]float64, len(s.values))
		left, untargeted := 100.0, 0
		targeted := make([]bool, len(s.values))
		for _, t := range sp.Targets {
			if id, ok := ids[t.Value]; ok {
				s.desired[id] = float64(t.Percent) * float64(count) / 100
				targeted[id] = true
			}
			left -= float64(t.Percent)
		}
		for id := range s.values {
			if !targeted[id] && s.eligible[id] {
				untargeted++
			}
		}
		for id := range s.values {
			if !targeted[id] && untargeted > 0 && left > 0 {
				s.desired[id] = left / 100 * float64(count) / float64(untargeted)
			}
		}
	}
	return s
}

// spreadTarget accepts both "${attr.x}" and a bare "attr.x"-style name.
func spreadTarget(attr string) string {
	if len(attr) > 2 && attr[:2] == "${" {
		return attr
	}
	return "${" + attr + "}"
}

func (s *spreadSpec) add(node int, delta int) {
	if v := s.valueOf[node]; v >= 0 {
		s.counts[v] += delta
	}
}

func (s *spreadSpec) refresh() {
	s.min, s.max = math.MaxInt, 0
	for id, c := range s.counts {
		if !s.eligible[id] {
			continue
		}
		s.min = min(s.min, c)
		s.max = max(s.max, c)
	}
}

func (s *spreadSpec) score(node int) float64 {
	v := s.valueOf[node]
	if v < 0 {
		return -2
	}
	c := s.counts[v]
	if s.desired != nil {
		d := s.desired[v]
		if float64(c) < d {
			return -float64(c) / d
		}
		return -1 - math.Min(1, (float64(c)-d+1)/(d+1))
	}
	if c <= s.min {
		return 0
	}
	return -1 - float64(c-s.min)/float64(s.max-s.min+1)
}

func (it *spreadScorer) Next() *rankedNode {
	o := it.src.Next()
	if o == nil {
		return nil
	}
	var sc float64
	for _, s := range it.specs {
		sc += s.weight * s.score(o.idx)
	}
	o.spread = spreadDominance * sc
	return o
}

func (it *spreadScorer) Reset() {
	for _, s := range it.specs {
		s.refresh()
	}
	it.src.Reset()
}
