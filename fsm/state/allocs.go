package state

import (
	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/structs"
)

// UpsertAlloc inserts or replaces an allocation.
func (t *Txn) UpsertAlloc(a *structs.Allocation) error {
	cp := *a
	if old := t.Read().Alloc(nil, a.ID); old != nil {
		cp.CreateIndex = old.CreateIndex
	} else {
		cp.CreateIndex = t.index
	}
	cp.ModifyIndex = t.index
	return t.insert(TableAllocs, &cp)
}

// Alloc returns one allocation or nil.
func (s *Snapshot) Alloc(ws memdb.WatchSet, id string) *structs.Allocation {
	o := s.first(ws, TableAllocs, "id", id)
	if o == nil {
		return nil
	}
	return o.(*structs.Allocation)
}

// Allocs lists every allocation by ID.
func (s *Snapshot) Allocs(ws memdb.WatchSet) []*structs.Allocation {
	return list[structs.Allocation](s, ws, TableAllocs, "id")
}

// AllocsByNode lists the allocations placed on a node.
func (s *Snapshot) AllocsByNode(ws memdb.WatchSet, nodeID string) []*structs.Allocation {
	return list[structs.Allocation](s, ws, TableAllocs, "node", nodeID)
}

// AllocsByNamespace lists the allocations of a namespace.
func (s *Snapshot) AllocsByNamespace(ws memdb.WatchSet, ns string) []*structs.Allocation {
	return list[structs.Allocation](s, ws, TableAllocs, "namespace", ns)
}
