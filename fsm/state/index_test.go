package state

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/go-memdb"
	"github.com/hivesec/hive/structs"
)

// TestStringFieldKeyMatchesStringFieldIndex holds the primary-key indexer to
// memdb.StringFieldIndex: same keys, same "missing" answers, same errors,
// for every table's record type.
func TestStringFieldKeyMatchesStringFieldIndex(t *testing.T) {
	same := func(what string, gotOK bool, got []byte, gotErr error, wantOK bool, want []byte, wantErr error) {
		t.Helper()
		if gotOK != wantOK || !bytes.Equal(got, want) || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Errorf("%s: got (%v, %q, %v), StringFieldIndex gives (%v, %q, %v)", what, gotOK, got, gotErr, wantOK, want, wantErr)
		}
	}
	sch := schema()
	checked := 0
	for _, tab := range Tables {
		var key *stringFieldKey
		switch ix := sch.Tables[tab.Name].Indexes["id"].Indexer.(type) {
		case *stringFieldKey:
			key = ix
		case *memdb.StringFieldIndex:
			t.Errorf("table %s: primary key is a plain StringFieldIndex; build it with idIndex", tab.Name)
			continue
		default:
			continue // not a single string field (cluster, events, compound keys)
		}
		checked++
		ref := &memdb.StringFieldIndex{Field: key.Field}
		for _, val := range []string{"", "a", "node-1", "x\x00y", "Ünïcode"} {
			obj := tab.New()
			reflect.ValueOf(obj).Elem().FieldByName(key.Field).SetString(val)
			what := fmt.Sprintf("%s %q", tab.Name, val)
			ok1, k1, err1 := key.FromObject(obj)
			ok2, k2, err2 := ref.FromObject(obj)
			same(what+" FromObject(ptr)", ok1, k1, err1, ok2, k2, err2)
			elem := reflect.ValueOf(obj).Elem().Interface()
			ok1, k1, err1 = key.FromObject(elem)
			ok2, k2, err2 = ref.FromObject(elem)
			same(what+" FromObject(value)", ok1, k1, err1, ok2, k2, err2)
			k1, err1 = key.FromArgs(val)
			k2, err2 = ref.FromArgs(val)
			same(what+" FromArgs", true, k1, err1, true, k2, err2)
			k1, err1 = key.PrefixFromArgs(val)
			k2, err2 = ref.PrefixFromArgs(val)
			same(what+" PrefixFromArgs", true, k1, err1, true, k2, err2)
		}
		for _, args := range [][]any{{}, {1}, {"a", "b"}, {nil}} {
			k1, err1 := key.FromArgs(args...)
			k2, err2 := ref.FromArgs(args...)
			same(fmt.Sprintf("%s FromArgs%v", tab.Name, args), true, k1, err1, true, k2, err2)
		}
		// A record of another type goes to StringFieldIndex unchanged.
		other := struct{ Other string }{"z"}
		ok1, k1, err1 := key.FromObject(&other)
		ok2, k2, err2 := ref.FromObject(&other)
		same(tab.Name+" foreign type", ok1, k1, err1, ok2, k2, err2)
	}
	if checked == 0 {
		t.Error("no table uses stringFieldKey")
	}
}

// TestAllocJobIndex checks the listings the one allocation index serves:
// by job, and by namespace, where a namespace must not match another it
// is a prefix of, and allocations without a job are still listed.
func TestAllocJobIndex(t *testing.T) {
	st := New()
	txn := st.Write(3)
	for _, a := range []*structs.Allocation{
		{ID: "1", Namespace: "web", JobID: "api", NodeID: "n"},
		{ID: "2", Namespace: "web", JobID: "api2", NodeID: "n"},
		{ID: "3", Namespace: "web", NodeID: "n"}, // created by hand, no job
		{ID: "4", Namespace: "webx", JobID: "api", NodeID: "n"},
	} {
		if err := txn.UpsertAlloc(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	ids := func(as []*structs.Allocation) string {
		var s []string
		for _, a := range as {
			s = append(s, a.ID)
		}
		sort.Strings(s)
		return strings.Join(s, ",")
	}
	snap := st.Snapshot()
	for _, c := range []struct{ got, want string }{
		{ids(snap.AllocsByJob(nil, "web", "api")), "1"},
		{ids(snap.AllocsByJob(nil, "webx", "api")), "4"},
		{ids(snap.AllocsByJob(nil, "web", "ap")), ""},
		{ids(snap.AllocsByNamespace(nil, "web")), "1,2,3"},
		{ids(snap.AllocsByNamespace(nil, "webx")), "4"},
		{ids(snap.AllocsByNamespace(nil, "we")), ""},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// TestNamespacedListsAreExact checks that listing a namespace's secrets or
// service accounts does not also list those of a namespace it prefixes.
func TestNamespacedListsAreExact(t *testing.T) {
	st := New()
	txn := st.Write(5)
	for _, ns := range []string{"web", "web2"} {
		if err := txn.UpsertSecret(&structs.Secret{Namespace: ns, Name: "s"}); err != nil {
			t.Fatal(err)
		}
		if err := txn.UpsertServiceAccount(&structs.ServiceAccount{Namespace: ns, Name: "sa"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	snap := st.Snapshot()
	if got := snap.Secrets(nil, "web"); len(got) != 1 || got[0].Namespace != "web" {
		t.Errorf("secrets of web: %d", len(got))
	}
	if got := snap.ServiceAccounts(nil, "web"); len(got) != 1 || got[0].Namespace != "web" {
		t.Errorf("service accounts of web: %d", len(got))
	}
	if got := snap.Secrets(nil, ""); len(got) != 2 {
		t.Errorf("all secrets: %d", len(got))
	}
}
