package state

import (
	"fmt"
	"sort"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/structs"
)

// Identity and RBAC tables. Their records are small and change rarely;
// the authorizer is compiled from them whenever their indexes move.
const (
	TableUsers           = "users"
	TableGroups          = "groups"
	TableACLRoles        = "acl_roles"
	TableACLBindings     = "acl_bindings"
	TableServiceAccounts = "service_accounts"
)

func aclSchema(tables map[string]*memdb.TableSchema) {
	tables[TableUsers] = &memdb.TableSchema{Name: TableUsers, Indexes: map[string]*memdb.IndexSchema{"id": idIndex("Name")}}
	tables[TableGroups] = &memdb.TableSchema{Name: TableGroups, Indexes: map[string]*memdb.IndexSchema{"id": idIndex("Name")}}
	tables[TableACLRoles] = &memdb.TableSchema{Name: TableACLRoles, Indexes: map[string]*memdb.IndexSchema{"id": idIndex("Name")}}
	tables[TableACLBindings] = &memdb.TableSchema{Name: TableACLBindings, Indexes: map[string]*memdb.IndexSchema{
		"id":   idIndex("Name"),
		"role": {Name: "role", Indexer: &memdb.StringFieldIndex{Field: "Role"}},
	}}
	tables[TableServiceAccounts] = &memdb.TableSchema{Name: TableServiceAccounts, Indexes: map[string]*memdb.IndexSchema{
		"id": nsIndex("id", "Name", true),
	}}
}

// stamp sets the indexes of a record about to replace old (nil: new).
func (t *Txn) stamp(old *uint64, create, modify *uint64) {
	if old != nil {
		*create = *old
	} else {
		*create = t.index
	}
	*modify = t.index
}

// UpsertUser inserts or replaces a user.
func (t *Txn) UpsertUser(u *structs.User) error {
	cp := *u
	var old *uint64
	if o := t.Read().User(nil, u.Name); o != nil {
		old = &o.CreateIndex
	}
	t.stamp(old, &cp.CreateIndex, &cp.ModifyIndex)
	return t.insert(TableUsers, &cp)
}

// UpsertGroup inserts or replaces a group.
func (t *Txn) UpsertGroup(g *structs.Group) error {
	cp := *g
	cp.Members = append([]string(nil), g.Members...)
	var old *uint64
	if o := t.Read().Group(nil, g.Name); o != nil {
		old = &o.CreateIndex
	}
	t.stamp(old, &cp.CreateIndex, &cp.ModifyIndex)
	return t.insert(TableGroups, &cp)
}

// UpsertACLRole inserts or replaces a role.
func (t *Txn) UpsertACLRole(r *structs.ACLRole) error {
	cp := *r
	var old *uint64
	if o := t.Read().ACLRole(nil, r.Name); o != nil {
		old = &o.CreateIndex
	}
	t.stamp(old, &cp.CreateIndex, &cp.ModifyIndex)
	return t.insert(TableACLRoles, &cp)
}

// UpsertACLBinding inserts or replaces a binding.
func (t *Txn) UpsertACLBinding(b *structs.ACLBinding) error {
	cp := *b
	cp.Subjects = append([]string(nil), b.Subjects...)
	var old *uint64
	if o := t.Read().ACLBinding(nil, b.Name); o != nil {
		old = &o.CreateIndex
	}
	t.stamp(old, &cp.CreateIndex, &cp.ModifyIndex)
	return t.insert(TableACLBindings, &cp)
}

// UpsertServiceAccount inserts or replaces a service account.
func (t *Txn) UpsertServiceAccount(sa *structs.ServiceAccount) error {
	cp := *sa
	var old *uint64
	if o := t.Read().ServiceAccount(nil, sa.Namespace, sa.Name); o != nil {
		old = &o.CreateIndex
	}
	t.stamp(old, &cp.CreateIndex, &cp.ModifyIndex)
	return t.insert(TableServiceAccounts, &cp)
}

// deleteRecord removes the record obj (found by the caller) from table.
func (t *Txn) deleteRecord(table string, obj any) error {
	if err := t.remove(table, obj); err != nil {
		return fmt.Errorf("delete from %s: %w", table, err)
	}
	return t.bump(table)
}

// DeleteUser removes a user.
func (t *Txn) DeleteUser(name string) error {
	u := t.Read().User(nil, name)
	if u == nil {
		return fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	return t.deleteRecord(TableUsers, u)
}

// DeleteGroup removes a group.
func (t *Txn) DeleteGroup(name string) error {
	g := t.Read().Group(nil, name)
	if g == nil {
		return fmt.Errorf("group %q: %w", name, ErrNotFound)
	}
	return t.deleteRecord(TableGroups, g)
}

// DeleteACLRole removes a role.
func (t *Txn) DeleteACLRole(name string) error {
	r := t.Read().ACLRole(nil, name)
	if r == nil {
		return fmt.Errorf("role %q: %w", name, ErrNotFound)
	}
	return t.deleteRecord(TableACLRoles, r)
}

// DeleteACLBinding removes a binding.
func (t *Txn) DeleteACLBinding(name string) error {
	b := t.Read().ACLBinding(nil, name)
	if b == nil {
		return fmt.Errorf("binding %q: %w", name, ErrNotFound)
	}
	return t.deleteRecord(TableACLBindings, b)
}

// DeleteServiceAccount removes a service account.
func (t *Txn) DeleteServiceAccount(ns, name string) error {
	sa := t.Read().ServiceAccount(nil, ns, name)
	if sa == nil {
		return fmt.Errorf("service account %s/%s: %w", ns, name, ErrNotFound)
	}
	return t.deleteRecord(TableServiceAccounts, sa)
}

// DeleteACLToken removes an API token.
func (t *Txn) DeleteACLToken(accessor string) error {
	tok := t.Read().ACLToken(nil, accessor)
	if tok == nil {
		return fmt.Errorf("token %s: %w", accessor, ErrNotFound)
	}
	return t.deleteRecord(TableACLTokens, tok)
}

func firstAs[T any](s *Snapshot, ws memdb.WatchSet, table string, args ...any) *T {
	o := s.first(ws, table, "id", args...)
	if o == nil {
		return nil
	}
	return o.(*T)
}

// User returns one user or nil.
func (s *Snapshot) User(ws memdb.WatchSet, name string) *structs.User {
	return firstAs[structs.User](s, ws, TableUsers, name)
}

// Users lists users by name.
func (s *Snapshot) Users(ws memdb.WatchSet) []*structs.User {
	return list[structs.User](s, ws, TableUsers, "id")
}

// Group returns one group or nil.
func (s *Snapshot) Group(ws memdb.WatchSet, name string) *structs.Group {
	return firstAs[structs.Group](s, ws, TableGroups, name)
}

// Groups lists groups by name.
func (s *Snapshot) Groups(ws memdb.WatchSet) []*structs.Group {
	return list[structs.Group](s, ws, TableGroups, "id")
}

// ACLRole returns one stored role or nil (built-in roles are not stored).
func (s *Snapshot) ACLRole(ws memdb.WatchSet, name string) *structs.ACLRole {
	return firstAs[structs.ACLRole](s, ws, TableACLRoles, name)
}

// ACLRoles lists stored roles by name.
func (s *Snapshot) ACLRoles(ws memdb.WatchSet) []*structs.ACLRole {
	return list[structs.ACLRole](s, ws, TableACLRoles, "id")
}

// ACLBinding returns one binding or nil.
func (s *Snapshot) ACLBinding(ws memdb.WatchSet, name string) *structs.ACLBinding {
	return firstAs[structs.ACLBinding](s, ws, TableACLBindings, name)
}

// ACLBindings lists bindings by name.
func (s *Snapshot) ACLBindings(ws memdb.WatchSet) []*structs.ACLBinding {
	return list[structs.ACLBinding](s, ws, TableACLBindings, "id")
}

// ACLBindingsByRole lists the bindings of one role.
func (s *Snapshot) ACLBindingsByRole(ws memdb.WatchSet, role string) []*structs.ACLBinding {
	return list[structs.ACLBinding](s, ws, TableACLBindings, "role", role)
}

// ServiceAccount returns one service account or nil.
func (s *Snapshot) ServiceAccount(ws memdb.WatchSet, ns, name string) *structs.ServiceAccount {
	return firstAs[structs.ServiceAccount](s, ws, TableServiceAccounts, ns, name)
}

// ServiceAccounts lists service accounts, of one namespace when ns is set.
func (s *Snapshot) ServiceAccounts(ws memdb.WatchSet, ns string) []*structs.ServiceAccount {
	if ns == "" {
		return list[structs.ServiceAccount](s, ws, TableServiceAccounts, "id")
	}
	return list[structs.ServiceAccount](s, ws, TableServiceAccounts, "id_prefix", ns, "")
}

// ACLTokens lists API tokens, oldest first.
func (s *Snapshot) ACLTokens(ws memdb.WatchSet) []*structs.ACLToken {
	out := list[structs.ACLToken](s, ws, TableACLTokens, "id")
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreateIndex < out[j].CreateIndex })
	return out
}

// ACLTokensBySubject lists the API tokens of one subject.
func (s *Snapshot) ACLTokensBySubject(ws memdb.WatchSet, subject string) []*structs.ACLToken {
	return list[structs.ACLToken](s, ws, TableACLTokens, "subject", subject)
}
