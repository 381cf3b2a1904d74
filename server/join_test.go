package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/identity"
	"github.com/hivesec/hive/structs"
)

// TestJoin covers admission on one manager: token use limits and the
// events they leave, the CA pin check before any secret is sent, rejoining
// with a known node ID and the role a node ID is bound to.
func TestJoin(t *testing.T) {
	tc := startCluster(t, 1)
	s := tc.leader(t)
	c := tc.adminClient(t, s)

	t.Run("UseLimitAndEvents", func(t *testing.T) {
		tok, err := c.JoinTokens().Create(structs.JoinTokenCreateRequest{Role: structs.RoleWorker, MaxUses: 2, Description: "two uses"})
		if err != nil {
			t.Fatal(err)
		}
		a := joinWorker(t, s.APIAddr(), tok.Token, "")
		b := joinWorker(t, s.APIAddr(), tok.Token, "")
		if a.node.ID == b.node.ID {
			t.Fatalf("two joins got the same node ID %s", a.node.ID)
		}
		for _, w := range []*testWorker{a, b} {
			if w.resp.Role != structs.RoleWorker || w.node.Role != structs.RoleWorker {
				t.Errorf("worker token gave role %q/%q", w.resp.Role, w.node.Role)
			}
			if len(w.resp.UnsealKey) != 0 {
				t.Errorf("a worker was sent the unseal key")
			}
			if len(w.resp.GossipKeys) == 0 || len(w.resp.Managers) != 1 {
				t.Errorf("join answer lacks gossip keys or managers: %d keys, %d managers", len(w.resp.GossipKeys), len(w.resp.Managers))
			}
		}
		before := stateIndex(s)
		_, err = tryJoinWorker(t, s.APIAddr(), tok.Token, "")
		if apiStatus(err) != http.StatusUnauthorized {
			t.Fatalf("third join with a 2-use token: %v, want 401", err)
		}
		if got := stateIndex(s); got != before {
			t.Errorf("refused join moved the state index from %d to %d", before, got)
		}
		toks, _, err := c.JoinTokens().List(nil)
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, jt := range toks {
			if jt.ID == tok.Info.ID {
				found = true
				if jt.Uses != 2 || jt.MaxUses != 2 {
					t.Errorf("token shows %d of %d uses, want 2 of 2", jt.Uses, jt.MaxUses)
				}
			}
		}
		if !found {
			t.Fatalf("token %s not listed", tok.Info.ID)
		}
		evs, _, err := c.Events().List(nil)
		if err != nil {
			t.Fatal(err)
		}
		used := map[string]bool{}
		joined := map[string]bool{}
		var created bool
		for _, ev := range evs {
			switch {
			case ev.Type == structs.EventJoinTokenUsed && ev.Subject == tok.Info.ID:
				if ev.Meta["token"] != tok.Info.ID || ev.Meta["role"] != string(structs.RoleWorker) {
					t.Errorf("token-used event meta %v", ev.Meta)
				}
				used[ev.Meta["node"]] = true
			case ev.Type == structs.EventNodeJoined:
				joined[ev.Subject] = true
			case ev.Type == structs.EventJoinTokenCreated && ev.Subject == tok.Info.ID:
				created = true
			}
		}
		if len(used) != 2 || !used[a.node.ID] || !used[b.node.ID] {
			t.Errorf("token-used events name nodes %v, want %s and %s", used, a.node.ID, b.node.ID)
		}
		if !joined[a.node.ID] || !joined[b.node.ID] {
			t.Errorf("node-joined events for %v, want both workers", joined)
		}
		if !created {
			t.Errorf("no join-token-created event for %s", tok.Info.ID)
		}
	})

	t.Run("PinCheckedBeforeSecretIsSent", func(t *testing.T) {
		other, err := pki.NewCA(uuid.NewString(), s.certs.CA.NotBefore)
		if err != nil {
			t.Fatal(err)
		}
		secret, err := pki.ParseJoinToken(tc.boot.WorkerToken)
		if err != nil {
			t.Fatal(err)
		}
		// The real secret under another cluster's pin: the node must stop at
		// the pin check, so the server never sees the request.
		before := stateIndex(s)
		dir := t.TempDir()
		_, _, _, err = identity.Join(context.Background(), identity.JoinParams{
			DataDir: dir, Addr: s.APIAddr(), Token: pki.FormatJoinToken(other.Pin(), secret.Secret),
			Name: "pinned", Address: "127.0.200.2", SerfPort: 17402,
		})
		if err == nil || apiStatus(err) != 0 {
			t.Fatalf("join under a foreign pin: %v, want a local pin mismatch error", err)
		}
		if got := stateIndex(s); got != before {
			t.Errorf("state index moved from %d to %d", before, got)
		}
		if _, err := os.Stat(dir + "/" + identity.NodeFile); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused join left an identity behind (stat: %v)", err)
		}
	})

	t.Run("RejoinWithValidCertRefused", func(t *testing.T) {
		// While an ID holds a valid certificate, a token holder must not be
		// able to take it over.
		first := joinWorker(t, s.APIAddr(), tc.boot.WorkerToken, "")
		before := stateIndex(s)
		_, err := tryJoinWorker(t, s.APIAddr(), tc.boot.WorkerToken, first.node.ID)
		if apiStatus(err) != http.StatusConflict {
			t.Fatalf("rejoin under a live ID: %v, want 409", err)
		}
		if got := stateIndex(s); got != before {
			t.Errorf("refused rejoin moved the state index from %d to %d", before, got)
		}
	})

	t.Run("NodeIDKeepsItsRole", func(t *testing.T) {
		w := joinWorker(t, s.APIAddr(), tc.boot.WorkerToken, "")
		before := stateIndex(s)
		_, err := tryJoinWorker(t, s.APIAddr(), tc.boot.WorkerToken, s.NodeID())
		if apiStatus(err) != http.StatusConflict {
			t.Errorf("worker token rejoining the manager's ID: %v, want 409", err)
		}
		_, _, _, err = identity.Join(context.Background(), identity.JoinParams{
			DataDir: t.TempDir(), Addr: s.APIAddr(), Token: tc.boot.ManagerToken, NodeID: w.node.ID,
			Name: "upgrade", Address: "127.0.200.3", APIPort: 17400, RPCPort: 17401, SerfPort: 17402,
		})
		if apiStatus(err) != http.StatusConflict {
			t.Errorf("manager token rejoining a worker's ID: %v, want 409", err)
		}
		if got := stateIndex(s); got != before {
			t.Errorf("refused rejoins moved the state index from %d to %d", before, got)
		}
		if n := s.fsm.State().Snapshot().Node(nil, s.NodeID()); n.Role != structs.RoleManager {
			t.Errorf("manager's role is now %q", n.Role)
		}
	})
}

// TestRenew renews a joined worker's certificate with identity.Renewer
// against a real manager.
func TestRenew(t *testing.T) {
	tc := startCluster(t, 1)
	s := tc.leader(t)
	w := joinWorker(t, s.APIAddr(), tc.boot.WorkerToken, "")
	oldLeaf := w.certs.Leaf()
	oldSerial := pki.SerialHex(oldLeaf)

	if err := w.renewer(t, s).RenewOnce(context.Background()); err != nil {
		t.Fatalf("renew: %v", err)
	}
	leaf := w.certs.Leaf()
	serial := pki.SerialHex(leaf)
	if serial == oldSerial {
		t.Fatal("renewal kept the old serial")
	}
	if leaf.PublicKey.(*ecdsa.PublicKey).Equal(oldLeaf.PublicKey) {
		t.Error("renewal kept the old key")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: w.certs.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("renewed certificate does not chain to the cluster CA: %v", err)
	}
	id, role, err := pki.Identity(leaf)
	if err != nil || id != w.node.ID || role != structs.RoleWorker {
		t.Errorf("renewed certificate names %s/%s (%v), want %s/worker", id, role, err, w.node.ID)
	}
	if leaf.NotAfter.Before(oldLeaf.NotAfter) {
		t.Errorf("renewed certificate expires %s, before the old one (%s)", leaf.NotAfter, oldLeaf.NotAfter)
	}

	snap := s.fsm.State().Snapshot()
	rec := snap.IssuedCert(nil, serial)
	if rec == nil {
		t.Fatalf("new serial %s not recorded as issued", serial)
	}
	if rec.NodeID != w.node.ID || rec.Role != structs.RoleWorker || rec.Revoked || !rec.NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("issued cert record %+v does not match the certificate", rec)
	}
	n := snap.Node(nil, w.node.ID)
	if n.CertSerial != serial || !n.CertExpiry.Equal(leaf.NotAfter) || n.Role != structs.RoleWorker {
		t.Errorf("node records serial %s expiring %s (role %s), want %s expiring %s", n.CertSerial, n.CertExpiry, n.Role, serial, leaf.NotAfter)
	}
	var evs int
	for _, ev := range snap.Events(nil) {
		if ev.Type == structs.EventCertRenewed && ev.Subject == w.node.ID {
			evs++
		}
	}
	if evs != 1 {
		t.Errorf("%d cert-renewed events for the worker, want 1", evs)
	}

	// What is on disk is the new pair, so a restart keeps it.
	onDisk, err := identity.LoadCerts(w.dir)
	if err != nil {
		t.Fatal(err)
	}
	if pki.SerialHex(onDisk.Leaf()) != serial {
		t.Errorf("certificate on disk has serial %s, want %s", pki.SerialHex(onDisk.Leaf()), serial)
	}
	self, err := w.client(t, s).Nodes().Self()
	if err != nil {
		t.Fatalf("call with the renewed certificate: %v", err)
	}
	if self.ID != w.node.ID {
		t.Errorf("node/self with the renewed certificate is %s, want %s", self.ID, w.node.ID)
	}
}

// TestRejoinAfterExpiryKeepsNodeID: a worker whose certificate expired while
// it was offline rejoins with a token and keeps its ID. The cluster signs
// 3-second certificates so the expiry is real.
func TestRejoinAfterExpiryKeepsNodeID(t *testing.T) {
	cfg := testConfig(t)
	cfg.CertLifetime = 3 * time.Second
	s, boot, err := Init(cfg)
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	t.Cleanup(s.Shutdown)
	first := joinWorker(t, s.APIAddr(), boot.WorkerToken, "")
	old := s.fsm.State().Snapshot().Node(nil, first.node.ID)
	nodes := len(s.fsm.State().Snapshot().Nodes(nil))
	waitFor(t, 10*time.Second, "the worker certificate to expire", func() error {
		if !first.certs.Expired(time.Now()) {
			return fmt.Errorf("valid until %s", first.certs.Leaf().NotAfter)
		}
		return nil
	})
	again := joinWorker(t, s.APIAddr(), boot.WorkerToken, first.node.ID)
	if again.node.ID != first.node.ID || again.resp.NodeID != first.node.ID {
		t.Fatalf("rejoin got node ID %s, want %s", again.node.ID, first.node.ID)
	}
	id, role, err := pki.Identity(again.certs.Leaf())
	if err != nil || id != first.node.ID || role != structs.RoleWorker {
		t.Fatalf("rejoined certificate names %s/%s (%v), want %s/worker", id, role, err, first.node.ID)
	}
	snap := s.fsm.State().Snapshot()
	if got := len(snap.Nodes(nil)); got != nodes {
		t.Errorf("%d nodes after rejoin, want %d", got, nodes)
	}
	n := snap.Node(nil, first.node.ID)
	if n.CertSerial != pki.SerialHex(again.certs.Leaf()) {
		t.Errorf("node records serial %s, want the new %s", n.CertSerial, pki.SerialHex(again.certs.Leaf()))
	}
	if !n.JoinedAt.Equal(old.JoinedAt) || n.CreateIndex != old.CreateIndex {
		t.Errorf("rejoin reset JoinedAt/CreateIndex: %v/%d, was %v/%d", n.JoinedAt, n.CreateIndex, old.JoinedAt, old.CreateIndex)
	}
	if _, err := again.client(t, s).Nodes().Self(); err != nil {
		t.Errorf("rejoined certificate: %v", err)
	}
}
