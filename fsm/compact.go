package fsm

import (
	"fmt"
	"reflect"

	"github.com/hivesec/hive/structs"
)

// PlacedGroup carries, in compact form, allocations of a plan that differ
// only in ID, node, name and placement counts: the scheduler places a
// group's instances that way, and a thousand placements sent as full
// allocations cost a thousand copies of the same twenty fields (with their
// names, msgpack encodes structs as maps) through Raft, the log store and
// every manager's decoder.
type PlacedGroup struct {
	// Template is every allocation of the group with ID, NodeID, Name and
	// Metrics left empty.
	Template *structs.Allocation
	IDs      []string
	NodeIDs  []string
	Names    []string
	// Evaluated, Filtered and Exhausted are the allocations' placement
	// counts (structs.AllocMetric without reasons).
	Evaluated, Filtered, Exhausted []int
}

// CompactAllocs splits allocs into those that group under a shared
// template and the rest, which travel as they are. Expanding the groups
// gives back allocations equal to the ones given (see Expand).
func CompactAllocs(allocs []*structs.Allocation) (rest []*structs.Allocation, groups []*PlacedGroup) {
	for _, a := range allocs {
		if !compactable(a) {
			rest = append(rest, a)
			continue
		}
		t := template(a)
		var g *PlacedGroup
		// Placements of one group come together; the last group is
		// almost always the one.
		for i := len(groups) - 1; i >= 0 && i >= len(groups)-2; i-- {
			if reflect.DeepEqual(groups[i].Template, t) {
				g = groups[i]
				break
			}
		}
		if g == nil {
			g = &PlacedGroup{Template: t}
			groups = append(groups, g)
		}
		g.IDs = append(g.IDs, a.ID)
		g.NodeIDs = append(g.NodeIDs, a.NodeID)
		g.Names = append(g.Names, a.Name)
		var m structs.AllocMetric
		if a.Metrics != nil {
			m = *a.Metrics
		}
		g.Evaluated = append(g.Evaluated, m.NodesEvaluated)
		g.Filtered = append(g.Filtered, m.NodesFiltered)
		g.Exhausted = append(g.Exhausted, m.NodesExhausted)
	}
	// A group of one saves nothing; send it as it was.
	out := groups[:0]
	for _, g := range groups {
		if len(g.IDs) == 1 {
			rest = append(rest, g.expandOne(0))
			continue
		}
		out = append(out, g)
	}
	return rest, out
}

// compactable reports whether a's metrics fit the compact form: counts
// only, as the scheduler records for successful placements.
func compactable(a *structs.Allocation) bool {
	if a == nil || a.Metrics == nil {
		return false
	}
	m := a.Metrics
	return m.ConstraintFiltered == nil && m.DimensionExhausted == nil && m.CoalescedFailures == 0
}

func template(a *structs.Allocation) *structs.Allocation {
	t := *a
	t.ID, t.NodeID, t.Name, t.Metrics = "", "", "", nil
	return &t
}

// Expand returns the group's allocations. Each is its own copy of the
// template; slices and maps in the template are shared, as they are when
// the scheduler builds them.
func (g *PlacedGroup) Expand() ([]*structs.Allocation, error) {
	n := len(g.IDs)
	if g.Template == nil || len(g.NodeIDs) != n || len(g.Names) != n ||
		len(g.Evaluated) != n || len(g.Filtered) != n || len(g.Exhausted) != n {
		return nil, fmt.Errorf("placed group has no template or lists of unequal length: %w", ErrInvalid)
	}
	// One allocation each, not one array for the group: an array would
	// stay alive as long as any of its allocations is unchanged.
	out := make([]*structs.Allocation, n)
	for i := range n {
		out[i] = g.expandOne(i)
	}
	return out, nil
}

func (g *PlacedGroup) expandOne(i int) *structs.Allocation {
	a := *g.Template
	a.ID, a.NodeID, a.Name = g.IDs[i], g.NodeIDs[i], g.Names[i]
	a.Metrics = &structs.AllocMetric{NodesEvaluated: g.Evaluated[i], NodesFiltered: g.Filtered[i], NodesExhausted: g.Exhausted[i]}
	return &a
}
