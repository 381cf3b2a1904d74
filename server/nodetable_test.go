package server

import (
	"testing"
	"time"

	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/scheduler"
	"github.com/hivesec/hive/structs"
)

func ntNode(id string, cpu int, labels map[string]string) *structs.Node {
	return &structs.Node{ID: id, Name: id, Role: structs.RoleWorker, Status: structs.NodeStatusReady,
		Labels: labels, Resources: structs.Resources{CPU: cpu, MemoryMB: cpu}}
}

func ntAlloc(id, node string, cpu int, client string) *structs.Allocation {
	return &structs.Allocation{ID: id, NodeID: node, Namespace: "default", JobID: "j", Group: "g",
		Tasks: []*structs.Task{{Name: "t"}}, DesiredStatus: structs.AllocDesiredRun, ClientStatus: client,
		Resources: structs.Resources{CPU: cpu, MemoryMB: cpu}}
}

func ntWrite(t *testing.T, st *state.Store, idx uint64, nodes []*structs.Node, allocs []*structs.Allocation) {
	t.Helper()
	txn := st.Write(idx)
	for _, n := range nodes {
		if err := txn.UpsertNode(n); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range allocs {
		if err := txn.UpsertAlloc(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestNodeTableMatchesAllocs checks the cached node table against the
// scheduler's own derivation, and that it is rebuilt when allocations or
// nodes change and reused when they do not.
func TestNodeTableMatchesAllocs(t *testing.T) {
	st := state.New()
	ntWrite(t, st, 10, []*structs.Node{
		ntNode("a", 1000, map[string]string{"zone": "1"}),
		ntNode("b", 1000, map[string]string{"zone": "1"}),
		ntNode("c", 500, map[string]string{"zone": "2"}),
	}, []*structs.Allocation{
		ntAlloc("x1", "a", 100, structs.AllocRunning),
		ntAlloc("x2", "a", 50, structs.AllocComplete), // terminal: takes nothing
		ntAlloc("x3", "c", 70, ""),
	})
	var c nodeTableCache
	check := func(snap *state.Snapshot) *nodeTable {
		t.Helper()
		tab := c.get(st, snap)
		nodes, rows := newTableSchedState(st, snap, &c).NodeTable()
		if len(nodes) != len(rows) || len(nodes) != len(snap.Nodes(nil)) {
			t.Fatalf("%d nodes, %d rows", len(nodes), len(rows))
		}
		for i, n := range nodes {
			if want := liveUsage(snap.AllocsByNode(nil, n.ID)); rows[i].Used != want {
				t.Errorf("node %s used %+v, want %+v", n.ID, rows[i].Used, want)
			}
			if rows[i].Capacity != n.Resources {
				t.Errorf("node %s capacity %+v", n.ID, rows[i].Capacity)
			}
			for j, m := range nodes {
				if same := scheduler.ComputedClass(n) == scheduler.ComputedClass(m); same != (rows[i].Class == rows[j].Class) {
					t.Errorf("nodes %s and %s: classes %d and %d", n.ID, m.ID, rows[i].Class, rows[j].Class)
				}
			}
		}
		rows[0].Used.CPU += 1 << 20 // the scheduler's copy: must not leak into the cache
		return tab
	}
	t1 := check(st.Snapshot())
	if t2 := check(st.Snapshot()); t2 != t1 {
		t.Error("table rebuilt for an unchanged state")
	}
	// Another store at the same indexes (a restore) is not taken for it.
	other := state.New()
	ntWrite(t, other, 10, []*structs.Node{ntNode("z", 10, nil)}, nil)
	if tz := c.get(other, other.Snapshot()); tz == t1 || len(tz.nodes) != 1 {
		t.Error("table of another store reused")
	}
	ntWrite(t, st, 11, nil, []*structs.Allocation{ntAlloc("x4", "b", 30, ""), ntAlloc("x1", "a", 100, structs.AllocFailed)})
	if t3 := check(st.Snapshot()); t3 == t1 {
		t.Error("table reused after allocations changed")
	}
	ntWrite(t, st, 12, []*structs.Node{ntNode("d", 100, nil)}, nil)
	if t4 := check(st.Snapshot()); len(t4.nodes) != 4 {
		t.Errorf("%d nodes after a node joined", len(t4.nodes))
	}
}

// TestEvaluatePlanUsage checks the plan applier's capacity re-check over
// the cached table: in-place updates replace what they took, stops free
// capacity for placements of the same plan and of later plans in the
// batch, and a node that would be over capacity is refused.
func TestEvaluatePlanUsage(t *testing.T) {
	st := state.New()
	ntWrite(t, st, 10, []*structs.Node{ntNode("a", 1000, nil), ntNode("b", 1000, nil)}, []*structs.Allocation{
		ntAlloc("x1", "a", 600, structs.AllocRunning),
		ntAlloc("x2", "a", 300, structs.AllocRunning),
		ntAlloc("y1", "b", 900, structs.AllocRunning),
	})
	snap := st.Snapshot()
	var c nodeTableCache
	u := newUsage(snap, c.get(st, snap))
	now := time.Now()
	plan := func(stops, places []*structs.Allocation) *structs.Plan {
		p := &structs.Plan{EvalID: "e", NodeUpdate: map[string][]*structs.Allocation{}, NodeAllocation: map[string][]*structs.Allocation{}}
		for _, a := range stops {
			p.NodeUpdate[a.NodeID] = append(p.NodeUpdate[a.NodeID], a)
		}
		for _, a := range places {
			p.NodeAllocation[a.NodeID] = append(p.NodeAllocation[a.NodeID], a)
		}
		return p
	}
	// In place: x1 grows from 600 to 700 (900 → 1000 fits).
	if _, rej := evaluatePlan(snap, u, plan(nil, []*structs.Allocation{ntAlloc("x1", "a", 700, "")}), now); len(rej) != 0 {
		t.Fatalf("in-place update refused: %v", rej)
	}
	// Node a is now full: a new 1 MHz allocation does not fit.
	if _, rej := evaluatePlan(snap, u, plan(nil, []*structs.Allocation{ntAlloc("n1", "a", 1, "")}), now); len(rej) != 1 {
		t.Fatalf("placement on a full node accepted")
	}
	// Stopping x2 in the same plan makes room for 300.
	stop := ntAlloc("x2", "a", 300, "")
	stop.DesiredStatus = structs.AllocDesiredStop
	if _, rej := evaluatePlan(snap, u, plan([]*structs.Allocation{stop}, []*structs.Allocation{ntAlloc("n2", "a", 300, "")}), now); len(rej) != 0 {
		t.Fatalf("placement after a stop refused: %v", rej)
	}
	// A second stop of x2 frees nothing more.
	if _, rej := evaluatePlan(snap, u, plan([]*structs.Allocation{stop}, []*structs.Allocation{ntAlloc("n3", "a", 1, "")}), now); len(rej) != 1 {
		t.Fatalf("x2's capacity freed twice")
	}
	// Node b: 900 used; 100 fits, 101 does not.
	if _, rej := evaluatePlan(snap, u, plan(nil, []*structs.Allocation{ntAlloc("m1", "b", 101, "")}), now); len(rej) != 1 {
		t.Fatal("over-capacity placement accepted")
	}
	if _, rej := evaluatePlan(snap, u, plan(nil, []*structs.Allocation{ntAlloc("m2", "b", 100, "")}), now); len(rej) != 0 {
		t.Fatalf("fitting placement refused: %v", rej)
	}
	if got := u.node("a").used; got.CPU != 1000 {
		t.Errorf("node a used %d MHz, want 1000", got.CPU)
	}
}

// liveUsage sums what the live allocations among allocs take.
func liveUsage(allocs []*structs.Allocation) structs.Resources {
	var u structs.Resources
	for _, a := range allocs {
		if live(a) {
			u.CPU += a.Resources.CPU
			u.MemoryMB += a.Resources.MemoryMB
		}
	}
	return u
}
