package server

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/snapshot"
	"github.com/hivesec/hive/structs"
)

// TestSnapshotSaveRestore saves, mutates and restores the state through the
// API client, and checks that damaged or foreign archives change nothing.
func TestSnapshotSaveRestore(t *testing.T) {
	tc := startCluster(t, 1)
	s := tc.leader(t)
	c := tc.adminClient(t, s)

	names := func(t *testing.T) []string {
		t.Helper()
		list, _, err := c.Namespaces().List(nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ns := range list {
			out = append(out, ns.Name)
		}
		slices.Sort(out)
		return out
	}

	if err := c.Namespaces().Create(structs.NamespaceRequest{Name: "before"}); err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := c.Operator().SnapshotSave(&archive); err != nil {
		t.Fatalf("save: %v", err)
	}
	saved := names(t)
	// The archive verifies on its own and holds what was saved.
	path := filepath.Join(t.TempDir(), "snap.hive")
	if err := os.WriteFile(path, archive.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := snapshot.Inspect(path)
	if err != nil {
		t.Fatalf("inspect saved archive: %v", err)
	}
	if info.Tables["namespaces"] != len(saved) || info.Tables["cluster"] != 1 || info.Size != int64(archive.Len()) {
		t.Errorf("saved archive: %+v, want %d namespaces and the cluster config", info, len(saved))
	}

	// Mutate: add one namespace, delete another.
	if err := c.Namespaces().Create(structs.NamespaceRequest{Name: "after"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Namespaces().Delete("before"); err != nil {
		t.Fatal(err)
	}
	if got := names(t); slices.Equal(got, saved) {
		t.Fatalf("mutation changed nothing: %v", got)
	}

	t.Run("Restore", func(t *testing.T) {
		if err := c.Operator().SnapshotRestore(bytes.NewReader(archive.Bytes())); err != nil {
			t.Fatalf("restore: %v", err)
		}
		if got := names(t); !slices.Equal(got, saved) {
			t.Errorf("namespaces after restore %v, want %v", got, saved)
		}
		// The admin token, the node and the CA came back too: the cluster
		// keeps working.
		if _, err := s.unsealCA(); err != nil {
			t.Errorf("CA after restore: %v", err)
		}
		if err := c.Namespaces().Create(structs.NamespaceRequest{Name: "after-restore"}); err != nil {
			t.Errorf("write after restore: %v", err)
		}
		evs, _, err := c.Events().List(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(evs, func(e structs.Event) bool { return e.Type == structs.EventSnapshotRestored }) {
			t.Error("no snapshot-restored event after the restore")
		}
	})

	t.Run("DamagedArchivesChangeNothing", func(t *testing.T) {
		good := archive.Bytes()
		flipped := bytes.Clone(good)
		flipped[len(flipped)/2] ^= 0x40
		header := bytes.Clone(good)
		header[0] = 'X'
		for _, bad := range []struct {
			name string
			data []byte
		}{
			{"empty", nil},
			{"garbage", []byte("this is not a snapshot at all, but it is long enough to have a checksum")},
			{"truncated by half", good[:len(good)/2]},
			{"truncated by one byte", good[:len(good)-1]},
			{"missing checksum", good[:len(good)-32]},
			{"flipped byte", flipped},
			{"bad magic", header},
			{"trailing data", append(bytes.Clone(good), 0)},
		} {
			before, nsBefore := stateIndex(s), names(t)
			err := c.Operator().SnapshotRestore(bytes.NewReader(bad.data))
			if apiStatus(err) != http.StatusBadRequest {
				t.Errorf("%s archive: %v, want 400", bad.name, err)
			}
			if got := stateIndex(s); got != before {
				t.Errorf("%s archive moved the state index from %d to %d", bad.name, before, got)
			}
			if got := names(t); !slices.Equal(got, nsBefore) {
				t.Errorf("%s archive changed namespaces from %v to %v", bad.name, nsBefore, got)
			}
		}
		// The refusals left no temporary files in the data dir.
		left, _ := filepath.Glob(filepath.Join(s.cfg.DataDir, ".restore-*"))
		if len(left) != 0 {
			t.Errorf("restore left temporary files: %v", left)
		}
	})

	t.Run("OtherClusterRefused", func(t *testing.T) {
		other := startCluster(t, 1)
		var foreign bytes.Buffer
		if err := other.adminClient(t, other.leader(t)).Operator().SnapshotSave(&foreign); err != nil {
			t.Fatal(err)
		}
		before, nsBefore := stateIndex(s), names(t)
		err := c.Operator().SnapshotRestore(&foreign)
		if apiStatus(err) != http.StatusConflict {
			t.Errorf("restore of another cluster's snapshot: %v, want 409", err)
		}
		var ae *api.Error
		if errors.As(err, &ae) && ae.Code != "conflict" {
			t.Errorf("code %q, want conflict", ae.Code)
		}
		if got := stateIndex(s); got != before {
			t.Errorf("foreign snapshot moved the state index from %d to %d", before, got)
		}
		if got := names(t); !slices.Equal(got, nsBefore) {
			t.Errorf("foreign snapshot changed namespaces from %v to %v", nsBefore, got)
		}
	})
}
