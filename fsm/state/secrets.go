package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/structs"
)

// Secret and root key tables. Secrets hold only ciphertext; root keys only
// their wrapped form.
const (
	TableSecrets  = "secrets"
	TableRootKeys = "root_keys"
)

func secretSchema(tables map[string]*memdb.TableSchema) {
	tables[TableSecrets] = &memdb.TableSchema{Name: TableSecrets, Indexes: map[string]*memdb.IndexSchema{
		"id": nsIndex("id", "Name", true),
	}}
	tables[TableRootKeys] = &memdb.TableSchema{Name: TableRootKeys, Indexes: map[string]*memdb.IndexSchema{
		"id": idIndex("ID"),
	}}
}

// UpsertSecret inserts or replaces a secret.
func (t *Txn) UpsertSecret(sec *structs.Secret) error {
	cp := *sec
	var old *uint64
	if o := t.Read().Secret(nil, sec.Namespace, sec.Name); o != nil {
		old = &o.CreateIndex
	}
	t.stamp(old, &cp.CreateIndex, &cp.ModifyIndex)
	return t.insert(TableSecrets, &cp)
}

// DeleteSecret removes a secret and every version of it.
func (t *Txn) DeleteSecret(ns, name string) error {
	sec := t.Read().Secret(nil, ns, name)
	if sec == nil {
		return fmt.Errorf("secret %s/%s: %w", ns, name, ErrNotFound)
	}
	return t.deleteRecord(TableSecrets, sec)
}

// UpsertRootKey inserts or replaces a root key.
func (t *Txn) UpsertRootKey(k *structs.RootKey) error {
	cp := *k
	var old *uint64
	if o := t.Read().RootKey(nil, k.ID); o != nil {
		old = &o.CreateIndex
	}
	t.stamp(old, &cp.CreateIndex, &cp.ModifyIndex)
	return t.insert(TableRootKeys, &cp)
}

// DeleteRootKey removes a root key.
func (t *Txn) DeleteRootKey(id string) error {
	k := t.Read().RootKey(nil, id)
	if k == nil {
		return fmt.Errorf("root key %s: %w", id, ErrNotFound)
	}
	return t.deleteRecord(TableRootKeys, k)
}

// Secret returns one secret or nil.
func (s *Snapshot) Secret(ws memdb.WatchSet, ns, name string) *structs.Secret {
	return firstAs[structs.Secret](s, ws, TableSecrets, ns, name)
}

// Secrets lists secrets, of one namespace when ns is set.
func (s *Snapshot) Secrets(ws memdb.WatchSet, ns string) []*structs.Secret {
	if ns == "" {
		return list[structs.Secret](s, ws, TableSecrets, "id")
	}
	return list[structs.Secret](s, ws, TableSecrets, "id_prefix", ns, "")
}

// RootKey returns one root key or nil.
func (s *Snapshot) RootKey(ws memdb.WatchSet, id string) *structs.RootKey {
	return firstAs[structs.RootKey](s, ws, TableRootKeys, id)
}

// RootKeys lists root keys by ID.
func (s *Snapshot) RootKeys(ws memdb.WatchSet) []*structs.RootKey {
	return list[structs.RootKey](s, ws, TableRootKeys, "id")
}
