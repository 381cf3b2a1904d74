package scheduler

import (
	"math"
	"testing"

	"github.com/hivesec/hive/structs"
)

func testNode(id, dc string, cpu, mem int) *structs.Node {
	return &structs.Node{
		ID: id, Name: "name-" + id, Role: structs.RoleWorker, Status: structs.NodeStatusReady,
		Labels:     map[string]string{"datacenter": dc},
		Attributes: map[string]string{"kernel.version": "6.1.0-9-amd64", "arch": "amd64"},
		Resources:  structs.Resources{CPU: cpu, MemoryMB: mem},
	}
}

func ctxFor(t *testing.T, nodes ...*structs.Node) *evalCtx {
	t.Helper()
	st := NewMemState()
	st.UpsertNodes(nodes)
	return newEvalCtx(st)
}

// sliceIter yields fixed node positions.
type sliceIter struct {
	idx []int
	pos int
}

func (it *sliceIter) Next() int {
	if it.pos >= len(it.idx) {
		return -1
	}
	it.pos++
	return it.idx[it.pos-1]
}
func (it *sliceIter) Reset() { it.pos = 0 }

// rankSlice yields fixed options.
type rankSlice struct {
	opts []*rankedNode
	pos  int
}

func (it *rankSlice) Next() *rankedNode {
	if it.pos >= len(it.opts) {
		return nil
	}
	it.pos++
	return it.opts[it.pos-1]
}
func (it *rankSlice) Reset() { it.pos = 0 }

func drainNodes(it nodeIter) []int {
	var out []int
	for i := it.Next(); i >= 0; i = it.Next() {
		out = append(out, i)
	}
	return out
}

func TestSourceIterRoundRobin(t *testing.T) {
	it := &sourceIter{order: []int32{2, 0, 1}}
	if got := []int{it.Next(), it.Next()}; got[0] != 2 || got[1] != 0 {
		t.Fatalf("first pass starts %v", got)
	}
	it.Reset()
	// A new pass continues where the last stopped and covers every node once.
	if got := drainNodes(it); len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 0 {
		t.Fatalf("second pass %v, want [1 2 0]", got)
	}
}

func TestFeasibilityIter(t *testing.T) {
	a, b, c := testNode("a", "dc1", 1000, 1000), testNode("b", "dc2", 1000, 1000), testNode("c", "dc1", 1000, 1000)
	c.Cordoned = true
	ctx := ctxFor(t, a, b, c)
	job := &structs.Job{Datacenters: []string{"dc1"}}
	checks, _, _, err := staticChecks(ctx, job, &structs.TaskGroup{})
	if err != nil {
		t.Fatal(err)
	}
	it := newFeasibilityIter(ctx, &sliceIter{idx: []int{0, 1, 2}}, checks)
	got := drainNodes(it)
	if len(got) != 1 || ctx.nodes[got[0]].ID != "a" {
		t.Fatalf("feasible %v, want only a", got)
	}
	m := ctx.allocMetric()
	if m.NodesEvaluated != 3 || m.NodesFiltered != 2 || m.ConstraintFiltered["datacenter"] != 1 || m.ConstraintFiltered["node is cordoned"] != 1 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestFeasibilityIterCachesByClassButNotUnique(t *testing.T) {
	a, b := testNode("a", "dc1", 1, 1), testNode("b", "dc1", 1, 1)
	ctx := ctxFor(t, a, b)
	if ctx.rows[0].Class != ctx.rows[1].Class {
		t.Fatal("identical nodes should share a class")
	}
	calls := 0
	counting := staticCheck{reason: ctx.reason("x"), check: func(*structs.Node) bool { calls++; return true }}
	unique, _ := compileConstraint(&structs.Constraint{LTarget: "${node.unique.name}", Operand: "!=", RTarget: "name-b"})
	it := newFeasibilityIter(ctx, &sliceIter{idx: []int{0, 1}}, []staticCheck{counting, {reason: ctx.reason("u"), check: unique, unique: true}})
	got := drainNodes(it)
	it.Reset()
	drainNodes(it)
	if calls != 1 {
		t.Fatalf("class check ran %d times, want once", calls)
	}
	if len(got) != 1 || ctx.nodes[got[0]].ID != "a" {
		t.Fatalf("got %v, want only a (the unique check is per node)", got)
	}
}

func TestDistinctHostsIter(t *testing.T) {
	ctx := ctxFor(t, testNode("a", "dc1", 1, 1), testNode("b", "dc1", 1, 1))
	it := &distinctHostsIter{ctx: ctx, src: &sliceIter{idx: []int{0, 1}}, group: true, groupCount: []int32{1, 0}, reason: ctx.reason("distinct_hosts")}
	if got := drainNodes(it); len(got) != 1 || got[0] != 1 {
		t.Fatalf("got %v, want [1]", got)
	}
	ctx.jobCount[1] = 1
	it = &distinctHostsIter{ctx: ctx, src: &sliceIter{idx: []int{0, 1}}, job: true, groupCount: []int32{0, 0}}
	if got := drainNodes(it); len(got) != 1 || got[0] != 0 {
		t.Fatalf("job-level: got %v, want [0]", got)
	}
}

func TestFitIterExhaustion(t *testing.T) {
	ctx := ctxFor(t, testNode("a", "dc1", 100, 1000), testNode("b", "dc1", 1000, 100), testNode("c", "dc1", 1000, 1000))
	ctx.addUsage(2, structs.Resources{CPU: 500, MemoryMB: 500}, 1) // this plan already put something on c
	it := &fitIter{ctx: ctx, src: &sliceIter{idx: []int{0, 1, 2}}, ask: structs.Resources{CPU: 200, MemoryMB: 200}}
	o := it.Next()
	if o == nil || o.idx != 2 || o.util != (structs.Resources{CPU: 700, MemoryMB: 700}) {
		t.Fatalf("option %+v, want c with util 700/700", o)
	}
	m := ctx.allocMetric()
	if m.NodesExhausted != 2 || m.DimensionExhausted["cpu"] != 1 || m.DimensionExhausted["memory"] != 1 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestBinpackPrefersFullerNodes(t *testing.T) {
	capacity := structs.Resources{CPU: 1000, MemoryMB: 1000}
	empty := binpackScore(capacity, structs.Resources{CPU: 100, MemoryMB: 100})
	half := binpackScore(capacity, structs.Resources{CPU: 500, MemoryMB: 500})
	full := binpackScore(capacity, capacity)
	if !(empty < half && half < full) || full != 1 {
		t.Fatalf("scores %v %v %v", empty, half, full)
	}
	for x := 0.0; x <= 1; x += 0.001 {
		if d := math.Abs(pow10(x) - math.Pow(10, x)); d > 1e-4 {
			t.Fatalf("pow10(%v) off by %v", x, d)
		}
	}
}

func TestPenaltyScorer(t *testing.T) {
	opts := []*rankedNode{{idx: 0}, {idx: 1}, {idx: 2}}
	it := &penaltyScorer{src: &rankSlice{opts: opts}, groupCount: []int32{0, 1, 0}, count: 4, avoid: 2}
	for it.Next() != nil {
	}
	if opts[0].penalty != 0 || opts[1].penalty != -0.5 || opts[2].penalty != -1 {
		t.Fatalf("penalties %v %v %v", opts[0].penalty, opts[1].penalty, opts[2].penalty)
	}
}

func TestAffinityScorer(t *testing.T) {
	a, b := testNode("a", "dc1", 1, 1), testNode("b", "dc2", 1, 1)
	ctx := ctxFor(t, a, b)
	opts := []*rankedNode{{idx: 0}, {idx: 1}}
	it, err := newAffinityScorer(ctx, &rankSlice{opts: opts}, []*structs.Affinity{
		{LTarget: "${node.datacenter}", RTarget: "dc1", Operand: "=", Weight: 75},
		{LTarget: "${attr.arch}", RTarget: "amd64", Operand: "=", Weight: -25},
	})
	if err != nil {
		t.Fatal(err)
	}
	for it.Next() != nil {
	}
	if opts[0].affinity != 0.5 || opts[1].affinity != -0.25 {
		t.Fatalf("affinity %v %v", opts[0].affinity, opts[1].affinity)
	}
}

func TestSpreadScorerPrefersLeastUsedValue(t *testing.T) {
	ctx := ctxFor(t, testNode("a", "dc1", 1, 1), testNode("b", "dc2", 1, 1), testNode("c", "dc3", 1, 1))
	spec := newSpreadSpec(ctx, &structs.Spread{Attribute: "${node.datacenter}"}, 1, 6, func(int) bool { return true })
	spec.add(0, 1)
	spec.add(0, 1)
	spec.add(1, 1)
	opts := []*rankedNode{{idx: 0}, {idx: 1}, {idx: 2}}
	it := &spreadScorer{src: &rankSlice{opts: opts}, specs: []*spreadSpec{spec}}
	it.Reset()
	for it.Next() != nil {
	}
	if !(opts[2].spread == 0 && opts[1].spread < -spreadDominance+1e-9 && opts[0].spread < opts[1].spread) {
		t.Fatalf("spread scores %v %v %v", opts[0].spread, opts[1].spread, opts[2].spread)
	}

	targets := newSpreadSpec(ctx, &structs.Spread{Attribute: "${node.datacenter}", Targets: []structs.SpreadTarget{{Value: "dc1", Percent: 50}}}, 1, 4, func(int) bool { return true })
	if targets.desired[0] != 2 || targets.desired[1] != 1 || targets.desired[2] != 1 {
		t.Fatalf("desired %v", targets.desired)
	}
}

func TestLimitIterSkipsPenalized(t *testing.T) {
	opts := []*rankedNode{{idx: 0, penalty: -0.5}, {idx: 1}, {idx: 2}, {idx: 3}}
	it := &limitIter{src: &rankSlice{opts: opts}, limit: 2, maxSkip: 3}
	a, b, c := it.Next(), it.Next(), it.Next()
	if a.idx != 1 || b.idx != 2 || c != nil {
		t.Fatalf("got %v %v %v", a, b, c)
	}
	// When the source runs dry, skipped options come back.
	it = &limitIter{src: &rankSlice{opts: opts[:2]}, limit: 2, maxSkip: 3}
	a, b = it.Next(), it.Next()
	if a.idx != 1 || b.idx != 0 {
		t.Fatalf("got %v %v", a.idx, b.idx)
	}
}

func TestMaxScoreIter(t *testing.T) {
	opts := []*rankedNode{{idx: 0, final: 0.2}, {idx: 1, final: 0.7}, {idx: 2, final: 0.7}}
	it := &maxScoreIter{src: &rankSlice{opts: opts}}
	if o := it.Next(); o.idx != 1 || it.Next() != nil {
		t.Fatalf("got %v; ties go to the first seen, once", o.idx)
	}
}
