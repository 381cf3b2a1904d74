package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hivesec/hive/crypto/keyring"
	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/structs"
)

func decodeReply[T any](t *testing.T, r *reply) T {
	t.Helper()
	var v T
	if r.status != http.StatusOK {
		t.Fatalf("unexpected answer: %s", r)
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

// grepDir fails the test if any file under dir contains needle.
func grepDir(t *testing.T, dir string, needle []byte) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, needle) {
			t.Errorf("%s holds a secret value in plaintext", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSecretsLifecycle runs a secret through create, reveal, update,
// rollback and delete on a 3-manager cluster, with RBAC on values, and
// checks that no manager's data dir (Raft log, snapshots, audit log) ever
// holds a value in plaintext.
func TestSecretsLifecycle(t *testing.T) {
	e := newACLEnv(t, 3)
	v1, v2 := "s3cr3t-value-one-9f8e7d", "s3cr3t-value-two-1a2b3c"
	e.secrets = append(e.secrets, v1, v2)
	r := e.do(t, e.admin, "POST", "/v1/secret/db?namespace=default", structs.SecretRequest{
		Data: map[string]string{"password": v1}, Generate: map[string]int{"token": 32}, Description: "db creds",
	})
	info := decodeReply[structs.SecretInfo](t, r)
	if info.Version != 1 || len(info.Keys) != 2 {
		t.Fatalf("created %+v", info)
	}
	if bytes.Contains(r.body, []byte(v1)) {
		t.Error("the create answer echoes the value")
	}
	// Metadata for developers and viewers; values only with secret/value.
	for _, tok := range []string{e.dev, e.viewer} {
		if r := e.do(t, tok, "GET", "/v1/secret/db?namespace=default", nil); r.status != http.StatusOK || bytes.Contains(r.body, []byte(v1)) {
			t.Errorf("metadata read: %s", r)
		}
		r := e.do(t, tok, "GET", "/v1/secret/db/value?namespace=default", nil)
		wantError(t, "reveal without secret/value", r, http.StatusForbidden, "forbidden")
	}
	// Every manager decrypts with its own copy of the root keys.
	for _, s := range e.tc.servers {
		var got structs.SecretValue
		waitFor(t, 5*time.Second, "secret readable on "+s.node.ID, func() error {
			r := e.caller(s).call(t, "GET", "/v1/secret/db/value?namespace=default", bearer(e.admin), nil)
			if r.status != http.StatusOK {
				return fmt.Errorf("%s", r)
			}
			return json.Unmarshal(r.body, &got)
		})
		if got.Data["password"] != v1 || len(got.Data["token"]) != 32 {
			t.Errorf("%s revealed %d keys, password ok %v", s.node.ID, len(got.Data), got.Data["password"] == v1)
		}
	}
	r = e.do(t, e.admin, "PUT", "/v1/secret/db?namespace=default", structs.SecretRequest{Data: map[string]string{"password": v2}})
	if info := decodeReply[structs.SecretInfo](t, r); info.Version != 2 || len(info.Versions) != 2 {
		t.Fatalf("after update: %+v", info)
	}
	old := decodeReply[structs.SecretValue](t, e.do(t, e.admin, "GET", "/v1/secret/db/value?namespace=default&version=1", nil))
	if old.Data["password"] != v1 {
		t.Error("version 1 no longer reads back")
	}
	r = e.do(t, e.admin, "POST", "/v1/secret/db/rollback?namespace=default", structs.SecretRollbackRequest{To: 1})
	if info := decodeReply[structs.SecretInfo](t, r); info.Version != 3 {
		t.Errorf("rollback made version %d, want 3", info.Version)
	}
	cur := decodeReply[structs.SecretValue](t, e.do(t, e.admin, "GET", "/v1/secret/db/value?namespace=default", nil))
	if cur.Version != 3 || cur.Data["password"] != v1 {
		t.Errorf("after rollback: version %d", cur.Version)
	}
	// Bad input changes nothing.
	for _, c := range []struct {
		body   structs.SecretRequest
		status int
	}{
		{structs.SecretRequest{}, http.StatusBadRequest},
		{structs.SecretRequest{Data: map[string]string{"../etc": "x"}}, http.StatusBadRequest},
		{structs.SecretRequest{Generate: map[string]int{"k": 3}}, http.StatusBadRequest},
		{structs.SecretRequest{Data: map[string]string{"big": strings.Repeat("a", structs.MaxSecretSize)}}, http.StatusRequestEntityTooLarge},
	} {
		r := e.do(t, e.admin, "PUT", "/v1/secret/db?namespace=default", c.body)
		if r.status != c.status {
			t.Errorf("bad update %v: %s", c.body.Generate, r)
		}
	}
	if info := decodeReply[structs.SecretInfo](t, e.do(t, e.admin, "GET", "/v1/secret/db?namespace=default", nil)); info.Version != 3 {
		t.Errorf("a refused update changed the version to %d", info.Version)
	}

	// Snapshot, then look for the values in every file of every manager.
	for _, s := range e.tc.servers {
		if err := s.raft.Snapshot().Error(); err != nil {
			t.Logf("snapshot on %s: %v", s.node.ID, err)
		}
		if err := s.auditLog.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range e.tc.servers {
		for _, v := range []string{v1, v2} {
			grepDir(t, s.cfg.DataDir, []byte(v))
		}
	}
	if r := e.do(t, e.admin, "DELETE", "/v1/secret/db?namespace=default", nil); r.status != http.StatusOK {
		t.Fatalf("delete: %s", r)
	}
	r = e.do(t, e.admin, "GET", "/v1/secret/db/value?namespace=default", nil)
	wantError(t, "reveal after delete", r, http.StatusNotFound, "not_found")
}

// TestNodeSecretAuthorizer checks that a worker gets the secrets its own
// allocations reference and nothing else.
func TestNodeSecretAuthorizer(t *testing.T) {
	e := newACLEnv(t, 1)
	for _, n := range []string{"db", "other"} {
		r := e.do(t, e.admin, "POST", "/v1/secret/"+n+"?namespace=default", structs.SecretRequest{Data: map[string]string{"password": "pw-" + n + "-value"}})
		if r.status != http.StatusOK {
			t.Fatal(r)
		}
	}
	w1 := joinWorker(t, e.leader.APIAddr(), e.tc.boot.WorkerToken, "")
	w2 := joinWorker(t, e.leader.APIAddr(), e.tc.boot.WorkerToken, "")
	task := &structs.Task{Name: "app", Driver: "containerd", Config: structs.TaskConfig{Image: "busybox:1"},
		Resources: structs.Resources{CPU: 10, MemoryMB: 16},
		Secrets:   []*structs.TaskSecret{{Label: "db", Name: "db", Key: "password", File: "db.txt", Mode: 0o400}}}
	alloc := structs.Allocation{ID: "a-secret", Namespace: "default", NodeID: w1.node.ID, Group: "g", Tasks: []*structs.Task{task},
		DesiredStatus: structs.AllocDesiredRun, ClientStatus: structs.AllocPending}
	if _, err := e.leader.apply(fsm.AllocCreateType, &fsm.AllocCreateRequest{Alloc: alloc}); err != nil {
		t.Fatal(err)
	}
	c1 := newRawCaller(t, e.leader.APIAddr(), e.tc.boot.CACertPEM, w1.certs.Current(), false)
	c2 := newRawCaller(t, e.leader.APIAddr(), e.tc.boot.CACertPEM, w2.certs.Current(), false)
	got := decodeReply[structs.NodeSecretsResponse](t, c1.call(t, "GET", "/v1/node/secrets?alloc=a-secret", "", nil))
	if len(got.Secrets) != 1 || got.Secrets["db"].Data["password"] != "pw-db-value" {
		t.Errorf("own allocation's secrets: %+v", got.Secrets)
	}
	r := c2.call(t, "GET", "/v1/node/secrets?alloc=a-secret", "", nil)
	wantError(t, "another node's allocation", r, http.StatusForbidden, "forbidden")
	r = c1.call(t, "GET", "/v1/node/secrets?alloc=nope", "", nil)
	wantError(t, "unknown allocation", r, http.StatusForbidden, "forbidden")
	// Users cannot use the node route, nodes cannot use the user routes.
	r = e.do(t, e.admin, "GET", "/v1/node/secrets?alloc=a-secret", nil)
	wantError(t, "admin on the node route", r, http.StatusForbidden, "forbidden")
	r = c1.call(t, "GET", "/v1/secret/other/value?namespace=default", "", nil)
	wantError(t, "worker on the user route", r, http.StatusForbidden, "forbidden")
	// A new version reaches a blocking query.
	var wg sync.WaitGroup
	wg.Add(1)
	var woke structs.NodeSecretsResponse
	first := c1.call(t, "GET", "/v1/node/secrets?alloc=a-secret", "", nil)
	go func() {
		defer wg.Done()
		r := c1.call(t, "GET", "/v1/node/secrets?alloc=a-secret&wait=20s&index="+first.header.Get(headerIndex), "", nil)
		_ = json.Unmarshal(r.body, &woke)
	}()
	time.Sleep(200 * time.Millisecond)
	if r := e.do(t, e.admin, "PUT", "/v1/secret/db?namespace=default", structs.SecretRequest{Data: map[string]string{"password": "pw-db-new"}}); r.status != http.StatusOK {
		t.Fatal(r)
	}
	wg.Wait()
	if woke.Secrets["db"].Version != 2 || woke.Secrets["db"].Data["password"] != "pw-db-new" {
		t.Errorf("blocking query woke with %+v", woke.Secrets["db"])
	}
}

// TestKeyringRotation rotates the root key under 1,000 secrets while they
// are read, then checks every data key moved and the old key is gone.
func TestKeyringRotation(t *testing.T) {
	e := newACLEnv(t, 1)
	const n = 1000
	s := e.leader
	for i := range n {
		if _, err := s.putVersion("default", fmt.Sprintf("s%04d", i), nil, nil, map[string]string{"v": fmt.Sprintf("value-%d", i)}, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
	}
	st := decodeReply[structs.KeyringStatus](t, e.do(t, e.admin, "GET", "/v1/operator/keyring", nil))
	if len(st.Keys) != 1 {
		t.Fatalf("keys before rotation: %+v", st.Keys)
	}
	oldID := st.Keys[0].ID
	stop := make(chan struct{})
	var reads, readErrs int
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("s%04d", i%n)
			r := e.caller(s).call(t, "GET", "/v1/secret/"+name+"/value?namespace=default", bearer(e.admin), nil)
			mu.Lock()
			reads++
			if r.status != http.StatusOK {
				readErrs++
			}
			mu.Unlock()
		}
	}()
	start := time.Now()
	if r := e.do(t, e.admin, "POST", "/v1/operator/keyring/rotate", nil); r.status != http.StatusOK {
		t.Fatal(r)
	}
	waitFor(t, time.Minute, "the old root key retired", func() error {
		if s.fsm.State().Snapshot().RootKey(nil, oldID) != nil {
			return fmt.Errorf("old key still present")
		}
		return nil
	})
	took := time.Since(start)
	close(stop)
	<-done
	t.Logf("re-wrapped %d secrets in %s (%.0f/s) with %d reads meanwhile", n, took.Round(time.Millisecond), n/took.Seconds(), reads)
	if readErrs > 0 {
		t.Errorf("%d of %d reads failed during rotation", readErrs, reads)
	}
	snap := s.fsm.State().Snapshot()
	for _, sec := range snap.Secrets(nil, "default") {
		for _, v := range sec.Versions {
			if v.RootKeyID == oldID {
				t.Fatalf("%s version %d still wrapped by the old key", sec.Name, v.Version)
			}
		}
		data, err := s.decryptVersion(snap, sec, sec.Current())
		i, _ := strconv.Atoi(sec.Name[1:])
		if err != nil || data["v"] != fmt.Sprintf("value-%d", i) {
			t.Fatalf("%s: %v %v", sec.Name, data, err)
		}
	}
}

// TestSecretMaintenance checks the leader's periodic work: an expired
// secret stops being delivered and raises one event, a generated secret
// is regenerated on its period, a user-supplied one raises "rotation due".
func TestSecretMaintenance(t *testing.T) {
	e := newACLEnv(t, 1)
	s := e.leader
	for _, req := range []struct {
		name string
		body structs.SecretRequest
	}{
		{"gen", structs.SecretRequest{Generate: map[string]int{"token": 24}, Data: map[string]string{"user": "app"}, RotationPeriod: "1h"}},
		{"manual", structs.SecretRequest{Data: map[string]string{"k": "v"}, RotationPeriod: "1h"}},
		{"short", structs.SecretRequest{Data: map[string]string{"k": "v"}, Expires: "1h"}},
	} {
		if r := e.do(t, e.admin, "POST", "/v1/secret/"+req.name+"?namespace=default", req.body); r.status != http.StatusOK {
			t.Fatal(r)
		}
	}
	before := decodeReply[structs.SecretValue](t, e.do(t, e.admin, "GET", "/v1/secret/gen/value?namespace=default", nil))
	later := time.Now().UTC().Add(2 * time.Hour)
	s.maintainSecrets(later)
	s.maintainSecrets(later) // a second pass raises nothing new
	after := decodeReply[structs.SecretValue](t, e.do(t, e.admin, "GET", "/v1/secret/gen/value?namespace=default", nil))
	if after.Version != 2 || after.Data["token"] == before.Data["token"] || after.Data["user"] != "app" || len(after.Data["token"]) != 24 {
		t.Errorf("generated secret: version %d, token changed %v, user kept %v", after.Version, after.Data["token"] != before.Data["token"], after.Data["user"] == "app")
	}
	counts := map[string]int{}
	for _, ev := range s.fsm.State().Snapshot().Events(nil) {
		counts[ev.Type+" "+ev.Subject]++
	}
	for _, want := range []string{"secret-rotated default/gen", "secret-rotation-due default/manual", "secret-expired default/short"} {
		if counts[want] != 1 {
			t.Errorf("event %q raised %d times, want once (events: %v)", want, counts[want], counts)
		}
	}
}

// TestAutolock checks an autolocked cluster: no unseal key on disk; a
// restarted manager refuses secret reads until unlocked; a wrong unlock
// key is refused and counted; the right one restores service.
func TestAutolock(t *testing.T) {
	cfg := testConfig(t)
	cfg.Autolock = true
	s, boot, err := Init(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if boot.UnlockKey == "" {
		t.Fatal("init --autolock printed no unlock key")
	}
	if _, err := os.Stat(UnsealKeyPath(cfg.DataDir)); !os.IsNotExist(err) {
		t.Fatalf("autolocked manager wrote its unseal key to disk: %v", err)
	}
	c := newRawCaller(t, s.APIAddr(), boot.CACertPEM, nil, false)
	admin := bearer(boot.AdminToken)
	waitFor(t, 10*time.Second, "leader", func() error {
		if !s.IsLeader() {
			return fmt.Errorf("not leader")
		}
		return nil
	})
	if r := c.call(t, "POST", "/v1/secret/db?namespace=default", admin, mustJSON(t, structs.SecretRequest{Data: map[string]string{"pw": "autolocked-value"}})); r.status != http.StatusOK {
		t.Fatal(r)
	}
	s.Shutdown()

	s2, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s2.Shutdown)
	c = newRawCaller(t, s2.APIAddr(), boot.CACertPEM, nil, false)
	// Leading is not enough: the log is applied after the new term's
	// first commit, so wait until the state answers.
	waitFor(t, 10*time.Second, "restarted manager leads with its state", func() error {
		if !s2.IsLeader() {
			return fmt.Errorf("not leader")
		}
		if r := c.call(t, "GET", "/v1/whoami", admin, nil); r.status != http.StatusOK {
			return fmt.Errorf("whoami: %s", r)
		}
		return nil
	})
	r := c.call(t, "GET", "/v1/secret/db/value?namespace=default", admin, nil)
	wantError(t, "secret read while locked", r, http.StatusServiceUnavailable, "sealed")
	wrong := EncodeUnlockKey(make([]byte, 32))
	r = c.call(t, "POST", "/v1/operator/unlock", admin, mustJSON(t, structs.UnlockRequest{Key: wrong}))
	wantError(t, "wrong unlock key", r, http.StatusForbidden, "wrong_key")
	r = c.call(t, "POST", "/v1/operator/unlock", admin, mustJSON(t, structs.UnlockRequest{Key: "nonsense"}))
	wantError(t, "malformed unlock key", r, http.StatusBadRequest, "bad_request")
	r = c.call(t, "GET", "/v1/metrics", admin, nil)
	if !bytes.Contains(r.body, []byte(`hive_authentication_failures_total{method="unlock"} 2`)) {
		t.Errorf("wrong unlock keys not counted")
	}
	if r := c.call(t, "POST", "/v1/operator/unlock", admin, mustJSON(t, structs.UnlockRequest{Key: boot.UnlockKey})); r.status != http.StatusOK {
		t.Fatalf("unlock: %s", r)
	}
	got := decodeReply[structs.SecretValue](t, c.call(t, "GET", "/v1/secret/db/value?namespace=default", admin, nil))
	if got.Data["pw"] != "autolocked-value" {
		t.Errorf("after unlock: %v", got.Data)
	}
	raw, err := DecodeUnlockKey(boot.UnlockKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.auditLog.Sync(); err != nil {
		t.Fatal(err)
	}
	grepDir(t, cfg.DataDir, []byte(boot.UnlockKey))
	grepDir(t, cfg.DataDir, raw)
}

// TestRestoreIntoFreshCluster rebuilds a cluster from a snapshot on a new
// manager: refused without the old unseal key and with a wrong one; with
// it, the secrets, users and tokens of the old cluster work.
func TestRestoreIntoFreshCluster(t *testing.T) {
	e := newACLEnv(t, 1)
	if r := e.do(t, e.admin, "POST", "/v1/secret/db?namespace=default", structs.SecretRequest{Data: map[string]string{"pw": "survives-disaster"}}); r.status != http.StatusOK {
		t.Fatal(r)
	}
	r := e.do(t, e.admin, "GET", "/v1/operator/snapshot", nil)
	if r.status != http.StatusOK {
		t.Fatal(r)
	}
	path := filepath.Join(t.TempDir(), "dr.snap")
	if err := os.WriteFile(path, r.body, 0o600); err != nil {
		t.Fatal(err)
	}
	unseal := e.leader.roots.unsealKey()
	oldCA := e.tc.boot.CACertPEM
	for _, s := range e.tc.servers {
		s.Shutdown()
	}

	for _, c := range []struct {
		name string
		key  []byte
	}{{"no key", nil}, {"wrong key", make([]byte, 32)}} {
		cfg := testConfig(t)
		if _, err := InitFromSnapshot(cfg, path, c.key); err == nil {
			t.Fatalf("%s: restore succeeded", c.name)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
	cfg := testConfig(t)
	s, err := InitFromSnapshot(cfg, path, unseal)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	c := newRawCaller(t, s.APIAddr(), oldCA, nil, false)
	// The old cluster's CA, session token and secret are all there.
	got := decodeReply[structs.SecretValue](t, c.call(t, "GET", "/v1/secret/db/value?namespace=default", bearer(e.admin), nil))
	if got.Data["pw"] != "survives-disaster" {
		t.Errorf("restored secret: %v", got.Data)
	}
	if r := c.call(t, "POST", "/v1/secret/new?namespace=default", bearer(e.admin), mustJSON(t, structs.SecretRequest{Data: map[string]string{"k": "v"}})); r.status != http.StatusOK {
		t.Errorf("new secret after restore: %s", r)
	}
	// Only the new manager is left; the old one's certificate is revoked.
	var managers []string
	for _, n := range s.fsm.State().Snapshot().Nodes(nil) {
		if n.Role == structs.RoleManager {
			managers = append(managers, n.ID)
		}
	}
	if len(managers) != 1 || managers[0] != s.node.ID {
		t.Errorf("managers after restore: %v, want only %s", managers, s.node.ID)
	}
}

// TestRotateUnseal re-wraps everything under a new unseal key on a
// 3-manager cluster: every manager switches to the new key (on disk too),
// secrets keep reading everywhere, a restarted manager comes back with
// the new key, and the old key opens nothing any more.
func TestRotateUnseal(t *testing.T) {
	e := newACLEnv(t, 3)
	if r := e.do(t, e.admin, "POST", "/v1/secret/db?namespace=default", structs.SecretRequest{Data: map[string]string{"pw": "kept-through-rotation"}}); r.status != http.StatusOK {
		t.Fatal(r)
	}
	old := e.leader.roots.unsealKey()
	r := e.do(t, e.admin, "POST", "/v1/operator/keyring/rotate-unseal", nil)
	out := decodeReply[structs.UnsealRotateResponse](t, r)
	if out.Managers != 3 || out.UnlockKey != "" {
		t.Errorf("rotation answer %+v", out)
	}
	for _, s := range e.tc.servers {
		waitFor(t, 10*time.Second, "manager "+s.node.ID+" on the new key", func() error {
			onDisk, err := os.ReadFile(UnsealKeyPath(s.cfg.DataDir))
			if err != nil {
				return err
			}
			if bytes.Equal(onDisk, old) || unsealKeyID(onDisk) != out.KeyID {
				return fmt.Errorf("keystore still holds the old key")
			}
			if _, err := os.Stat(nextUnsealPath(s.cfg.DataDir)); !os.IsNotExist(err) {
				return fmt.Errorf("next key file left behind")
			}
			r := e.caller(s).call(t, "GET", "/v1/secret/db/value?namespace=default", bearer(e.admin), nil)
			if r.status != http.StatusOK || !bytes.Contains(r.body, []byte("kept-through-rotation")) {
				return fmt.Errorf("reveal: %s", r)
			}
			return nil
		})
	}
	cl := e.leader.fsm.State().Snapshot().Cluster(nil)
	if _, err := keyring.Open(old, cl.CAKeySealed, caKeyAAD(cl.ClusterID)); err == nil {
		t.Error("the old unseal key still opens the CA key")
	}
	// A restarted follower reads its new key from disk.
	var f *Server
	for i, s := range e.tc.servers {
		if !s.IsLeader() {
			f = s
			s.Shutdown()
			s2, err := Open(s.cfg)
			if err != nil {
				t.Fatal(err)
			}
			e.tc.servers[i] = s2
			e.raw[s2] = newRawCaller(t, s2.APIAddr(), e.tc.boot.CACertPEM, nil, false)
			f = s2
			break
		}
	}
	waitFor(t, 15*time.Second, "restarted follower reveals", func() error {
		r := e.caller(f).call(t, "GET", "/v1/secret/db/value?namespace=default", bearer(e.admin), nil)
		if r.status != http.StatusOK {
			return fmt.Errorf("%s", r)
		}
		return nil
	})
}
