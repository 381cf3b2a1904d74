package state

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/hivesec/hive/structs"
)

// sumUsage is the definition TableNodeUsage must agree with.
func sumUsage(s *Snapshot, node string) structs.Resources {
	var u structs.Resources
	for _, a := range s.AllocsByNode(nil, node) {
		if a.HoldsResources() {
			u.CPU += a.Resources.CPU
			u.MemoryMB += a.Resources.MemoryMB
		}
	}
	return u
}

// TestNodeUsageTracksAllocs applies random allocation writes (moves between
// nodes, resource changes, stops, terminal client states; some
// transactions aborted) and checks after each that every node's usage row
// equals the sum over its live allocations, then that a restore of the
// allocations rebuilds the same rows.
func TestNodeUsageTracksAllocs(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	nodes := []string{"n1", "n2", "n3", "n4"}
	statuses := []string{structs.AllocPending, structs.AllocRunning, structs.AllocComplete, structs.AllocFailed, structs.AllocLost}
	desired := []string{structs.AllocDesiredRun, structs.AllocDesiredRun, structs.AllocDesiredStop}
	st := New()
	for index := uint64(1); index <= 300; index++ {
		txn := st.Write(index)
		for range 1 + rng.Intn(20) {
			a := &structs.Allocation{
				ID: fmt.Sprintf("a%d", rng.Intn(40)), Namespace: "default", NodeID: nodes[rng.Intn(len(nodes))],
				DesiredStatus: desired[rng.Intn(len(desired))], ClientStatus: statuses[rng.Intn(len(statuses))],
				Resources: structs.Resources{CPU: 1 + rng.Intn(500), MemoryMB: 1 + rng.Intn(256)},
			}
			if err := txn.UpsertAlloc(a); err != nil {
				t.Fatal(err)
			}
		}
		if rng.Intn(5) == 0 {
			txn.Abort()
		} else if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
		snap := st.Snapshot()
		for _, n := range nodes {
			if got, want := snap.NodeUsed(n), sumUsage(snap, n); got != want {
				t.Fatalf("index %d node %s: usage %+v, allocations sum to %+v", index, n, got, want)
			}
		}
	}

	fresh := New()
	r := fresh.Restore()
	if err := st.Snapshot().Each(TableAllocs, func(o any) error { return r.Insert(TableAllocs, o) }); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	snap, old := fresh.Snapshot(), st.Snapshot()
	for _, n := range nodes {
		if got, want := snap.NodeUsed(n), old.NodeUsed(n); got != want {
			t.Errorf("restored node %s: usage %+v, before %+v", n, got, want)
		}
	}
}
