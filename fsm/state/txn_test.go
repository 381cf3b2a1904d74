package state

import (
	"errors"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/hivesec/hive/structs"
)

// TestTxnLookupMatchesMemdb drives random writes through write transactions
// and checks, after every step, that a lookup by primary key inside the
// transaction (answered from the transaction's own writes or the state
// before it) returns exactly what memdb itself returns for the same read.
func TestTxnLookupMatchesMemdb(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	s := New()
	names := []string{"a", "b", "c", "default", "x-1", "x-10", "x-100"}
	pick := func() string { return names[rng.Intn(len(names))] }
	certs := []string{"s1", "s2", "s3", "s4"}

	check := func(txn *Txn, step string) {
		t.Helper()
		type probe struct {
			table string
			args  []any
		}
		var probes []probe
		for _, n := range names {
			probes = append(probes, probe{TableNamespaces, []any{n}}, probe{TableNodes, []any{n}},
				probe{TableJoinTokens, []any{n}}, probe{TableACLTokens, []any{n}}, probe{TableIndex, []any{n}})
		}
		for _, c := range certs {
			probes = append(probes, probe{TableIssuedCerts, []any{c}})
		}
		for _, tab := range Tables {
			probes = append(probes, probe{TableIndex, []any{tab.Name}})
		}
		probes = append(probes, probe{TableCluster, []any{true}})
		for _, n := range names {
			probes = append(probes, probe{TableAllocs, []any{n}}, probe{TableEvals, []any{n}},
				probe{TableDeployments, []any{n}}, probe{TableJobs, []any{"default", n}})
			for v := uint64(0); v < 3; v++ {
				probes = append(probes, probe{TableJobVersions, []any{"default", n, v}})
			}
		}
		for _, p := range probes {
			got, err := txn.lookup(p.table, p.args...)
			if err != nil {
				t.Fatalf("%s: lookup %s %v: %v", step, p.table, p.args, err)
			}
			want, err := txn.txn.First(p.table, "id", p.args...)
			if err != nil {
				t.Fatalf("%s: memdb First %s %v: %v", step, p.table, p.args, err)
			}
			if got != want {
				t.Fatalf("%s: lookup %s %v = %#v, memdb has %#v", step, p.table, p.args, got, want)
			}
		}
	}

	for index := uint64(1); index <= 60; index++ {
		txn := s.Write(index)
		for op := 0; op < 25; op++ {
			var step string
			var err error
			switch k := rng.Intn(13); k {
			case 0, 1:
				n := pick()
				step = "upsert namespace " + n
				err = txn.UpsertNamespace(&structs.Namespace{Name: n, Description: fmt.Sprint(op)})
			case 2:
				n := pick()
				step = "delete namespace " + n
				err = txn.DeleteNamespace(n)
			case 3:
				n := pick()
				step = "upsert node " + n
				err = txn.UpsertNode(&structs.Node{ID: n, Role: structs.RoleWorker})
			case 4:
				n := pick()
				step = "delete node " + n
				err = txn.DeleteNode(n)
			case 5:
				c := certs[rng.Intn(len(certs))]
				step = "put cert " + c
				err = txn.PutIssuedCert(&structs.IssuedCert{Serial: c, NodeID: pick(), NotAfter: t0.Add(time.Duration(rng.Intn(3)-1) * time.Hour)})
			case 6:
				step = "prune certs"
				err = txn.PruneIssuedCerts(t0)
			case 7:
				step = "put cluster"
				err = txn.PutCluster(&structs.ClusterConfig{ClusterID: fmt.Sprint(op)})
			case 8:
				n := pick()
				step = "upsert tokens " + n
				if err = txn.UpsertJoinToken(&structs.JoinToken{ID: n, Role: structs.RoleWorker}); err == nil {
					err = txn.UpsertACLToken(&structs.ACLToken{AccessorID: n, SecretHash: "h" + n})
				}
			case 9:
				n := pick()
				step = "upsert job " + n
				err = txn.UpsertJob(&structs.Job{Namespace: "default", ID: n, Version: uint64(rng.Intn(3))})
			case 10:
				n := pick()
				step = "delete job " + n
				err = txn.DeleteJob("default", n)
			case 11:
				n := pick()
				step = "upsert alloc and eval " + n
				if err = txn.UpsertAlloc(&structs.Allocation{ID: n, Namespace: "default", NodeID: pick(), JobID: pick()}); err == nil {
					err = txn.UpsertEval(&structs.Evaluation{ID: n, Namespace: "default", JobID: pick(), Status: "pending"})
				}
			case 12:
				n := pick()
				step = "upsert deployment " + n
				err = txn.UpsertDeployment(&structs.Deployment{ID: n, Namespace: "default", JobID: pick()})
			}
			if err != nil && !errors.Is(err, ErrNotFound) {
				t.Fatalf("index %d %s: %v", index, step, err)
			}
			check(txn, fmt.Sprintf("index %d op %d (%s)", index, op, step))
		}
		if rng.Intn(4) == 0 {
			txn.Abort()
		} else {
			if err := txn.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
}
