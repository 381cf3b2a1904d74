package server

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/identity"
	"github.com/hivesec/hive/structs"
)

// TestInitResumes runs Init twice on one data dir: the second call resumes
// the same node with its state instead of creating a cluster.
func TestInitResumes(t *testing.T) {
	cfg := testConfig(t)
	s, boot, err := Init(cfg)
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	defer func() { s.Shutdown() }()
	if boot == nil || boot.AdminToken == "" || boot.WorkerToken == "" || boot.ManagerToken == "" {
		t.Fatalf("first init returned no bootstrap secrets: %+v", boot)
	}
	for _, f := range []string{AdminTokenFile, WorkerTokenFile, ManagerTokenFile, BootstrapCAFile} {
		st, err := os.Stat(filepath.Join(boot.Dir, f))
		if err != nil {
			t.Fatalf("bootstrap file: %v", err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	id := s.NodeID()
	clusterID := boot.ClusterID
	if _, err := s.apply(fsm.NamespaceUpsertType, &fsm.NamespaceUpsertRequest{Namespace: structs.Namespace{Name: "survives"}, Create: true}); err != nil {
		t.Fatal(err)
	}
	s.Shutdown()

	s, boot, err = Init(cfg)
	if err != nil {
		t.Fatalf("second init: %v", err)
	}
	if boot != nil {
		t.Errorf("second init returned bootstrap secrets %+v, want nil (resume)", boot)
	}
	if s.NodeID() != id {
		t.Errorf("node ID %s after resume, want %s", s.NodeID(), id)
	}
	waitFor(t, 15*time.Second, "the resumed manager to lead with its old state", func() error {
		if !s.IsLeader() {
			return errors.New("not leader")
		}
		snap := s.fsm.State().Snapshot()
		if snap.Namespace(nil, "survives") == nil {
			return errors.New("namespace created before the restart is missing")
		}
		if c := snap.Cluster(nil); c == nil || c.ClusterID != clusterID {
			return errors.New("cluster config missing or changed")
		}
		return nil
	})
	if n := len(s.fsm.State().Snapshot().Nodes(nil)); n != 1 {
		t.Errorf("%d nodes after resume, want 1", n)
	}
	// The resumed manager still signs: the CA unseals with the stored key.
	if _, err := s.unsealCA(); err != nil {
		t.Errorf("unseal CA after resume: %v", err)
	}
	// The old admin token still works.
	c, err := api.NewClient(&api.Config{Address: s.APIAddr(), Token: readTrim(t, filepath.Join(cfg.DataDir, BootstrapDir, AdminTokenFile)), CACertPEM: s.certs.CAPEM})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Namespaces().List(nil); err != nil {
		t.Errorf("admin token after resume: %v", err)
	}
}

func readTrim(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestInitRefusesInterrupted: a data dir with Raft state but no node
// identity is what an init that died half-way leaves; it must not be
// resumed or overwritten.
func TestInitRefusesInterrupted(t *testing.T) {
	cfg := testConfig(t)
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, raftDir), 0o700); err != nil {
		t.Fatal(err)
	}
	s, _, err := Init(cfg)
	if err == nil {
		s.Shutdown()
		t.Fatal("init over an interrupted init succeeded")
	}
	if !strings.Contains(err.Error(), "interrupted init") || !strings.Contains(err.Error(), cfg.DataDir) {
		t.Errorf("error %q does not say the init was interrupted and where", err)
	}
	if _, err := os.Stat(UnsealKeyPath(cfg.DataDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused init wrote an unseal key (stat: %v)", err)
	}
}

// TestInitRefusesDamagedOrForeignDataDir: a damaged node.json or a worker's
// data dir is refused, not replaced by a new cluster.
func TestInitRefusesDamagedOrForeignDataDir(t *testing.T) {
	t.Run("DamagedIdentity", func(t *testing.T) {
		cfg := testConfig(t)
		if err := identity.WriteFileAtomic(filepath.Join(cfg.DataDir, identity.NodeFile), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
		if s, _, err := Init(cfg); err == nil {
			s.Shutdown()
			t.Fatal("init over a damaged node.json succeeded")
		}
	})
	t.Run("WorkerDataDir", func(t *testing.T) {
		cfg := testConfig(t)
		n := &identity.Node{ID: "7d0c1c52-2f5f-4c55-9a55-0e0f2b1e6a11", Role: structs.RoleWorker}
		if err := n.Save(cfg.DataDir); err != nil {
			t.Fatal(err)
		}
		_, _, err := Init(cfg)
		if err == nil || !strings.Contains(err.Error(), "worker") {
			t.Fatalf("init on a worker's data dir: %v, want a refusal naming the worker role", err)
		}
	})
}
