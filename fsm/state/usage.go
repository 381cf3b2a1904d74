package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/structs"
)

// TableNodeUsage holds, per worker node, what its live allocations take.
// It is derived from the allocations table, so it is not in Tables: a
// snapshot does not carry it and a restore rebuilds it. Keeping it in the
// store lets the scheduler and the plan applier read a node's usage with
// one lookup at any Raft index instead of summing its allocations, which
// cost a walk of the whole allocations table per scheduling round.
const TableNodeUsage = "node_usage"

// DerivedTables are the schema tables left out of snapshots because a
// restore rebuilds them (in Restore.Commit) from the tables it loads.
var DerivedTables = map[string]bool{TableNodeUsage: true}

// NodeUsage is one row of TableNodeUsage.
type NodeUsage struct {
	NodeID string
	Used   structs.Resources
}

// trackUsage records how replacing old (nil: none) by a changes the usage
// of their nodes. The rows are written once per node at commit, so a batch
// placing a thousand allocations on a node writes its row once.
func (t *Txn) trackUsage(old, a *structs.Allocation) {
	if old != nil && old.HoldsResources() {
		t.addUsage(old.NodeID, old.Resources, -1)
	}
	if a.HoldsResources() {
		t.addUsage(a.NodeID, a.Resources, 1)
	}
}

func (t *Txn) addUsage(node string, r structs.Resources, sign int) {
	if node == "" {
		return
	}
	if t.usage == nil {
		t.usage = map[string]structs.Resources{}
	}
	d := t.usage[node]
	d.CPU += sign * r.CPU
	d.MemoryMB += sign * r.MemoryMB
	t.usage[node] = d
}

// flushUsage writes the usage rows changed by this transaction.
func (t *Txn) flushUsage() error {
	for node, d := range t.usage {
		if d == (structs.Resources{}) {
			continue
		}
		used := t.Read().NodeUsed(node)
		used.CPU += d.CPU
		used.MemoryMB += d.MemoryMB
		if err := t.put(TableNodeUsage, &NodeUsage{NodeID: node, Used: used}); err != nil {
			return fmt.Errorf("update usage of node %s: %w", node, err)
		}
	}
	t.usage = nil
	return nil
}

// NodeUsed returns what the live allocations on a node take.
func (s *Snapshot) NodeUsed(nodeID string) structs.Resources {
	if o, ok := s.first(nil, TableNodeUsage, "id", nodeID).(*NodeUsage); ok {
		return o.Used
	}
	return structs.Resources{}
}

// rebuildUsage derives TableNodeUsage from the allocations in txn, after a
// restore loaded them.
func rebuildUsage(txn *memdb.Txn) error {
	used := map[string]structs.Resources{}
	it, err := txn.Get(TableAllocs, "id")
	if err != nil {
		return fmt.Errorf("read allocations: %w", err)
	}
	for o := it.Next(); o != nil; o = it.Next() {
		a := o.(*structs.Allocation)
		if a.NodeID == "" || !a.HoldsResources() {
			continue
		}
		u := used[a.NodeID]
		u.CPU += a.Resources.CPU
		u.MemoryMB += a.Resources.MemoryMB
		used[a.NodeID] = u
	}
	for node, u := range used {
		if err := txn.Insert(TableNodeUsage, &NodeUsage{NodeID: node, Used: u}); err != nil {
			return fmt.Errorf("restore usage of node %s: %w", node, err)
		}
	}
	return nil
}
