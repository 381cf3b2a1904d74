package state

import (
	"errors"
	"testing"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/structs"
)

func TestNetworkPolicyTables(t *testing.T) {
	s := New()
	write(t, s, 5, func(txn *Txn) error {
		for _, p := range []structs.NetworkPolicy{
			{Namespace: "web", Name: "b"}, {Namespace: "web", Name: "a"},
			// "web2" shares web's prefix: a listing of web must not see it.
			{Namespace: "web2", Name: "a"}, {Namespace: "db", Name: "z"},
		} {
			if err := txn.UpsertNetworkPolicy(&p); err != nil {
				return err
			}
		}
		return txn.UpsertAdminNetworkPolicy(&structs.AdminNetworkPolicy{Name: "deny-all", Priority: 3})
	})
	snap := read(s)
	names := func(ps []*structs.NetworkPolicy) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Namespace+"/"+p.Name)
		}
		return out
	}
	if got := names(snap.NetworkPolicies(nil, "web")); len(got) != 2 || got[0] != "web/a" || got[1] != "web/b" {
		t.Errorf("policies of web = %v, want [web/a web/b]", got)
	}
	if got := names(snap.NetworkPolicies(nil, "")); len(got) != 4 || got[0] != "db/z" || got[3] != "web2/a" {
		t.Errorf("all policies = %v, want 4 ordered by namespace and name", got)
	}
	if p := snap.NetworkPolicy(nil, "web", "a"); p == nil || p.CreateIndex != 5 || p.ModifyIndex != 5 {
		t.Errorf("web/a = %+v, want indexes 5", p)
	}
	if p := snap.AdminNetworkPolicy(nil, "deny-all"); p == nil || p.Priority != 3 {
		t.Errorf("admin policy = %+v", p)
	}

	// A replaced policy keeps its create index; a watch on the list fires.
	ws := memdb.NewWatchSet()
	read(s).NetworkPolicies(ws, "web")
	write(t, s, 6, func(txn *Txn) error {
		return txn.UpsertNetworkPolicy(&structs.NetworkPolicy{Namespace: "web", Name: "a", Audit: true})
	})
	if !watchFired(ws) {
		t.Error("replacing a policy did not fire the watch on its namespace's list")
	}
	if p := read(s).NetworkPolicy(nil, "web", "a"); p.CreateIndex != 5 || p.ModifyIndex != 6 || !p.Audit {
		t.Errorf("replaced web/a = %+v, want create 5, modify 6, audit", p)
	}

	write(t, s, 7, func(txn *Txn) error {
		if err := txn.DeleteNetworkPolicy("web", "a"); err != nil {
			return err
		}
		return txn.DeleteAdminNetworkPolicy("deny-all")
	})
	snap = read(s)
	if snap.NetworkPolicy(nil, "web", "a") != nil || snap.AdminNetworkPolicy(nil, "deny-all") != nil {
		t.Error("deleted policies are still there")
	}
	if snap.Index(TableNetworkPolicies) != 7 || snap.Index(TableAdminNetworkPolicies) != 7 {
		t.Errorf("table indexes %d, %d after the delete at 7", snap.Index(TableNetworkPolicies), snap.Index(TableAdminNetworkPolicies))
	}
	txn := s.Write(8)
	defer txn.Abort()
	if err := txn.DeleteNetworkPolicy("web", "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting a missing policy: %v, want ErrNotFound", err)
	}
	if err := txn.DeleteAdminNetworkPolicy("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting a missing admin policy: %v, want ErrNotFound", err)
	}
}

func watchFired(ws memdb.WatchSet) bool {
	for ch := range ws {
		select {
		case <-ch:
			return true
		default:
		}
	}
	return false
}

func TestIndexesWatch(t *testing.T) {
	s := New()
	ws := memdb.NewWatchSet()
	if got := read(s).Indexes(ws, TableNetworkPolicies, TableNodes); got != 0 {
		t.Fatalf("Indexes of an empty store = %d", got)
	}
	// A table never written before fires the watch when first written.
	write(t, s, 4, func(txn *Txn) error { return txn.UpsertNode(&structs.Node{ID: "n", Role: structs.RoleWorker}) })
	if !watchFired(ws) {
		t.Error("the first node write did not fire the watch")
	}
	write(t, s, 5, func(txn *Txn) error {
		return txn.UpsertNetworkPolicy(&structs.NetworkPolicy{Namespace: "x", Name: "p"})
	})
	ws = memdb.NewWatchSet()
	if got := read(s).Indexes(ws, TableNetworkPolicies, TableNodes); got != 5 {
		t.Errorf("Indexes = %d, want 5", got)
	}
	// Once the tables have index entries, a write elsewhere does not wake
	// the watch (before, it may: memdb then watches a shared prefix).
	write(t, s, 6, func(txn *Txn) error { return txn.UpsertNamespace(&structs.Namespace{Name: "x"}) })
	if watchFired(ws) {
		t.Error("a namespace write fired a watch on nodes and policies")
	}
	write(t, s, 7, func(txn *Txn) error { return txn.DeleteNetworkPolicy("x", "p") })
	if !watchFired(ws) {
		t.Error("a policy delete did not fire the watch")
	}
	if got := read(s).Indexes(nil, TableNetworkPolicies, TableNodes); got != 7 {
		t.Errorf("Indexes = %d, want 7", got)
	}
}
