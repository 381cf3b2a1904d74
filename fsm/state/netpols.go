package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/structs"
)

// Network policy tables: namespaced policies keyed by namespace and name,
// and cluster-wide admin policies keyed by name.
const (
	TableNetworkPolicies      = "network_policies"
	TableAdminNetworkPolicies = "admin_network_policies"
)

func netpolSchema(tables map[string]*memdb.TableSchema) {
	tables[TableNetworkPolicies] = &memdb.TableSchema{Name: TableNetworkPolicies, Indexes: map[string]*memdb.IndexSchema{
		"id": nsIndex("id", "Name", true),
	}}
	tables[TableAdminNetworkPolicies] = &memdb.TableSchema{Name: TableAdminNetworkPolicies, Indexes: map[string]*memdb.IndexSchema{
		"id": idIndex("Name"),
	}}
}

// UpsertNetworkPolicy inserts or replaces a network policy.
func (t *Txn) UpsertNetworkPolicy(p *structs.NetworkPolicy) error {
	cp := *p
	var old *uint64
	if o := t.Read().NetworkPolicy(nil, p.Namespace, p.Name); o != nil {
		old = &o.CreateIndex
	}
	t.stamp(old, &cp.CreateIndex, &cp.ModifyIndex)
	return t.insert(TableNetworkPolicies, &cp)
}

// DeleteNetworkPolicy removes a network policy.
func (t *Txn) DeleteNetworkPolicy(ns, name string) error {
	p := t.Read().NetworkPolicy(nil, ns, name)
	if p == nil {
		return fmt.Errorf("network policy %s/%s: %w", ns, name, ErrNotFound)
	}
	return t.deleteRecord(TableNetworkPolicies, p)
}

// UpsertAdminNetworkPolicy inserts or replaces an admin network policy.
func (t *Txn) UpsertAdminNetworkPolicy(p *structs.AdminNetworkPolicy) error {
	cp := *p
	var old *uint64
	if o := t.Read().AdminNetworkPolicy(nil, p.Name); o != nil {
		old = &o.CreateIndex
	}
	t.stamp(old, &cp.CreateIndex, &cp.ModifyIndex)
	return t.insert(TableAdminNetworkPolicies, &cp)
}

// DeleteAdminNetworkPolicy removes an admin network policy.
func (t *Txn) DeleteAdminNetworkPolicy(name string) error {
	p := t.Read().AdminNetworkPolicy(nil, name)
	if p == nil {
		return fmt.Errorf("admin network policy %s: %w", name, ErrNotFound)
	}
	return t.deleteRecord(TableAdminNetworkPolicies, p)
}

// NetworkPolicy returns one network policy or nil.
func (s *Snapshot) NetworkPolicy(ws memdb.WatchSet, ns, name string) *structs.NetworkPolicy {
	return firstAs[structs.NetworkPolicy](s, ws, TableNetworkPolicies, ns, name)
}

// NetworkPolicies lists network policies by namespace and name, of one
// namespace when ns is set.
func (s *Snapshot) NetworkPolicies(ws memdb.WatchSet, ns string) []*structs.NetworkPolicy {
	if ns == "" {
		return list[structs.NetworkPolicy](s, ws, TableNetworkPolicies, "id")
	}
	return list[structs.NetworkPolicy](s, ws, TableNetworkPolicies, "id_prefix", ns, "")
}

// AdminNetworkPolicy returns one admin network policy or nil.
func (s *Snapshot) AdminNetworkPolicy(ws memdb.WatchSet, name string) *structs.AdminNetworkPolicy {
	return firstAs[structs.AdminNetworkPolicy](s, ws, TableAdminNetworkPolicies, name)
}

// AdminNetworkPolicies lists admin network policies by name.
func (s *Snapshot) AdminNetworkPolicies(ws memdb.WatchSet) []*structs.AdminNetworkPolicy {
	return list[structs.AdminNetworkPolicy](s, ws, TableAdminNetworkPolicies, "id")
}

// Indexes returns the highest index of the given tables and adds their
// index entries to ws, so a blocking query over several tables wakes when
// any of them changes without watching (or scanning) their records. For a
// table never written yet memdb can only watch a prefix its entry would
// share with others, so such a watch may also wake for them: a blocking
// query then checks once more and sleeps again.
func (s *Snapshot) Indexes(ws memdb.WatchSet, tables ...string) uint64 {
	var max uint64
	for _, table := range tables {
		ch, o, err := s.txn.FirstWatch(TableIndex, "id", table)
		if err != nil {
			continue // only a schema mismatch errors; tests cover it
		}
		ws.Add(ch)
		if o != nil && o.(*IndexEntry).Value > max {
			max = o.(*IndexEntry).Value
		}
	}
	return max
}
