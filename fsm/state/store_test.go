package state

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/structs"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// write runs fn in a write transaction at index and commits it, failing the
// test if fn returns an error.
func write(t *testing.T, s *Store, index uint64, fn func(txn *Txn) error) {
	t.Helper()
	txn := s.Write(index)
	if err := fn(txn); err != nil {
		txn.Abort()
		t.Fatalf("write at index %d: %v", index, err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
}

func read(s *Store) *Snapshot { return s.Snapshot() }

func TestSnapshotCoversEveryTable(t *testing.T) {
	sch := schema()
	if err := sch.Validate(); err != nil {
		t.Fatalf("schema does not validate: %v", err)
	}

	names := map[string]int{}
	ids := map[byte]string{}
	for _, tab := range Tables {
		names[tab.Name]++
		if prev, dup := ids[tab.ID]; dup {
			t.Errorf("table ID %d used by both %q and %q", tab.ID, prev, tab.Name)
		}
		ids[tab.ID] = tab.Name
		if tab.ID == 0 {
			t.Errorf("table %q uses ID 0", tab.Name)
		}
		if tab.New == nil || tab.New() == nil {
			t.Errorf("table %q has no record constructor", tab.Name)
		}
		if got, ok := TableByID(tab.ID); !ok || got.Name != tab.Name {
			t.Errorf("TableByID(%d) = %q, %v; want %q", tab.ID, got.Name, ok, tab.Name)
		}
	}
	for name, n := range names {
		if n != 1 {
			t.Errorf("table %q appears %d times in Tables", name, n)
		}
		if _, ok := sch.Tables[name]; !ok {
			t.Errorf("table %q is in Tables but not in the schema", name)
		}
	}
	for name := range sch.Tables {
		if names[name] == 0 && !DerivedTables[name] {
			t.Errorf("schema table %q is missing from Tables: snapshots would drop it", name)
		}
	}
	if _, ok := TableByID(0); ok {
		t.Errorf("TableByID(0) found a table")
	}
}

// TestTableRecordTypes checks that each table's constructor builds the type
// the store writes, by inserting one through Restore.
func TestTableRecordTypes(t *testing.T) {
	s := New()
	write(t, s, 3, func(txn *Txn) error {
		if err := txn.PutCluster(&structs.ClusterConfig{ClusterID: "c"}); err != nil {
			return err
		}
		if err := txn.UpsertNode(&structs.Node{ID: "n", Role: structs.RoleWorker}); err != nil {
			return err
		}
		if err := txn.PutIssuedCert(&structs.IssuedCert{Serial: "01", NodeID: "n"}); err != nil {
			return err
		}
		if err := txn.UpsertNamespace(&structs.Namespace{Name: "ns"}); err != nil {
			return err
		}
		if err := txn.UpsertJoinToken(&structs.JoinToken{ID: "j", Role: structs.RoleWorker}); err != nil {
			return err
		}
		if err := txn.UpsertACLToken(&structs.ACLToken{AccessorID: "a", SecretHash: "h"}); err != nil {
			return err
		}
		if err := txn.UpsertAlloc(&structs.Allocation{ID: "al", NodeID: "n", Namespace: "ns"}); err != nil {
			return err
		}
		if err := txn.UpsertJob(&structs.Job{ID: "web", Namespace: "ns"}); err != nil {
			return err
		}
		if err := txn.UpsertEval(&structs.Evaluation{ID: "e", Namespace: "ns", JobID: "web", Status: structs.EvalStatusPending}); err != nil {
			return err
		}
		if err := txn.UpsertDeployment(&structs.Deployment{ID: "d", Namespace: "ns", JobID: "web"}); err != nil {
			return err
		}
		if err := txn.UpsertUser(&structs.User{Name: "u"}); err != nil {
			return err
		}
		if err := txn.UpsertGroup(&structs.Group{Name: "g", Members: []string{"u"}}); err != nil {
			return err
		}
		if err := txn.UpsertACLRole(&structs.ACLRole{Name: "r"}); err != nil {
			return err
		}
		if err := txn.UpsertACLBinding(&structs.ACLBinding{Name: "b", Role: "r"}); err != nil {
			return err
		}
		if err := txn.UpsertServiceAccount(&structs.ServiceAccount{Namespace: "ns", Name: "sa"}); err != nil {
			return err
		}
		if err := txn.UpsertRootKey(&structs.RootKey{ID: "rk", WrappedKey: []byte("w"), State: structs.RootKeyActive}); err != nil {
			return err
		}
		if err := txn.UpsertSecret(&structs.Secret{Namespace: "ns", Name: "s"}); err != nil {
			return err
		}
		if err := txn.UpsertNetworkPolicy(&structs.NetworkPolicy{Namespace: "ns", Name: "np"}); err != nil {
			return err
		}
		if err := txn.UpsertAdminNetworkPolicy(&structs.AdminNetworkPolicy{Name: "anp"}); err != nil {
			return err
		}
		return txn.AddEvent(structs.Event{Type: "x"})
	})
	snap := read(s)
	for _, tab := range Tables {
		want := fmt.Sprintf("%T", tab.New())
		n := 0
		if err := snap.Each(tab.Name, func(obj any) error {
			n++
			if got := fmt.Sprintf("%T", obj); got != want {
				return fmt.Errorf("record type %s, constructor builds %s", got, want)
			}
			return nil
		}); err != nil {
			t.Errorf("table %s: %v", tab.Name, err)
		}
		if n == 0 {
			t.Errorf("table %s: no records written", tab.Name)
		}
	}
}

func TestWatchSets(t *testing.T) {
	type watchFn func(s *Snapshot, ws memdb.WatchSet)
	type writeFn func(txn *Txn) error

	watchNode := func(s *Snapshot, ws memdb.WatchSet) { s.Node(ws, "n1") }
	watchNodes := func(s *Snapshot, ws memdb.WatchSet) { s.Nodes(ws) }
	watchCluster := func(s *Snapshot, ws memdb.WatchSet) { s.Cluster(ws) }
	watchEvents := func(s *Snapshot, ws memdb.WatchSet) { s.Events(ws) }
	watchNamespaces := func(s *Snapshot, ws memdb.WatchSet) { s.Namespaces(ws) }

	updateNode := func(txn *Txn) error {
		return txn.UpsertNode(&structs.Node{ID: "n1", Role: structs.RoleWorker, Status: structs.NodeStatusUnknown})
	}
	addNode := func(txn *Txn) error { return txn.UpsertNode(&structs.Node{ID: "n2", Role: structs.RoleWorker}) }
	deleteNode := func(txn *Txn) error { return txn.DeleteNode("n1") }
	addNamespace := func(txn *Txn) error { return txn.UpsertNamespace(&structs.Namespace{Name: "other"}) }
	addEvent := func(txn *Txn) error { return txn.AddEvent(structs.Event{Type: "x"}) }
	putCluster := func(txn *Txn) error { return txn.PutCluster(&structs.ClusterConfig{ClusterID: "c2"}) }

	tests := []struct {
		name  string
		watch watchFn
		write writeFn
		fire  bool
	}{
		{"node updated", watchNode, updateNode, true},
		{"node deleted", watchNode, deleteNode, true},
		{"node list, node added", watchNodes, addNode, true},
		{"cluster updated", watchCluster, putCluster, true},
		{"events, event added", watchEvents, addEvent, true},
		{"namespaces, namespace added", watchNamespaces, addNamespace, true},
		{"node, namespace added", watchNode, addNamespace, false},
		{"node list, event added", watchNodes, addEvent, false},
		{"cluster, node updated", watchCluster, updateNode, false},
		{"events, cluster updated", watchEvents, putCluster, false},
		{"namespaces, node added", watchNamespaces, addNode, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New()
			write(t, s, 1, func(txn *Txn) error {
				if err := txn.PutCluster(&structs.ClusterConfig{ClusterID: "c"}); err != nil {
					return err
				}
				if err := txn.UpsertNamespace(&structs.Namespace{Name: structs.DefaultNamespace}); err != nil {
					return err
				}
				if err := txn.AddEvent(structs.Event{Type: "first"}); err != nil {
					return err
				}
				return txn.UpsertNode(&structs.Node{ID: "n1", Role: structs.RoleWorker, Status: structs.NodeStatusReady})
			})

			ws := memdb.NewWatchSet()
			tc.watch(read(s), ws)
			if len(ws) == 0 {
				t.Fatal("query added no watch channel")
			}
			write(t, s, 2, tc.write)

			// The write is committed already, so a channel that is going
			// to fire is closed by now; the timeout only bounds the wait.
			timeout := 10 * time.Millisecond
			if tc.fire {
				timeout = 5 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			err := ws.WatchCtx(ctx)
			if tc.fire && err != nil {
				t.Errorf("watch did not fire: %v", err)
			}
			if !tc.fire && err == nil {
				t.Errorf("watch fired on an unrelated write")
			}
		})
	}
}

func TestWatchAbortedWriteDoesNotFire(t *testing.T) {
	s := New()
	write(t, s, 1, func(txn *Txn) error {
		return txn.UpsertNode(&structs.Node{ID: "n1", Role: structs.RoleWorker})
	})
	ws := memdb.NewWatchSet()
	read(s).Nodes(ws)

	txn := s.Write(2)
	if err := txn.UpsertNode(&structs.Node{ID: "n2", Role: structs.RoleWorker}); err != nil {
		t.Fatal(err)
	}
	txn.Abort()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := ws.WatchCtx(ctx); err == nil {
		t.Error("aborted write fired a watch")
	}
	if got := read(s).LatestIndex(); got != 1 {
		t.Errorf("LatestIndex after abort = %d, want 1", got)
	}
}

func TestAbandon(t *testing.T) {
	s := New()
	select {
	case <-s.AbandonCh():
		t.Fatal("AbandonCh closed on a new store")
	default:
	}
	s.Abandon()
	select {
	case <-s.AbandonCh():
	default:
		t.Fatal("AbandonCh not closed after Abandon")
	}
}

func TestEventPruning(t *testing.T) {
	tests := []struct {
		name     string
		perTxn   int // events per transaction
		txns     int
		wantKept int
	}{
		{"below limit", 1, 10, 10},
		{"exactly at limit", 1, MaxEvents, MaxEvents},
		{"one txn per event", 1, MaxEvents + 7, MaxEvents},
		{"many per txn", 100, MaxEvents/100 + 3, MaxEvents},
		{"one huge txn", MaxEvents + 50, 1, MaxEvents},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New()
			total := tc.perTxn * tc.txns
			n := 0
			for i := 0; i < tc.txns; i++ {
				write(t, s, uint64(i+1), func(txn *Txn) error {
					for j := 0; j < tc.perTxn; j++ {
						if err := txn.AddEvent(structs.Event{Type: "t", Message: fmt.Sprint(n)}); err != nil {
							return err
						}
						n++
					}
					return nil
				})
			}
			evs := read(s).Events(nil)
			if len(evs) != tc.wantKept {
				t.Fatalf("kept %d events, want %d", len(evs), tc.wantKept)
			}
			if got := read(s).Counts()[TableEvents]; got != tc.wantKept {
				t.Errorf("Counts()[events] = %d, want %d", got, tc.wantKept)
			}
			// The newest events survive, in order, with no gaps.
			for i, ev := range evs {
				want := fmt.Sprint(total - tc.wantKept + i)
				if ev.Message != want {
					t.Fatalf("event %d is %q, want %q (oldest must be pruned first)", i, ev.Message, want)
				}
				if i > 0 {
					prev := evs[i-1]
					if ev.Index < prev.Index || (ev.Index == prev.Index && ev.Seq <= prev.Seq) {
						t.Fatalf("events out of order at %d: (%d,%d) after (%d,%d)", i, ev.Index, ev.Seq, prev.Index, prev.Seq)
					}
				}
			}
		})
	}
}

func TestEventStamping(t *testing.T) {
	s := New()
	write(t, s, 42, func(txn *Txn) error {
		for i := 0; i < 3; i++ {
			// Index and Seq given by the caller are overwritten.
			if err := txn.AddEvent(structs.Event{Index: 7, Seq: 99, Type: "t"}); err != nil {
				return err
			}
		}
		return nil
	})
	evs := read(s).Events(nil)
	if len(evs) != 3 {
		t.Fatalf("got %d events, want 3", len(evs))
	}
	for i, ev := range evs {
		if ev.Index != 42 || ev.Seq != i {
			t.Errorf("event %d stamped (%d,%d), want (42,%d)", i, ev.Index, ev.Seq, i)
		}
	}
	if got := read(s).Index(TableEvents); got != 42 {
		t.Errorf("Index(events) = %d, want 42", got)
	}
}

func TestLatestIndexAndCounts(t *testing.T) {
	s := New()
	snap := read(s)
	if got := snap.LatestIndex(); got != 0 {
		t.Errorf("empty store LatestIndex = %d", got)
	}
	for _, tab := range Tables {
		if got := snap.Counts()[tab.Name]; got != 0 {
			t.Errorf("empty store Counts()[%s] = %d", tab.Name, got)
		}
	}

	write(t, s, 5, func(txn *Txn) error {
		if err := txn.UpsertNode(&structs.Node{ID: "a", Role: structs.RoleManager}); err != nil {
			return err
		}
		return txn.UpsertNode(&structs.Node{ID: "b", Role: structs.RoleWorker})
	})
	write(t, s, 9, func(txn *Txn) error { return txn.UpsertNamespace(&structs.Namespace{Name: "x"}) })
	write(t, s, 7, func(txn *Txn) error { return txn.PutCluster(&structs.ClusterConfig{ClusterID: "c"}) })
	write(t, s, 8, func(txn *Txn) error {
		if err := txn.UpsertJoinToken(&structs.JoinToken{ID: "t1", Role: structs.RoleWorker}); err != nil {
			return err
		}
		if err := txn.UpsertACLToken(&structs.ACLToken{AccessorID: "acc", SecretHash: "h"}); err != nil {
			return err
		}
		if err := txn.PutIssuedCert(&structs.IssuedCert{Serial: "01", NodeID: "a", NotAfter: t0}); err != nil {
			return err
		}
		return txn.AddEvent(structs.Event{Type: "e"})
	})
	// An aborted write at a higher index leaves no trace.
	txn := s.Write(20)
	if err := txn.UpsertNamespace(&structs.Namespace{Name: "y"}); err != nil {
		t.Fatal(err)
	}
	txn.Abort()

	snap = read(s)
	if got := snap.LatestIndex(); got != 9 {
		t.Errorf("LatestIndex = %d, want 9", got)
	}
	wantIdx := map[string]uint64{
		TableNodes: 5, TableNamespaces: 9, TableCluster: 7, TableJoinTokens: 8,
		TableACLTokens: 8, TableIssuedCerts: 8, TableEvents: 8, TableIndex: 0,
	}
	for table, want := range wantIdx {
		if got := snap.Index(table); got != want {
			t.Errorf("Index(%s) = %d, want %d", table, got, want)
		}
	}
	wantCounts := map[string]int{
		TableIndex: 7, TableCluster: 1, TableNodes: 2, TableIssuedCerts: 1,
		TableNamespaces: 1, TableJoinTokens: 1, TableACLTokens: 1, TableEvents: 1,
	}
	got := snap.Counts()
	if len(got) != len(Tables) {
		t.Errorf("Counts has %d tables, want %d", len(got), len(Tables))
	}
	for table, want := range wantCounts {
		if got[table] != want {
			t.Errorf("Counts()[%s] = %d, want %d", table, got[table], want)
		}
	}
}

func TestUpsertKeepsCreateIndex(t *testing.T) {
	s := New()
	write(t, s, 3, func(txn *Txn) error {
		if err := txn.PutCluster(&structs.ClusterConfig{ClusterID: "c"}); err != nil {
			return err
		}
		if err := txn.UpsertNode(&structs.Node{ID: "n", Role: structs.RoleWorker}); err != nil {
			return err
		}
		if err := txn.PutIssuedCert(&structs.IssuedCert{Serial: "01", NodeID: "n"}); err != nil {
			return err
		}
		if err := txn.UpsertNamespace(&structs.Namespace{Name: "ns"}); err != nil {
			return err
		}
		if err := txn.UpsertJoinToken(&structs.JoinToken{ID: "j", Role: structs.RoleWorker}); err != nil {
			return err
		}
		return txn.UpsertACLToken(&structs.ACLToken{AccessorID: "a", SecretHash: "h"})
	})
	// Caller-supplied indexes are ignored.
	write(t, s, 8, func(txn *Txn) error {
		if err := txn.PutCluster(&structs.ClusterConfig{ClusterID: "c", CreateIndex: 100, ModifyIndex: 100}); err != nil {
			return err
		}
		if err := txn.UpsertNode(&structs.Node{ID: "n", Role: structs.RoleWorker, CreateIndex: 100}); err != nil {
			return err
		}
		if err := txn.PutIssuedCert(&structs.IssuedCert{Serial: "01", NodeID: "n", CreateIndex: 100}); err != nil {
			return err
		}
		if err := txn.UpsertNamespace(&structs.Namespace{Name: "ns", CreateIndex: 100}); err != nil {
			return err
		}
		if err := txn.UpsertJoinToken(&structs.JoinToken{ID: "j", Role: structs.RoleWorker, CreateIndex: 100}); err != nil {
			return err
		}
		return txn.UpsertACLToken(&structs.ACLToken{AccessorID: "a", SecretHash: "h", CreateIndex: 100})
	})
	snap := read(s)
	check := func(name string, create, modify uint64) {
		t.Helper()
		if create != 3 || modify != 8 {
			t.Errorf("%s: CreateIndex=%d ModifyIndex=%d, want 3 and 8", name, create, modify)
		}
	}
	c := snap.Cluster(nil)
	check("cluster", c.CreateIndex, c.ModifyIndex)
	n := snap.Node(nil, "n")
	check("node", n.CreateIndex, n.ModifyIndex)
	ic := snap.IssuedCert(nil, "01")
	check("cert", ic.CreateIndex, ic.ModifyIndex)
	ns := snap.Namespace(nil, "ns")
	check("namespace", ns.CreateIndex, ns.ModifyIndex)
	jt := snap.JoinToken(nil, "j")
	check("join token", jt.CreateIndex, jt.ModifyIndex)
	at := snap.ACLToken(nil, "a")
	check("acl token", at.CreateIndex, at.ModifyIndex)
}

func TestUpsertDoesNotAliasCaller(t *testing.T) {
	s := New()
	n := &structs.Node{ID: "n", Role: structs.RoleWorker}
	write(t, s, 4, func(txn *Txn) error { return txn.UpsertNode(n) })
	if n.CreateIndex != 0 || n.ModifyIndex != 0 {
		t.Errorf("UpsertNode changed the caller's record: %+v", n)
	}
	n.Name = "changed"
	if got := read(s).Node(nil, "n").Name; got != "" {
		t.Errorf("stored node aliases the caller's record: name %q", got)
	}
}

func TestDeleteMissing(t *testing.T) {
	tests := []struct {
		name string
		del  func(txn *Txn) error
	}{
		{"node", func(txn *Txn) error { return txn.DeleteNode("nope") }},
		{"namespace", func(txn *Txn) error { return txn.DeleteNamespace("nope") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New()
			txn := s.Write(1)
			err := tc.del(txn)
			txn.Abort()
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestDeleteBumpsIndex(t *testing.T) {
	s := New()
	write(t, s, 1, func(txn *Txn) error {
		if err := txn.UpsertNode(&structs.Node{ID: "n", Role: structs.RoleWorker}); err != nil {
			return err
		}
		return txn.UpsertNamespace(&structs.Namespace{Name: "ns"})
	})
	write(t, s, 2, func(txn *Txn) error { return txn.DeleteNode("n") })
	write(t, s, 3, func(txn *Txn) error { return txn.DeleteNamespace("ns") })
	snap := read(s)
	if snap.Node(nil, "n") != nil || snap.Namespace(nil, "ns") != nil {
		t.Fatal("records not deleted")
	}
	if snap.Index(TableNodes) != 2 || snap.Index(TableNamespaces) != 3 {
		t.Errorf("indexes nodes=%d namespaces=%d, want 2 and 3", snap.Index(TableNodes), snap.Index(TableNamespaces))
	}
}

func TestPruneIssuedCerts(t *testing.T) {
	s := New()
	write(t, s, 1, func(txn *Txn) error {
		for _, c := range []structs.IssuedCert{
			{Serial: "old", NodeID: "a", NotAfter: t0.Add(-time.Hour)},
			{Serial: "edge", NodeID: "a", NotAfter: t0},
			{Serial: "new", NodeID: "b", NotAfter: t0.Add(time.Hour), Revoked: true},
		} {
			if err := txn.PutIssuedCert(&c); err != nil {
				return err
			}
		}
		return nil
	})
	write(t, s, 2, func(txn *Txn) error { return txn.PruneIssuedCerts(t0) })
	var got []string
	for _, c := range read(s).IssuedCerts(nil) {
		got = append(got, c.Serial)
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[edge new]" {
		t.Errorf("after prune: %v, want [edge new]", got)
	}
	if idx := read(s).Index(TableIssuedCerts); idx != 2 {
		t.Errorf("Index(issued_certs) = %d, want 2", idx)
	}
	// Nothing to prune: the index is not bumped.
	write(t, s, 3, func(txn *Txn) error { return txn.PruneIssuedCerts(t0) })
	if idx := read(s).Index(TableIssuedCerts); idx != 2 {
		t.Errorf("no-op prune bumped Index(issued_certs) to %d", idx)
	}
}

func TestQueries(t *testing.T) {
	s := New()
	write(t, s, 1, func(txn *Txn) error {
		return txn.UpsertJoinToken(&structs.JoinToken{ID: "zz", Role: structs.RoleWorker})
	})
	write(t, s, 2, func(txn *Txn) error {
		if err := txn.UpsertJoinToken(&structs.JoinToken{ID: "aa", Role: structs.RoleManager}); err != nil {
			return err
		}
		if err := txn.UpsertACLToken(&structs.ACLToken{AccessorID: "acc1", SecretHash: "h1"}); err != nil {
			return err
		}
		if err := txn.UpsertACLToken(&structs.ACLToken{AccessorID: "acc2", SecretHash: "h2"}); err != nil {
			return err
		}
		for _, c := range []structs.IssuedCert{{Serial: "1", NodeID: "a"}, {Serial: "2", NodeID: "b"}, {Serial: "3", NodeID: "a"}} {
			if err := txn.PutIssuedCert(&c); err != nil {
				return err
			}
		}
		return nil
	})
	snap := read(s)

	var ids []string
	for _, tok := range snap.JoinTokens(nil) {
		ids = append(ids, tok.ID)
	}
	if fmt.Sprint(ids) != "[zz aa]" {
		t.Errorf("JoinTokens order %v, want oldest first [zz aa]", ids)
	}
	if tok := snap.ACLTokenBySecretHash(nil, "h2"); tok == nil || tok.AccessorID != "acc2" {
		t.Errorf("ACLTokenBySecretHash(h2) = %+v", tok)
	}
	if tok := snap.ACLTokenBySecretHash(nil, "nope"); tok != nil {
		t.Errorf("ACLTokenBySecretHash(nope) = %+v", tok)
	}
	if got := len(snap.ACLTokens(nil)); got != 2 {
		t.Errorf("ACLTokens: %d, want 2", got)
	}
	var serials []string
	for _, c := range snap.IssuedCertsByNode(nil, "a") {
		serials = append(serials, c.Serial)
	}
	sort.Strings(serials)
	if fmt.Sprint(serials) != "[1 3]" {
		t.Errorf("IssuedCertsByNode(a) = %v, want [1 3]", serials)
	}
	if snap.Cluster(nil) != nil {
		t.Error("Cluster before bootstrap is not nil")
	}
	if snap.Node(nil, "missing") != nil || snap.Namespace(nil, "missing") != nil ||
		snap.JoinToken(nil, "missing") != nil || snap.ACLToken(nil, "missing") != nil ||
		snap.IssuedCert(nil, "missing") != nil {
		t.Error("lookup of a missing record returned non-nil")
	}
}

func TestSnapshotIsolation(t *testing.T) {
	s := New()
	write(t, s, 1, func(txn *Txn) error { return txn.UpsertNamespace(&structs.Namespace{Name: "a"}) })
	snap := s.Snapshot()
	write(t, s, 2, func(txn *Txn) error { return txn.UpsertNamespace(&structs.Namespace{Name: "b"}) })
	if got := len(snap.Namespaces(nil)); got != 1 {
		t.Errorf("snapshot sees %d namespaces after a later write, want 1", got)
	}
	if got := snap.LatestIndex(); got != 1 {
		t.Errorf("snapshot LatestIndex = %d, want 1", got)
	}
	if got := len(s.Snapshot().Namespaces(nil)); got != 2 {
		t.Errorf("new snapshot sees %d namespaces, want 2", got)
	}
}

func TestRestore(t *testing.T) {
	t.Run("commit", func(t *testing.T) {
		s := New()
		r := s.Restore()
		if err := r.Insert(TableNamespaces, &structs.Namespace{Name: "a", CreateIndex: 4, ModifyIndex: 4}); err != nil {
			t.Fatal(err)
		}
		if err := r.Insert(TableIndex, &IndexEntry{Key: TableNamespaces, Value: 4}); err != nil {
			t.Fatal(err)
		}
		if err := r.Commit(); err != nil {
			t.Fatal(err)
		}
		snap := read(s)
		if snap.Namespace(nil, "a") == nil || snap.LatestIndex() != 4 {
			t.Errorf("restore not visible: ns=%v latest=%d", snap.Namespace(nil, "a"), snap.LatestIndex())
		}
	})
	t.Run("abort", func(t *testing.T) {
		s := New()
		r := s.Restore()
		if err := r.Insert(TableNamespaces, &structs.Namespace{Name: "a"}); err != nil {
			t.Fatal(err)
		}
		r.Abort()
		if n := len(read(s).Namespaces(nil)); n != 0 {
			t.Errorf("aborted restore left %d namespaces", n)
		}
	})
	t.Run("bad records", func(t *testing.T) {
		tests := []struct {
			table string
			obj   any
		}{
			{"no-such-table", &structs.Namespace{Name: "a"}},
			{TableNodes, &structs.Node{}},                         // no ID
			{TableNodes, &structs.Node{ID: "x"}},                  // no role
			{TableNamespaces, &structs.Node{ID: "x", Role: "w"}},  // wrong type
			{TableACLTokens, &structs.ACLToken{AccessorID: "a"}},  // no secret hash
			{TableIssuedCerts, &structs.IssuedCert{NodeID: "n"}},  // no serial
			{TableJoinTokens, &structs.JoinToken{Role: "worker"}}, // no ID
			{TableIndex, &IndexEntry{Value: 3}},                   // no key
		}
		for _, tc := range tests {
			s := New()
			r := s.Restore()
			err := r.Insert(tc.table, tc.obj)
			r.Abort()
			if err == nil {
				t.Errorf("Insert(%s, %T) accepted a bad record", tc.table, tc.obj)
			}
		}
	})
}
