package fsm

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/hivesec/hive/structs"
)

// randomPlanAllocs builds allocations the way the scheduler does (shared
// fields per group, per-allocation ID, node, name and counts) and mixes in
// ones that differ in other fields, so compaction has to tell them apart.
func randomPlanAllocs(r *rand.Rand) []*structs.Allocation {
	var out []*structs.Allocation
	tasks := []*structs.Task{{Name: "web", Driver: "containerd"}}
	for g := range r.IntN(4) + 1 {
		for i := range r.IntN(20) {
			a := &structs.Allocation{
				ID: fmt.Sprintf("a-%d-%d", g, i), Namespace: "default", NodeID: fmt.Sprintf("n%d", r.IntN(5)),
				JobID: "web", Group: fmt.Sprintf("g%d", g), Tasks: tasks, DesiredStatus: structs.AllocDesiredRun,
				ClientStatus: structs.AllocPending, Name: fmt.Sprintf("web.g%d[%d]", g, i), EvalID: "e1", JobVersion: 3,
				Resources:  structs.Resources{CPU: 100, MemoryMB: 64},
				Metrics:    &structs.AllocMetric{NodesEvaluated: r.IntN(9), NodesFiltered: r.IntN(9), NodesExhausted: r.IntN(9)},
				CreateTime: t0, ModifyTime: t0,
			}
			switch r.IntN(10) {
			case 0:
				a.PreviousAllocation = "prev"
			case 1:
				a.Metrics = nil
			case 2:
				a.Metrics.DimensionExhausted = map[string]int{"cpu": 1}
			case 3:
				a.Canary = true
			case 4:
				a.Resources.CPU++
			}
			out = append(out, a)
		}
	}
	r.Shuffle(len(out), func(i, j int) {
		if r.IntN(4) == 0 { // mostly in order, as the scheduler emits them
			out[i], out[j] = out[j], out[i]
		}
	})
	return out
}

func TestCompactAllocsRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	grouped := 0
	for range 500 {
		in := randomPlanAllocs(r)
		rest, groups := CompactAllocs(in)
		got := append([]*structs.Allocation(nil), rest...)
		// Through the wire, as the FSM sees it.
		buf, err := Encode(PlanApplyType, &PlanApplyRequest{Allocs: rest, Placed: groups})
		if err != nil {
			t.Fatal(err)
		}
		dec, err := decodeInto[PlanApplyRequest](buf[1:])
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range dec.Placed {
			if len(g.IDs) < 2 {
				t.Fatalf("group of %d sent compact", len(g.IDs))
			}
			grouped += len(g.IDs)
			more, err := g.Expand()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, more...)
		}
		if len(dec.Allocs) != len(rest) {
			t.Fatalf("%d plain allocations decoded, %d sent", len(dec.Allocs), len(rest))
		}
		if len(got) != len(in) {
			t.Fatalf("%d allocations back, %d in", len(got), len(in))
		}
		byID := map[string]*structs.Allocation{}
		for _, a := range got {
			byID[a.ID] = a
		}
		for _, a := range in {
			if !reflect.DeepEqual(byID[a.ID], a) {
				t.Fatalf("allocation %s changed in compaction:\n got %+v\nwant %+v", a.ID, byID[a.ID], a)
			}
		}
		// The decoded groups expand to the same allocations as well.
		for _, g := range dec.Placed {
			more, _ := g.Expand()
			for _, a := range more {
				if want := byID[a.ID]; !reflect.DeepEqual(normalize(a), normalize(want)) {
					t.Fatalf("decoded %s differs:\n got %+v\nwant %+v", a.ID, a, want)
				}
			}
		}
	}
	if grouped == 0 {
		t.Fatal("nothing was compacted")
	}
}

func TestPlacedGroupInvalid(t *testing.T) {
	f := populated(t)
	tmpl := &structs.Allocation{Namespace: "team-a", JobID: "web", Group: "web", JobVersion: 1}
	for name, g := range map[string]*PlacedGroup{
		"no template":  {IDs: []string{"x", "y"}, NodeIDs: []string{"w2", "w2"}, Names: []string{"a", "b"}, Evaluated: []int{1, 1}, Filtered: []int{0, 0}, Exhausted: []int{0, 0}},
		"short nodes":  {Template: tmpl, IDs: []string{"x", "y"}, NodeIDs: []string{"w2"}, Names: []string{"a", "b"}, Evaluated: []int{1, 1}, Filtered: []int{0, 0}, Exhausted: []int{0, 0}},
		"short counts": {Template: tmpl, IDs: []string{"x", "y"}, NodeIDs: []string{"w2", "w2"}, Names: []string{"a", "b"}, Evaluated: []int{1}, Filtered: []int{0, 0}, Exhausted: []int{0, 0}},
		"bad node":     {Template: tmpl, IDs: []string{"x", "y"}, NodeIDs: []string{"w2", "nope"}, Names: []string{"a", "b"}, Evaluated: []int{1, 1}, Filtered: []int{0, 0}, Exhausted: []int{0, 0}},
	} {
		before := f.State().Snapshot().Counts()
		res := apply(t, f, 500, PlanApplyType, &PlanApplyRequest{EvalID: "e9", Now: t0, Placed: []*PlacedGroup{g}})
		if res.Err == nil {
			t.Fatalf("%s: applied", name)
		}
		if after := f.State().Snapshot().Counts(); !reflect.DeepEqual(before, after) {
			t.Fatalf("%s: state changed: %v -> %v", name, before, after)
		}
	}
	// A valid group lands as full allocations with the group's tasks.
	job := f.State().Snapshot().Job(nil, "team-a", "web")
	tmpl.JobVersion = job.Version
	mustApply(t, f, 501, PlanApplyType, &PlanApplyRequest{EvalID: "e9", Now: t0, Placed: []*PlacedGroup{{
		Template: tmpl, IDs: []string{"x", "y"}, NodeIDs: []string{"w2", "w2"}, Names: []string{"web.web[1]", "web.web[2]"},
		Evaluated: []int{1, 2}, Filtered: []int{0, 0}, Exhausted: []int{0, 1},
	}}})
	snap := f.State().Snapshot()
	y := snap.Alloc(nil, "y")
	if y == nil || y.NodeID != "w2" || y.Name != "web.web[2]" || y.Metrics.NodesExhausted != 1 || len(y.Tasks) == 0 ||
		y.ClientStatus != structs.AllocPending || y.DesiredStatus != structs.AllocDesiredRun {
		t.Fatalf("placed allocation y: %+v", y)
	}
}
