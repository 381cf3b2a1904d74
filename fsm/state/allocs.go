package state

import (
	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/structs"
)

// UpsertAlloc inserts or replaces an allocation.
func (t *Txn) UpsertAlloc(a *structs.Allocation) error {
	cp := *a
	old := t.Read().Alloc(nil, a.ID)
	if old != nil {
		cp.CreateIndex = old.CreateIndex
	} else {
		cp.CreateIndex = t.index
	}
	cp.ModifyIndex = t.index
	if err := t.insert(TableAllocs, &cp); err != nil {
		return err
	}
	t.trackUsage(old, &cp)
	return nil
}

// PutAlloc stores a as the new version of old (nil: a is new), setting its
// indexes. Unlike UpsertAlloc it keeps a itself, which the caller must not
// touch again: the FSM hands over allocations it has just decoded, saving
// a copy and a lookup per allocation on every manager.
func (t *Txn) PutAlloc(a, old *structs.Allocation) error {
	if old != nil {
		a.CreateIndex = old.CreateIndex
	} else {
		a.CreateIndex = t.index
	}
	a.ModifyIndex = t.index
	if err := t.insert(TableAllocs, a); err != nil {
		return err
	}
	t.trackUsage(old, a)
	return nil
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
	return list[structs.Allocation](s, ws, TableAllocs, "job_prefix", ns)
}
