package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// ---- helpers ----------------------------------------------------------------

func newFSM(t testing.TB) *FSM {
	t.Helper()
	return New(hclog.NewNullLogger())
}

func encode(t testing.TB, typ MessageType, body any) []byte {
	t.Helper()
	buf, err := Encode(typ, body)
	if err != nil {
		t.Fatalf("encode type %d: %v", typ, err)
	}
	return buf
}

func applyRaw(t testing.TB, f *FSM, index uint64, data []byte) Result {
	t.Helper()
	out := f.Apply(&raft.Log{Type: raft.LogCommand, Index: index, Data: data})
	res, ok := out.(Result)
	if !ok {
		t.Fatalf("Apply at index %d returned %T, want Result", index, out)
	}
	return res
}

func apply(t testing.TB, f *FSM, index uint64, typ MessageType, body any) Result {
	t.Helper()
	return applyRaw(t, f, index, encode(t, typ, body))
}

func mustApply(t testing.TB, f *FSM, index uint64, typ MessageType, body any) Result {
	t.Helper()
	res := apply(t, f, index, typ, body)
	if res.Err != nil {
		t.Fatalf("apply type %d at index %d: %v", typ, index, res.Err)
	}
	return res
}

// normalize copies the record obj points to, making its times comparable
// with reflect.DeepEqual (UTC, no monotonic reading), since a msgpack round
// trip drops both.
func normalize(obj any) any {
	v := reflect.ValueOf(obj)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	cp := reflect.New(v.Type()).Elem()
	cp.Set(v)
	if cp.Kind() == reflect.Struct {
		timeType := reflect.TypeFor[time.Time]()
		for i := 0; i < cp.NumField(); i++ {
			if fv := cp.Field(i); fv.Type() == timeType && fv.CanSet() {
				fv.Set(reflect.ValueOf(fv.Interface().(time.Time).UTC().Round(0)))
			}
		}
	}
	return cp.Interface()
}

// dump reads every record of every table, normalized, in table order.
func dump(t testing.TB, s *state.Store) map[string][]any {
	t.Helper()
	snap := s.Snapshot()
	out := map[string][]any{}
	for _, tab := range state.Tables {
		recs := []any{}
		if err := snap.Each(tab.Name, func(obj any) error {
			recs = append(recs, normalize(obj))
			return nil
		}); err != nil {
			t.Fatalf("read table %s: %v", tab.Name, err)
		}
		out[tab.Name] = recs
	}
	return out
}

// requireSameState compares two dumps table by table and record by record.
func requireSameState(t testing.TB, want, got map[string][]any) {
	t.Helper()
	for _, tab := range state.Tables {
		w, g := want[tab.Name], got[tab.Name]
		if len(w) != len(g) {
			t.Errorf("table %s: %d records, want %d", tab.Name, len(g), len(w))
			continue
		}
		for i := range w {
			if !reflect.DeepEqual(w[i], g[i]) {
				t.Errorf("table %s record %d:\n got  %#v\n want %#v", tab.Name, i, g[i], w[i])
			}
		}
	}
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

// closeTracker records whether Restore closed its reader.
type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func persist(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("Persist left sink closed=%v cancelled=%v, want closed only", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

func workerToken(id string) structs.JoinToken {
	return structs.JoinToken{ID: id, Role: structs.RoleWorker, SecretHash: []byte("hash-" + id), CreatedAt: t0}
}

func bootstrapRequest(tokens ...structs.JoinToken) *ClusterBootstrapRequest {
	return &ClusterBootstrapRequest{
		Cluster: structs.ClusterConfig{
			ClusterID: "cluster-1", CACertPEM: []byte("-----BEGIN CERTIFICATE-----"),
			CAKeySealed: []byte{1, 2, 3}, GossipKeysSealed: []byte{4, 5, 6}, CreatedAt: t0,
		},
		Node: structs.Node{
			ID: "m1", Name: "manager-1", Role: structs.RoleManager, Address: "10.0.0.1",
			APIPort: structs.DefaultAPIPort, RPCPort: structs.DefaultRPCPort, SerfPort: structs.DefaultSerfPort,
			Status: structs.NodeStatusReady, CertSerial: "m1-a", CertExpiry: t0.Add(90 * 24 * time.Hour),
			Labels: map[string]string{"zone": "a"}, JoinedAt: t0, UpdatedAt: t0,
		},
		Cert:       structs.IssuedCert{Serial: "m1-a", NodeID: "m1", Role: structs.RoleManager, NotAfter: t0.Add(90 * 24 * time.Hour), IssuedAt: t0},
		JoinTokens: tokens,
		ACLTokens: []structs.ACLToken{{
			AccessorID: "admin", Name: "bootstrap", Kind: structs.ACLTokenKindManagement, SecretHash: "abcdef", CreatedAt: t0,
		}},
		Now: t0,
	}
}

// bootstrapped returns an FSM bootstrapped at index 1 with the given join
// tokens plus a manager token "mgr".
func bootstrapped(t testing.TB, tokens ...structs.JoinToken) *FSM {
	t.Helper()
	f := newFSM(t)
	mgr := structs.JoinToken{ID: "mgr", Role: structs.RoleManager, SecretHash: []byte("hash-mgr"), Default: true, CreatedAt: t0}
	mustApply(t, f, 1, ClusterBootstrapType, bootstrapRequest(append([]structs.JoinToken{mgr}, tokens...)...))
	return f
}

func workerJoin(tokenID, nodeID, serial string, now time.Time) *NodeRegisterRequest {
	return &NodeRegisterRequest{
		TokenID: tokenID,
		Node: structs.Node{
			ID: nodeID, Name: "name-" + nodeID, Role: structs.RoleWorker, Address: "10.0.1.1",
			APIPort: structs.DefaultAPIPort, RPCPort: structs.DefaultRPCPort, SerfPort: structs.DefaultSerfPort,
			Status: structs.NodeStatusReady, CertSerial: serial, CertExpiry: now.Add(time.Hour),
			JoinedAt: now, UpdatedAt: now,
		},
		Cert: structs.IssuedCert{Serial: serial, NodeID: nodeID, Role: structs.RoleWorker, NotAfter: now.Add(time.Hour), IssuedAt: now},
		Now:  now,
	}
}

func eventsOfType(s *state.Store, typ string) []*structs.Event {
	var out []*structs.Event
	for _, ev := range s.Snapshot().Events(nil) {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// populated builds an FSM with records in every table.
func populated(t testing.TB) *FSM {
	t.Helper()
	f := bootstrapped(t, workerToken("wk"))
	idx := uint64(1)
	next := func() uint64 { idx++; return idx }

	mustApply(t, f, next(), NodeRegisterType, workerJoin("wk", "w1", "w1-a", t0.Add(time.Minute)))
	w2 := workerJoin("wk", "w2", "w2-a", t0.Add(2*time.Minute))
	w2.Node.Labels = map[string]string{"gpu": "yes", "rack": "r7"}
	mustApply(t, f, next(), NodeRegisterType, w2)
	mustApply(t, f, next(), CertIssuedType, &CertIssuedRequest{
		Cert: structs.IssuedCert{Serial: "w1-b", NodeID: "w1", Role: structs.RoleWorker, NotAfter: t0.Add(48 * time.Hour), IssuedAt: t0.Add(3 * time.Minute)},
		Now:  t0.Add(3 * time.Minute),
	})
	mustApply(t, f, next(), NodeStatusType, &NodeStatusRequest{
		Updates: []NodeStatusUpdate{{NodeID: "w2", Status: structs.NodeStatusUnknown}, {NodeID: "gone", Status: structs.NodeStatusDown}},
		Now:     t0.Add(4 * time.Minute),
	})
	mustApply(t, f, next(), NamespaceUpsertType, &NamespaceUpsertRequest{
		Namespace: structs.Namespace{Name: "team-a", Description: "Team A", CreatedAt: t0.Add(5 * time.Minute)}, Create: true,
	})
	limited := workerToken("lim")
	limited.MaxUses, limited.ExpiresAt, limited.Description = 3, t0.Add(24*time.Hour), "three uses"
	mustApply(t, f, next(), JoinTokenWriteType, &JoinTokenWriteRequest{
		Create: []structs.JoinToken{limited}, Revoke: []string{"mgr"}, Now: t0.Add(6 * time.Minute),
	})
	mustApply(t, f, next(), GossipKeysType, &GossipKeysRequest{Sealed: []byte("new sealed keyring"), Now: t0.Add(7 * time.Minute)})
	mustApply(t, f, next(), EventType, &EventRequest{Event: structs.Event{
		Time: t0.Add(8 * time.Minute), Type: structs.EventSnapshotRestored, Subject: "snap-1",
		Message: "restored", Meta: map[string]string{"index": "42"},
	}})
	mustApply(t, f, next(), ACLTokenUpsertType, &ACLTokenUpsertRequest{Tokens: []structs.ACLToken{{
		AccessorID: "ci", Name: "ci", Kind: structs.ACLTokenKindManagement, SecretHash: "0123", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour),
	}}})
	mustApply(t, f, next(), AllocCreateType, &AllocCreateRequest{Alloc: structs.Allocation{
		ID: "a1", Namespace: "team-a", NodeID: "w2", Group: "web", DesiredStatus: structs.AllocDesiredRun, ClientStatus: structs.AllocPending,
		Tasks:      []*structs.Task{{Name: "web", Driver: "containerd", Config: structs.TaskConfig{Image: "busybox", Args: []string{"sleep", "1"}}, Resources: structs.Resources{CPU: 100, MemoryMB: 64}, Restart: structs.DefaultRestartPolicy()}},
		CreateTime: t0.Add(9 * time.Minute),
	}})
	mustApply(t, f, next(), AllocClientUpdateType, &AllocClientUpdateRequest{NodeID: "w2", Now: t0.Add(9 * time.Minute), Updates: []structs.AllocUpdate{{
		ID: "a1", ClientStatus: structs.AllocRunning, TaskStates: map[string]*structs.TaskState{"web": {State: structs.TaskRunning, StartedAt: t0.Add(9 * time.Minute)}},
	}}})
	populateJobs(t, f, next)
	mustApply(t, f, next(), ACLWriteType, &ACLWriteRequest{
		Users:  []*structs.User{{Name: "alice", PasswordHash: "$argon2id$fake", CreatedAt: t0}},
		Groups: []*structs.Group{{Name: "ops", Members: []string{"alice"}}},
		Roles: []*structs.ACLRole{{Name: "deployer", Description: "deploys", Rules: []structs.ACLRule{
			{Resources: []string{"job"}, Actions: []string{"read", "create"}, Scope: "namespace:team-a"},
		}}},
		Bindings:        []*structs.ACLBinding{{Name: "ops-deploy", Role: "deployer", Subjects: []string{"group:ops"}, Namespace: "team-a"}},
		ServiceAccounts: []*structs.ServiceAccount{{Namespace: "team-a", Name: "ci", CreatedAt: t0}},
		Tokens: []*structs.ACLToken{{AccessorID: "sess", Kind: structs.TokenKindSession, SecretHash: "4567",
			Subject: "user:alice", CreatedAt: t0, ExpiresAt: t0.Add(12 * time.Hour)}},
		Now: t0,
	})
	mustApply(t, f, next(), SecretWriteType, &SecretWriteRequest{
		RootKeys: []*structs.RootKey{{ID: "rk1", WrappedKey: []byte("wrapped"), State: structs.RootKeyActive, CreatedAt: t0}},
		Secrets: []*SecretPut{{Secret: &structs.Secret{Namespace: "team-a", Name: "db", Version: 1, CreatedAt: t0,
			Versions: []*structs.SecretVersion{{Version: 1, Keys: []string{"password"}, RootKeyID: "rk1", WrappedDataKey: []byte("dk"), Ciphertext: []byte("ct"), CreatedAt: t0}}}}},
		Now: t0,
	})
	populateNetwork(t, f, next)
	res := mustApply(t, f, next(), NodeRemoveType, &NodeRemoveRequest{NodeID: "w1", Now: t0.Add(9 * time.Minute)})
	if res.Value != 2 {
		t.Fatalf("node remove revoked %v certificates, want 2", res.Value)
	}
	return f
}

// ---- snapshot and restore ---------------------------------------------------

func TestFSMSnapshotRestoreRoundTrip(t *testing.T) {
	src := populated(t)
	want := dump(t, src.State())

	counts := src.State().Snapshot().Counts()
	for _, tab := range state.Tables {
		if counts[tab.Name] == 0 {
			t.Fatalf("table %s is empty: the round trip would not cover it", tab.Name)
		}
	}
	var revoked int
	for _, c := range src.State().Snapshot().IssuedCerts(nil) {
		if c.Revoked {
			revoked++
		}
	}
	if revoked == 0 {
		t.Fatal("no revoked certificates to round-trip")
	}

	data := persist(t, src)

	// The snapshot is a point-in-time view: later writes do not leak in.
	mustApply(t, src, 100, NamespaceUpsertType, &NamespaceUpsertRequest{Namespace: structs.Namespace{Name: "after-snapshot"}, Create: true})

	dst := newFSM(t)
	old := dst.State()
	rc := &closeTracker{Reader: bytes.NewReader(data)}
	if err := dst.Restore(rc); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !rc.closed {
		t.Error("Restore did not close its reader")
	}
	select {
	case <-old.AbandonCh():
	default:
		t.Error("the replaced store's AbandonCh is still open")
	}
	if dst.State() == old {
		t.Fatal("State() still returns the replaced store")
	}
	select {
	case <-dst.State().AbandonCh():
		t.Error("the new store's AbandonCh is closed")
	default:
	}

	requireSameState(t, want, dump(t, dst.State()))

	gotSnap, wantSnap := dst.State().Snapshot(), src.State().Snapshot()
	if gotSnap.LatestIndex() != 26 {
		t.Errorf("restored LatestIndex = %d, want 26", gotSnap.LatestIndex())
	}
	for _, tab := range state.Tables {
		if tab.Name == state.TableNamespaces {
			continue // changed after the snapshot
		}
		if g, w := gotSnap.Index(tab.Name), wantSnap.Index(tab.Name); g != w {
			t.Errorf("Index(%s) = %d, want %d", tab.Name, g, w)
		}
	}

	// Secondary indexes are rebuilt: lookups other than by ID work.
	if tok := gotSnap.ACLTokenBySecretHash(nil, "abcdef"); tok == nil || tok.AccessorID != "admin" {
		t.Errorf("ACLTokenBySecretHash after restore = %+v", tok)
	}
	if certs := gotSnap.IssuedCertsByNode(nil, "w1"); len(certs) != 2 {
		t.Errorf("IssuedCertsByNode(w1) after restore: %d certs, want 2", len(certs))
	}

	// A second snapshot of the restored FSM restores to the same state.
	again := newFSM(t)
	if err := again.Restore(io.NopCloser(bytes.NewReader(persist(t, dst)))); err != nil {
		t.Fatalf("second Restore: %v", err)
	}
	requireSameState(t, want, dump(t, again.State()))

	// The restored FSM keeps applying: new event sequence numbers and
	// indexes continue from the restored state.
	mustApply(t, dst, 27, EventType, &EventRequest{Event: structs.Event{Type: "after", Time: t0}})
	evs := dst.State().Snapshot().Events(nil)
	if last := evs[len(evs)-1]; last.Type != "after" || last.Index != 27 {
		t.Errorf("last event after restore = %+v", last)
	}
}

func TestRestoreRefusesBadStream(t *testing.T) {
	good := persist(t, populated(t))
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "read header"},
		{"foreign header", encode(t, 0, "other-state-v1")[1:], "not a Hive state stream"},
		{"truncated", good[:len(good)-3], "snapshot"},
		{"unknown table", append(append([]byte{}, good...), 0x7f), "unknown table type 127"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := bootstrapped(t)
			before := dump(t, f.State())
			old := f.State()
			err := f.Restore(io.NopCloser(bytes.NewReader(tc.data)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore error = %v, want one containing %q", err, tc.want)
			}
			if f.State() != old {
				t.Error("a failed restore replaced the store")
			}
			select {
			case <-old.AbandonCh():
				t.Error("a failed restore abandoned the store")
			default:
			}
			requireSameState(t, before, dump(t, f.State()))
		})
	}
}

func TestDecodeSnapshotRecords(t *testing.T) {
	f := populated(t)
	data := persist(t, f)
	counts := map[string]int{}
	lastID := byte(0)
	err := DecodeSnapshot(bytes.NewReader(data), func(tab state.Table, obj any) error {
		if tab.ID < lastID {
			t.Errorf("table %s (%d) after table %d: not in Tables order", tab.Name, tab.ID, lastID)
		}
		lastID = tab.ID
		if g, w := fmt.Sprintf("%T", obj), fmt.Sprintf("%T", tab.New()); g != w {
			t.Errorf("table %s decoded %s, want %s", tab.Name, g, w)
		}
		counts[tab.Name]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := f.State().Snapshot().Counts()
	for _, tab := range state.Tables {
		if counts[tab.Name] != want[tab.Name] {
			t.Errorf("table %s: decoded %d records, store has %d", tab.Name, counts[tab.Name], want[tab.Name])
		}
	}

	// An error from the callback stops decoding and is returned.
	stop := errors.New("stop")
	n := 0
	err = DecodeSnapshot(bytes.NewReader(data), func(state.Table, any) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("callback error: err=%v after %d calls, want stop after 1", err, n)
	}
}

// ---- commands ---------------------------------------------------------------

func TestBootstrap(t *testing.T) {
	f := bootstrapped(t, workerToken("wk"))
	snap := f.State().Snapshot()
	c := snap.Cluster(nil)
	if c == nil || c.ClusterID != "cluster-1" || c.CreateIndex != 1 {
		t.Fatalf("cluster = %+v", c)
	}
	if ns := snap.Namespace(nil, structs.DefaultNamespace); ns == nil || !ns.CreatedAt.Equal(t0) {
		t.Errorf("default namespace = %+v", ns)
	}
	if snap.Node(nil, "m1") == nil || snap.IssuedCert(nil, "m1-a") == nil {
		t.Error("bootstrap node or certificate missing")
	}
	if len(snap.JoinTokens(nil)) != 2 || snap.ACLToken(nil, "admin") == nil {
		t.Error("bootstrap tokens missing")
	}
	if evs := eventsOfType(f.State(), structs.EventNodeJoined); len(evs) != 1 || evs[0].Subject != "m1" {
		t.Errorf("bootstrap events = %+v", evs)
	}

	res := apply(t, f, 2, ClusterBootstrapType, bootstrapRequest())
	if !errors.Is(res.Err, ErrConflict) {
		t.Errorf("second bootstrap: err = %v, want ErrConflict", res.Err)
	}
}

func TestNodeRegisterJoinTokens(t *testing.T) {
	expired := workerToken("exp")
	expired.ExpiresAt = t0.Add(-time.Second)
	expiresNow := workerToken("edge")
	expiresNow.ExpiresAt = t0
	revoked := workerToken("rev")
	revoked.Revoked, revoked.RevokedAt = true, t0.Add(-time.Hour)
	usedUp := workerToken("full")
	usedUp.MaxUses, usedUp.Uses = 2, 2
	oneLeft := workerToken("last")
	oneLeft.MaxUses, oneLeft.Uses = 2, 1
	future := workerToken("future")
	future.ExpiresAt = t0.Add(time.Second)
	unlimited := workerToken("unl")

	tests := []struct {
		name     string
		token    string
		role     structs.Role
		wantErr  string // empty: success
		wantUses int    // after a successful join
	}{
		{"unlimited", "unl", structs.RoleWorker, "", 1},
		{"last use", "last", structs.RoleWorker, "", 2},
		{"not yet expired", "future", structs.RoleWorker, "", 1},
		{"max uses reached", "full", structs.RoleWorker, "used 2 of 2 times", 0},
		{"expired", "exp", structs.RoleWorker, "expired", 0},
		{"expires exactly now", "edge", structs.RoleWorker, "expired", 0},
		{"revoked", "rev", structs.RoleWorker, "revoked", 0},
		{"role mismatch: worker token, manager node", "unl", structs.RoleManager, "is for worker nodes", 0},
		{"role mismatch: manager token, worker node", "mgr", structs.RoleWorker, "is for manager nodes", 0},
		{"missing token", "nope", structs.RoleWorker, "does not exist", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := bootstrapped(t, expired, expiresNow, revoked, usedUp, oneLeft, future, unlimited)
			before := dump(t, f.State())
			req := workerJoin(tc.token, "w1", "w1-a", t0)
			req.Node.Role, req.Cert.Role = tc.role, tc.role
			res := apply(t, f, 2, NodeRegisterType, req)

			if tc.wantErr != "" {
				if !errors.Is(res.Err, ErrInvalid) || !strings.Contains(res.Err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrInvalid containing %q", res.Err, tc.wantErr)
				}
				requireSameState(t, before, dump(t, f.State()))
				if got := f.State().Snapshot().LatestIndex(); got != 1 {
					t.Errorf("LatestIndex after a refused join = %d, want 1", got)
				}
				return
			}
			if res.Err != nil {
				t.Fatalf("join: %v", res.Err)
			}
			snap := f.State().Snapshot()
			if tok := snap.JoinToken(nil, tc.token); tok.Uses != tc.wantUses || tok.ModifyIndex != 2 {
				t.Errorf("token after join: uses=%d modify=%d, want uses=%d modify=2", tok.Uses, tok.ModifyIndex, tc.wantUses)
			}
			if n := snap.Node(nil, "w1"); n == nil || n.CreateIndex != 2 {
				t.Errorf("node after join = %+v", n)
			}
			if c := snap.IssuedCert(nil, "w1-a"); c == nil || c.NodeID != "w1" {
				t.Errorf("cert after join = %+v", c)
			}
			if evs := eventsOfType(f.State(), structs.EventJoinTokenUsed); len(evs) != 1 || evs[0].Meta["node"] != "w1" {
				t.Errorf("join-token-used events = %+v", evs)
			}
		})
	}
}

func TestNodeRegisterUseLimitIsExact(t *testing.T) {
	tok := workerToken("two")
	tok.MaxUses = 2
	f := bootstrapped(t, tok)
	mustApply(t, f, 2, NodeRegisterType, workerJoin("two", "w1", "s1", t0))
	mustApply(t, f, 3, NodeRegisterType, workerJoin("two", "w2", "s2", t0))
	before := dump(t, f.State())
	res := apply(t, f, 4, NodeRegisterType, workerJoin("two", "w3", "s3", t0))
	if !errors.Is(res.Err, ErrInvalid) {
		t.Fatalf("third use of a two-use token: err = %v, want ErrInvalid", res.Err)
	}
	requireSameState(t, before, dump(t, f.State()))
	if got := f.State().Snapshot().JoinToken(nil, "two").Uses; got != 2 {
		t.Errorf("uses = %d, want 2", got)
	}
}

func TestNodeRegisterRejoinKeepsJoinedAtAndLabels(t *testing.T) {
	f := bootstrapped(t, workerToken("wk"))
	first := workerJoin("wk", "w1", "s1", t0)
	first.Node.Labels = map[string]string{"zone": "b"}
	mustApply(t, f, 2, NodeRegisterType, first)
	again := workerJoin("wk", "w1", "s2", t0.Add(time.Hour))
	mustApply(t, f, 3, NodeRegisterType, again)
	n := f.State().Snapshot().Node(nil, "w1")
	if !n.JoinedAt.Equal(t0) || n.Labels["zone"] != "b" || n.CreateIndex != 2 || n.ModifyIndex != 3 || n.CertSerial != "s2" {
		t.Errorf("rejoined node = %+v", n)
	}
}

func TestNodeStatus(t *testing.T) {
	f := bootstrapped(t, workerToken("wk"))
	mustApply(t, f, 2, NodeRegisterType, workerJoin("wk", "w1", "s1", t0))
	later := t0.Add(time.Minute)
	mustApply(t, f, 3, NodeStatusType, &NodeStatusRequest{Updates: []NodeStatusUpdate{
		{NodeID: "w1", Status: structs.NodeStatusUnknown},
		{NodeID: "m1", Status: structs.NodeStatusReady}, // unchanged
		{NodeID: "missing", Status: structs.NodeStatusDown},
	}, Now: later})
	snap := f.State().Snapshot()
	if w1 := snap.Node(nil, "w1"); w1.Status != structs.NodeStatusUnknown || !w1.UpdatedAt.Equal(later) || w1.ModifyIndex != 3 {
		t.Errorf("w1 = %+v", w1)
	}
	if m1 := snap.Node(nil, "m1"); m1.ModifyIndex != 1 {
		t.Errorf("unchanged m1 was rewritten: ModifyIndex %d", m1.ModifyIndex)
	}
	if snap.Node(nil, "missing") != nil {
		t.Error("status update created a node")
	}
}

func TestCertIssued(t *testing.T) {
	f := bootstrapped(t)
	notAfter := t0.Add(30 * 24 * time.Hour)
	mustApply(t, f, 2, CertIssuedType, &CertIssuedRequest{
		Cert: structs.IssuedCert{Serial: "m1-b", NodeID: "m1", Role: structs.RoleManager, NotAfter: notAfter, IssuedAt: t0},
		Now:  t0,
	})
	snap := f.State().Snapshot()
	n := snap.Node(nil, "m1")
	if n.CertSerial != "m1-b" || !n.CertExpiry.Equal(notAfter) || n.ModifyIndex != 2 {
		t.Errorf("node after renewal = %+v", n)
	}
	if len(snap.IssuedCertsByNode(nil, "m1")) != 2 {
		t.Error("old and new certificates are not both recorded")
	}
	if evs := eventsOfType(f.State(), structs.EventCertRenewed); len(evs) != 1 {
		t.Errorf("cert-renewed events: %d, want 1", len(evs))
	}
}

func TestNodeRemoveRevokesEveryCert(t *testing.T) {
	f := bootstrapped(t, workerToken("wk"))
	removeAt := t0.Add(10 * time.Hour)
	mustApply(t, f, 2, NodeRegisterType, workerJoin("wk", "w1", "w1-a", t0)) // NotAfter t0+1h: expired at removeAt
	certs := []structs.IssuedCert{
		{Serial: "w1-b", NodeID: "w1", Role: structs.RoleWorker, NotAfter: t0.Add(48 * time.Hour), IssuedAt: t0},
		{Serial: "w1-c", NodeID: "w1", Role: structs.RoleWorker, NotAfter: t0.Add(72 * time.Hour), IssuedAt: t0},
		{Serial: "w1-old-revoked", NodeID: "w1", Role: structs.RoleWorker, NotAfter: t0.Add(72 * time.Hour), IssuedAt: t0, Revoked: true, RevokedAt: t0},
	}
	for i, c := range certs {
		mustApply(t, f, uint64(3+i), CertIssuedType, &CertIssuedRequest{Cert: c, Now: t0})
	}
	mustApply(t, f, 6, NodeRegisterType, workerJoin("wk", "w2", "w2-a", t0.Add(20*time.Hour)))

	res := mustApply(t, f, 7, NodeRemoveType, &NodeRemoveRequest{NodeID: "w1", Now: removeAt})
	// w1-a is revoked and counted, then pruned as expired.
	if res.Value != 3 {
		t.Errorf("revoked count = %v, want 3", res.Value)
	}
	snap := f.State().Snapshot()
	if snap.Node(nil, "w1") != nil {
		t.Error("node still present")
	}
	if snap.IssuedCert(nil, "w1-a") != nil {
		t.Error("expired certificate w1-a was not pruned")
	}
	for _, serial := range []string{"w1-b", "w1-c"} {
		c := snap.IssuedCert(nil, serial)
		if c == nil || !c.Revoked || !c.RevokedAt.Equal(removeAt) || c.ModifyIndex != 7 {
			t.Errorf("cert %s = %+v, want revoked at removal", serial, c)
		}
	}
	if c := snap.IssuedCert(nil, "w1-old-revoked"); !c.RevokedAt.Equal(t0) || c.ModifyIndex != 5 {
		t.Errorf("already revoked cert was rewritten: %+v", c)
	}
	for _, c := range snap.IssuedCertsByNode(nil, "w1") {
		if !c.Revoked {
			t.Errorf("cert %s of the removed node is not revoked", c.Serial)
		}
	}
	if c := snap.IssuedCert(nil, "w2-a"); c == nil || c.Revoked {
		t.Errorf("other node's cert was touched: %+v", c)
	}
	evs := eventsOfType(f.State(), structs.EventNodeRemoved)
	if len(evs) != 1 || evs[0].Subject != "w1" || evs[0].Index != 7 || !strings.Contains(evs[0].Message, "3 certificate(s) revoked") {
		t.Errorf("node-removed events = %+v", evs)
	}

	before := dump(t, f.State())
	res = apply(t, f, 8, NodeRemoveType, &NodeRemoveRequest{NodeID: "w1", Now: removeAt})
	if !errors.Is(res.Err, state.ErrNotFound) {
		t.Errorf("second remove: err = %v, want ErrNotFound", res.Err)
	}
	requireSameState(t, before, dump(t, f.State()))
}

func TestNamespaces(t *testing.T) {
	type step struct {
		typ     MessageType
		body    any
		wantErr error
	}
	create := func(name string) step {
		return step{NamespaceUpsertType, &NamespaceUpsertRequest{Namespace: structs.Namespace{Name: name}, Create: true}, nil}
	}
	fails := func(s step, err error) step { s.wantErr = err; return s }
	del := func(name string) step { return step{NamespaceDeleteType, &NamespaceDeleteRequest{Name: name}, nil} }
	update := func(name, desc string) step {
		return step{NamespaceUpsertType, &NamespaceUpsertRequest{Namespace: structs.Namespace{Name: name, Description: desc}}, nil}
	}

	tests := []struct {
		name  string
		steps []step
		want  []string // namespaces at the end
	}{
		{"create", []step{create("team-a")}, []string{"default", "team-a"}},
		{"create twice", []step{create("team-a"), fails(create("team-a"), ErrConflict)}, []string{"default", "team-a"}},
		{"create default", []step{fails(create("default"), ErrConflict)}, []string{"default"}},
		{"update existing", []step{create("team-a"), update("team-a", "new")}, []string{"default", "team-a"}},
		{"delete", []step{create("team-a"), del("team-a")}, []string{"default"}},
		{"delete default", []step{fails(del("default"), ErrInvalid)}, []string{"default"}},
		{"delete missing", []step{fails(del("nope"), state.ErrNotFound)}, []string{"default"}},
		{"upper case", []step{fails(create("Team"), ErrInvalid)}, []string{"default"}},
		{"underscore", []step{fails(create("team_a"), ErrInvalid)}, []string{"default"}},
		{"empty", []step{fails(create(""), ErrInvalid)}, []string{"default"}},
		{"leading dash", []step{fails(create("-a"), ErrInvalid)}, []string{"default"}},
		{"too long", []step{fails(create(strings.Repeat("a", 64)), ErrInvalid)}, []string{"default"}},
		{"invalid update", []step{fails(update("Bad Name", ""), ErrInvalid)}, []string{"default"}},
		{"63 characters", []step{create(strings.Repeat("a", 63))}, []string{strings.Repeat("a", 63), "default"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := bootstrapped(t)
			for i, s := range tc.steps {
				index := uint64(i + 2)
				before := dump(t, f.State())
				res := apply(t, f, index, s.typ, s.body)
				if s.wantErr == nil {
					if res.Err != nil {
						t.Fatalf("step %d: %v", i, res.Err)
					}
					continue
				}
				if !errors.Is(res.Err, s.wantErr) {
					t.Fatalf("step %d: err = %v, want %v", i, res.Err, s.wantErr)
				}
				requireSameState(t, before, dump(t, f.State()))
			}
			var got []string
			for _, ns := range f.State().Snapshot().Namespaces(nil) {
				got = append(got, ns.Name)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("namespaces = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestJoinTokenWrite(t *testing.T) {
	f := bootstrapped(t, workerToken("old"))
	now := t0.Add(time.Hour)
	mustApply(t, f, 2, JoinTokenWriteType, &JoinTokenWriteRequest{
		Create: []structs.JoinToken{workerToken("new")}, Revoke: []string{"old"}, Now: now,
	})
	snap := f.State().Snapshot()
	if old := snap.JoinToken(nil, "old"); !old.Revoked || !old.RevokedAt.Equal(now) || old.Default {
		t.Errorf("revoked token = %+v", old)
	}
	if tok := snap.JoinToken(nil, "new"); tok == nil || tok.CreateIndex != 2 {
		t.Errorf("created token = %+v", tok)
	}
	if n := len(eventsOfType(f.State(), structs.EventJoinTokenRevoked)); n != 1 {
		t.Errorf("revoked events: %d", n)
	}
	if n := len(eventsOfType(f.State(), structs.EventJoinTokenCreated)); n != 1 {
		t.Errorf("created events: %d", n)
	}

	// Revoking an already revoked token is a no-op.
	mustApply(t, f, 3, JoinTokenWriteType, &JoinTokenWriteRequest{Revoke: []string{"old"}, Now: now.Add(time.Hour)})
	if old := f.State().Snapshot().JoinToken(nil, "old"); !old.RevokedAt.Equal(now) || old.ModifyIndex != 2 {
		t.Errorf("second revoke rewrote the token: %+v", old)
	}
}

// TestFailedCommandChangesNothing checks the validate-then-write rule: a
// refused command leaves every table, and the index table, untouched.
func TestFailedCommandChangesNothing(t *testing.T) {
	badRole := workerToken("bad")
	badRole.Role = "admin"
	tests := []struct {
		name    string
		typ     MessageType
		body    any
		wantErr error
	}{
		{"bootstrap twice", ClusterBootstrapType, bootstrapRequest(workerToken("x")), ErrConflict},
		{"register with missing token", NodeRegisterType, workerJoin("nope", "w9", "s9", t0), ErrInvalid},
		{"register with wrong role", NodeRegisterType, workerJoin("mgr", "w9", "s9", t0), ErrInvalid},
		{"remove missing node", NodeRemoveType, &NodeRemoveRequest{NodeID: "nope", Now: t0}, state.ErrNotFound},
		{"cert for missing node", CertIssuedType, &CertIssuedRequest{Cert: structs.IssuedCert{Serial: "z", NodeID: "nope"}}, state.ErrNotFound},
		{"namespace conflict", NamespaceUpsertType, &NamespaceUpsertRequest{Namespace: structs.Namespace{Name: "default"}, Create: true}, ErrConflict},
		{"namespace invalid", NamespaceUpsertType, &NamespaceUpsertRequest{Namespace: structs.Namespace{Name: "NO"}}, ErrInvalid},
		{"delete default", NamespaceDeleteType, &NamespaceDeleteRequest{Name: "default"}, ErrInvalid},
		{"delete missing namespace", NamespaceDeleteType, &NamespaceDeleteRequest{Name: "nope"}, state.ErrNotFound},
		{"revoke missing token", JoinTokenWriteType, &JoinTokenWriteRequest{Revoke: []string{"nope"}}, state.ErrNotFound},
		{"revoke ok + missing", JoinTokenWriteType, &JoinTokenWriteRequest{Revoke: []string{"wk", "nope"}}, state.ErrNotFound},
		{"create ok + revoke missing", JoinTokenWriteType, &JoinTokenWriteRequest{Create: []structs.JoinToken{workerToken("n1")}, Revoke: []string{"nope"}}, state.ErrNotFound},
		{"revoke ok + bad role", JoinTokenWriteType, &JoinTokenWriteRequest{Create: []structs.JoinToken{workerToken("n1"), badRole}, Revoke: []string{"wk"}}, ErrInvalid},
		{"revoke ok + existing ID", JoinTokenWriteType, &JoinTokenWriteRequest{Create: []structs.JoinToken{workerToken("wk")}, Revoke: []string{"mgr"}}, ErrConflict},
		{"revoke ok + empty ID", JoinTokenWriteType, &JoinTokenWriteRequest{Create: []structs.JoinToken{workerToken("")}, Revoke: []string{"wk"}}, ErrInvalid},
		{"register with empty node ID", NodeRegisterType, workerJoin("wk", "", "s9", t0), ErrInvalid},
		{"register with empty serial", NodeRegisterType, workerJoin("wk", "w9", "", t0), ErrInvalid},
		{"acl ok + no accessor", ACLTokenUpsertType, &ACLTokenUpsertRequest{Tokens: []structs.ACLToken{{AccessorID: "a", SecretHash: "1"}, {SecretHash: "2"}}}, ErrInvalid},
		{"acl ok + no secret hash", ACLTokenUpsertType, &ACLTokenUpsertRequest{Tokens: []structs.ACLToken{{AccessorID: "a", SecretHash: "1"}, {AccessorID: "b"}}}, ErrInvalid},
		{"undecodable body", NamespaceUpsertType, []byte{0xc1}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := bootstrapped(t, workerToken("wk"))
			before := dump(t, f.State())
			var data []byte
			if raw, ok := tc.body.([]byte); ok {
				data = append([]byte{byte(tc.typ)}, raw...)
			} else {
				data = encode(t, tc.typ, tc.body)
			}
			res := applyRaw(t, f, 2, data)
			if res.Err == nil {
				t.Fatal("command succeeded, want an error")
			}
			if tc.wantErr != nil && !errors.Is(res.Err, tc.wantErr) {
				t.Errorf("err = %v, want %v", res.Err, tc.wantErr)
			}
			if res.Value != nil {
				t.Errorf("failed command returned value %v", res.Value)
			}
			requireSameState(t, before, dump(t, f.State()))
			if got := f.State().Snapshot().LatestIndex(); got != 1 {
				t.Errorf("LatestIndex = %d, want 1", got)
			}

			// Inside a batch, where there is no abort to hide a partial
			// write, the command must change nothing either.
			fb := bootstrapped(t, workerToken("wk"))
			batch, err := EncodeBatch([][]byte{data})
			if err != nil {
				t.Fatal(err)
			}
			bres := applyRaw(t, fb, 2, batch)
			br, ok := bres.Value.(BatchResult)
			if bres.Err != nil || !ok || len(br) != 1 || br[0].Err == nil {
				t.Fatalf("batch result = %+v", bres)
			}
			requireSameState(t, before, dump(t, fb.State()))
		})
	}

	// On an empty FSM.
	noNodeID := bootstrapRequest()
	noNodeID.Node.ID = ""
	noCertNode := bootstrapRequest()
	noCertNode.Cert.NodeID = ""
	noACLHash := bootstrapRequest()
	noACLHash.ACLTokens[0].SecretHash = ""
	emptyTokenRole := bootstrapRequest(workerToken("a"), structs.JoinToken{ID: "b"})
	fresh := []struct {
		name string
		typ  MessageType
		body any
	}{
		{"gossip keys before bootstrap", GossipKeysType, &GossipKeysRequest{Sealed: []byte("k"), Now: t0}},
		{"bootstrap without node ID", ClusterBootstrapType, noNodeID},
		{"bootstrap cert without node", ClusterBootstrapType, noCertNode},
		{"bootstrap ACL token without hash", ClusterBootstrapType, noACLHash},
		{"bootstrap join token without role", ClusterBootstrapType, emptyTokenRole},
	}
	for _, tc := range fresh {
		t.Run(tc.name, func(t *testing.T) {
			data := encode(t, tc.typ, tc.body)
			batch, err := EncodeBatch([][]byte{data})
			if err != nil {
				t.Fatal(err)
			}
			for _, entry := range [][]byte{data, batch} {
				f := newFSM(t)
				res := applyRaw(t, f, 1, entry)
				if br, ok := res.Value.(BatchResult); ok {
					res = br[0]
				}
				if !errors.Is(res.Err, ErrInvalid) {
					t.Errorf("err = %v, want ErrInvalid", res.Err)
				}
				for name, c := range f.State().Snapshot().Counts() {
					if c != 0 {
						t.Errorf("refused command left %d records in %s", c, name)
					}
				}
			}
		})
	}
}

// ---- batches ----------------------------------------------------------------

func TestBatch(t *testing.T) {
	limited := workerToken("one")
	limited.MaxUses, limited.Uses = 1, 1 // used up

	type entry struct {
		data    []byte
		wantErr error // nil: succeeds
		failing bool
	}
	ok := func(typ MessageType, body any) entry { return entry{data: encode(t, typ, body)} }
	bad := func(typ MessageType, body any, err error) entry {
		return entry{data: encode(t, typ, body), wantErr: err, failing: true}
	}
	entries := []entry{
		ok(NamespaceUpsertType, &NamespaceUpsertRequest{Namespace: structs.Namespace{Name: "a"}, Create: true}),
		bad(NamespaceUpsertType, &NamespaceUpsertRequest{Namespace: structs.Namespace{Name: "a"}, Create: true}, ErrConflict),
		{data: nil, wantErr: ErrInvalid, failing: true},
		bad(NodeRegisterType, workerJoin("one", "w1", "s1", t0), ErrInvalid),
		ok(NodeRegisterType, workerJoin("wk", "w2", "s2", t0)),
		ok(EventType, &EventRequest{Event: structs.Event{Type: "custom", Time: t0}}),
		bad(NamespaceDeleteType, &NamespaceDeleteRequest{Name: structs.DefaultNamespace}, ErrInvalid),
		bad(JoinTokenWriteType, &JoinTokenWriteRequest{Create: []structs.JoinToken{workerToken("x")}, Revoke: []string{"wk", "missing"}}, state.ErrNotFound),
		ok(NamespaceUpsertType, &NamespaceUpsertRequest{Namespace: structs.Namespace{Name: "b"}, Create: true}),
		// Sees the write of the first entry.
		ok(NamespaceDeleteType, &NamespaceDeleteRequest{Name: "a"}),
		{data: []byte{byte(NamespaceUpsertType), 0xc1}, failing: true},
	}

	var all, succeeding [][]byte
	for _, e := range entries {
		all = append(all, e.data)
		if !e.failing {
			succeeding = append(succeeding, e.data)
		}
	}
	batch, err := EncodeBatch(all)
	if err != nil {
		t.Fatal(err)
	}
	f := bootstrapped(t, workerToken("wk"), limited)
	res := applyRaw(t, f, 5, batch)
	if res.Err != nil {
		t.Fatalf("batch error: %v", res.Err)
	}
	br, isBatch := res.Value.(BatchResult)
	if !isBatch || len(br) != len(entries) {
		t.Fatalf("batch value = %#v, want BatchResult of %d", res.Value, len(entries))
	}
	for i, e := range entries {
		switch {
		case !e.failing && br[i].Err != nil:
			t.Errorf("entry %d: unexpected error %v", i, br[i].Err)
		case e.failing && br[i].Err == nil:
			t.Errorf("entry %d: succeeded, want an error", i)
		case e.wantErr != nil && !errors.Is(br[i].Err, e.wantErr):
			t.Errorf("entry %d: err = %v, want %v", i, br[i].Err, e.wantErr)
		}
	}

	snap := f.State().Snapshot()
	if snap.Namespace(nil, "a") != nil || snap.Namespace(nil, "b") == nil || snap.Node(nil, "w2") == nil {
		t.Error("successful batch entries were not applied")
	}
	if snap.Node(nil, "w1") != nil || snap.JoinToken(nil, "one").Uses != 1 || snap.JoinToken(nil, "x") != nil || snap.JoinToken(nil, "wk").Revoked {
		t.Error("failed batch entries changed state")
	}

	// The batch must leave exactly the state a batch of only its
	// successful entries leaves.
	ref := bootstrapped(t, workerToken("wk"), limited)
	refBatch, err := EncodeBatch(succeeding)
	if err != nil {
		t.Fatal(err)
	}
	if r := applyRaw(t, ref, 5, refBatch); r.Err != nil {
		t.Fatal(r.Err)
	}
	requireSameState(t, dump(t, ref.State()), dump(t, f.State()))

	// Events of several entries share the index and get distinct Seq.
	seen := map[int]bool{}
	for _, ev := range snap.Events(nil) {
		if ev.Index == 5 {
			if seen[ev.Seq] {
				t.Errorf("duplicate event seq %d", ev.Seq)
			}
			seen[ev.Seq] = true
		}
	}
	if len(seen) != 3 { // token used, node joined, custom
		t.Errorf("batch raised %d events, want 3", len(seen))
	}
}

func TestBatchEdgeCases(t *testing.T) {
	t.Run("empty batch", func(t *testing.T) {
		f := bootstrapped(t)
		batch, err := EncodeBatch(nil)
		if err != nil {
			t.Fatal(err)
		}
		res := applyRaw(t, f, 2, batch)
		if br, ok := res.Value.(BatchResult); res.Err != nil || !ok || len(br) != 0 {
			t.Errorf("empty batch result = %#v", res)
		}
	})
	t.Run("undecodable batch", func(t *testing.T) {
		f := bootstrapped(t)
		before := dump(t, f.State())
		res := applyRaw(t, f, 2, []byte{byte(batchType), 0xc1})
		if res.Err == nil || !strings.Contains(res.Err.Error(), "batch") {
			t.Errorf("err = %v, want a batch decode error", res.Err)
		}
		requireSameState(t, before, dump(t, f.State()))
	})
	t.Run("all fail", func(t *testing.T) {
		f := bootstrapped(t)
		before := dump(t, f.State())
		batch, err := EncodeBatch([][]byte{
			encode(t, NamespaceDeleteType, &NamespaceDeleteRequest{Name: "default"}),
			encode(t, NodeRemoveType, &NodeRemoveRequest{NodeID: "nope"}),
		})
		if err != nil {
			t.Fatal(err)
		}
		res := applyRaw(t, f, 2, batch)
		br := res.Value.(BatchResult)
		if br[0].Err == nil || br[1].Err == nil {
			t.Errorf("results = %+v", br)
		}
		requireSameState(t, before, dump(t, f.State()))
	})
}

// ---- unknown types and registry ----------------------------------------------

func TestUnknownCommandType(t *testing.T) {
	const unknown MessageType = 99
	body := encode(t, 0, &EventRequest{})[1:]

	t.Run("ignore flag skips", func(t *testing.T) {
		f := bootstrapped(t)
		before := dump(t, f.State())
		res := applyRaw(t, f, 2, append([]byte{byte(unknown | IgnoreUnknownTypeFlag)}, body...))
		if res != (Result{}) {
			t.Errorf("result = %#v, want zero Result", res)
		}
		requireSameState(t, before, dump(t, f.State()))
	})
	t.Run("ignore flag inside a batch", func(t *testing.T) {
		f := bootstrapped(t)
		batch, err := EncodeBatch([][]byte{
			append([]byte{byte(unknown | IgnoreUnknownTypeFlag)}, body...),
			encode(t, NamespaceUpsertType, &NamespaceUpsertRequest{Namespace: structs.Namespace{Name: "a"}}),
		})
		if err != nil {
			t.Fatal(err)
		}
		br := applyRaw(t, f, 2, batch).Value.(BatchResult)
		if len(br) != 2 || br[0] != (Result{}) || br[1].Err != nil {
			t.Errorf("results = %+v", br)
		}
		if f.State().Snapshot().Namespace(nil, "a") == nil {
			t.Error("entry after the ignored one not applied")
		}
	})
	t.Run("ignore flag on a known type applies it", func(t *testing.T) {
		f := bootstrapped(t)
		res := applyRaw(t, f, 2, encode(t, NamespaceUpsertType|IgnoreUnknownTypeFlag, &NamespaceUpsertRequest{Namespace: structs.Namespace{Name: "a"}}))
		if res.Err != nil || f.State().Snapshot().Namespace(nil, "a") == nil {
			t.Errorf("flagged known command not applied: %v", res.Err)
		}
	})
	t.Run("without the flag panics", func(t *testing.T) {
		f := bootstrapped(t)
		msg := func() (msg string) {
			defer func() { msg = fmt.Sprint(recover()) }()
			f.Apply(&raft.Log{Type: raft.LogCommand, Index: 2, Data: append([]byte{byte(unknown)}, body...)})
			return "no panic"
		}()
		if !strings.Contains(msg, "unknown command type 99") {
			t.Errorf("panic = %q, want unknown command type 99", msg)
		}
	})
}

func TestApplyIgnoresNonCommands(t *testing.T) {
	f := bootstrapped(t)
	for _, l := range []*raft.Log{
		{Type: raft.LogNoop, Index: 2, Data: []byte{byte(NamespaceDeleteType)}},
		{Type: raft.LogConfiguration, Index: 3},
		{Type: raft.LogCommand, Index: 4, Data: nil},
	} {
		if out := f.Apply(l); out != nil {
			t.Errorf("Apply(%v) = %#v, want nil", l.Type, out)
		}
	}
	if got := f.State().Snapshot().LatestIndex(); got != 1 {
		t.Errorf("LatestIndex = %d, want 1", got)
	}
}

func TestRegistry(t *testing.T) {
	for typ, cmd := range registry {
		if typ&IgnoreUnknownTypeFlag != 0 || typ == batchType || typ == 0 {
			t.Errorf("type %d (%s) is reserved", typ, cmd.name)
		}
		if cmd.apply == nil || cmd.name == "" {
			t.Errorf("type %d is incomplete", typ)
		}
	}
	mustPanic := func(name string, fn func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		fn()
	}
	n := len(registry)
	mustPanic("duplicate", func() { register(NodeRegisterType, "dup", applyEvent) })
	mustPanic("flag bit", func() { register(77|IgnoreUnknownTypeFlag, "flagged", applyEvent) })
	if len(registry) != n {
		t.Errorf("failed registrations changed the registry")
	}
}

// ---- fuzzing ----------------------------------------------------------------

func FuzzDecodeSnapshot(f *testing.F) {
	// A small stream with a record in every table keeps minimization of
	// interesting inputs quick; the full one is a seed too.
	good := persist(f, bootstrapped(f, workerToken("wk")))
	f.Add(persist(f, populated(f)))
	header, err := Encode(0, snapshotHeader)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(header[1:])
	f.Add(append(append([]byte{}, header[1:]...), 3, 0xc0))
	f.Add(append(append([]byte{}, header[1:]...), 0xcc, 0xff))
	f.Add([]byte{})
	f.Add([]byte{0xdb, 0xff, 0xff, 0xff, 0xff})

	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		err := DecodeSnapshot(bytes.NewReader(data), func(tab state.Table, obj any) error {
			n++
			if obj == nil {
				t.Fatalf("nil record for table %s", tab.Name)
			}
			return nil
		})
		// Loading into a store must not panic either, must fail whenever
		// decoding fails, and must be all or nothing.
		s := state.New()
		loadErr := LoadSnapshot(bytes.NewReader(data), s)
		if err != nil && loadErr == nil {
			t.Fatalf("decode failed (%v) but load succeeded", err)
		}
		total := 0
		for name, c := range s.Snapshot().Counts() {
			if loadErr != nil && c != 0 {
				t.Fatalf("failed load left %d records in %s", c, name)
			}
			total += c
		}
		if total > n {
			t.Fatalf("loaded %d records from %d decoded", total, n)
		}
	})
}
