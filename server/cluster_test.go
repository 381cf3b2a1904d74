package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/client"
	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/structs"
)

// TestManagerCluster runs the multi-manager behaviour on one 3-manager
// cluster (starting one costs seconds): forwarding, the internal port,
// Raft membership, renewal through a follower, gossip key rotation and node
// removal. The subtests run in order and build on each other; the last one
// removes a manager.
func TestManagerCluster(t *testing.T) {
	tc := startCluster(t, 3)
	parent := t
	ca := tc.boot.CACertPEM
	admin := bearer(tc.boot.AdminToken)
	var removed []*Server
	// roles returns the current leader and the followers still in the
	// cluster.
	roles := func(t *testing.T) (*Server, []*Server) {
		t.Helper()
		l := tc.leader(t)
		var fs []*Server
		for _, s := range tc.servers {
			if s != l && !slices.Contains(removed, s) {
				fs = append(fs, s)
			}
		}
		return l, fs
	}
	managerIDs := func() []string {
		var ids []string
		for _, s := range tc.servers {
			if !slices.Contains(removed, s) {
				ids = append(ids, s.NodeID())
			}
		}
		slices.Sort(ids)
		return ids
	}
	raftIDs := func(t *testing.T, s *Server) []string {
		t.Helper()
		f := s.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, srv := range f.Configuration().Servers {
			if srv.Suffrage != raft.Voter {
				t.Errorf("raft server %s is a %v, want a voter", srv.ID, srv.Suffrage)
			}
			ids = append(ids, string(srv.ID))
		}
		slices.Sort(ids)
		return ids
	}

	t.Run("ManagersAreVoters", func(t *testing.T) {
		l, _ := roles(t)
		peers, err := tc.adminClient(t, l).Operator().RaftPeers(nil)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		leaders := 0
		for _, p := range peers {
			if !p.Voter {
				t.Errorf("peer %s is not a voter", p.ID)
			}
			if p.Leader {
				leaders++
			}
			ids = append(ids, p.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, managerIDs()) || leaders != 1 {
			t.Errorf("raft peers %v (%d leaders), want voters %v with one leader", ids, leaders, managerIDs())
		}
		for _, s := range tc.servers {
			n := l.fsm.State().Snapshot().Node(nil, s.NodeID())
			if n == nil || n.Role != structs.RoleManager {
				t.Errorf("manager %s has node record %+v", s.NodeID(), n)
			}
		}
	})

	t.Run("FollowersForwardWrites", func(t *testing.T) {
		l, fs := roles(t)
		for i, f := range fs {
			name := fmt.Sprintf("via-follower-%d", i)
			if err := tc.adminClient(t, f).Namespaces().Create(structs.NamespaceRequest{Name: name, Description: "forwarded"}); err != nil {
				t.Fatalf("create namespace through follower %s: %v", f.NodeID(), err)
			}
			// The leader applied it before the follower answered.
			ns := l.fsm.State().Snapshot().Namespace(nil, name)
			if ns == nil || ns.Description != "forwarded" {
				t.Errorf("namespace %s on the leader: %+v", name, ns)
			}
		}
		// Errors come back through the proxy unchanged.
		err := tc.adminClient(t, fs[0]).Namespaces().Create(structs.NamespaceRequest{Name: "via-follower-0"})
		if apiStatus(err) != http.StatusConflict {
			t.Errorf("duplicate through a follower: %v, want 409", err)
		}
		// Joining through a follower (forwarded: only the leader signs).
		w := joinWorker(t, fs[0].APIAddr(), tc.boot.WorkerToken, "")
		if l.fsm.State().Snapshot().Node(nil, w.node.ID) == nil {
			t.Errorf("worker joined through a follower is not on the leader")
		}
		if len(w.resp.Managers) != 3 {
			t.Errorf("join answer lists %d managers, want 3", len(w.resp.Managers))
		}
	})

	t.Run("ReadsAreLocalConsistentForwards", func(t *testing.T) {
		l, fs := roles(t)
		for _, rt := range l.routes() {
			for _, s := range append([]*Server{l}, fs...) {
				for _, q := range []string{"", "?consistent"} {
					r, _ := http.NewRequest(rt.method, "https://x"+probePath(rt.path)+q, nil)
					want := false
					if s != l {
						want = rt.forward == forwardAlways || rt.forward == forwardConsistent && q != ""
					}
					if got := s.mustForward(rt, r); got != want {
						t.Errorf("%s %s%s on %s: forward %v, want %v", rt.method, rt.path, q, map[bool]string{true: "leader", false: "follower"}[s == l], got, want)
					}
				}
			}
		}
		f := fs[0]
		c := newRawCaller(t, f.APIAddr(), ca, nil, true)
		// A request that already took its one hop is answered locally when
		// it is a plain read and refused when it would need the leader:
		// plain reads never leave the follower.
		r := c.call(t, "GET", "/v1/namespaces", admin, nil, headerForwarded, "probe")
		if r.status != http.StatusOK {
			t.Errorf("plain read on a follower: %s", r)
		}
		r = c.call(t, "GET", "/v1/namespaces?consistent", admin, nil, headerForwarded, "probe")
		wantError(t, "consistent read after a hop", r, http.StatusServiceUnavailable, "no_leader")

		// A write the leader has applied is seen at once by a consistent
		// read through the follower.
		name := "consistent-read"
		_, idx, err := l.applyIndex(fsm.NamespaceUpsertType, &fsm.NamespaceUpsertRequest{Namespace: structs.Namespace{Name: name}, Create: true})
		if err != nil {
			t.Fatal(err)
		}
		list, meta, err := tc.adminClient(t, f).Namespaces().List(&api.QueryOptions{Consistent: true})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(list, func(ns structs.Namespace) bool { return ns.Name == name }) {
			t.Errorf("consistent read through a follower misses the namespace committed at %d", idx)
		}
		if meta.LastIndex < idx {
			t.Errorf("consistent read at index %d, before the write at %d", meta.LastIndex, idx)
		}
		waitFor(t, 10*time.Second, "the follower to apply the write", func() error {
			list, _, err := tc.adminClient(t, f).Namespaces().List(nil)
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(list, func(ns structs.Namespace) bool { return ns.Name == name }) {
				return errors.New("not yet")
			}
			return nil
		})
	})

	t.Run("NodeHeaderCannotBeSpoofed", func(t *testing.T) {
		l, fs := roles(t)
		w := joinWorker(t, l.APIAddr(), tc.boot.WorkerToken, "")
		waitNode(t, tc.servers, w.node.ID)
		for _, s := range []*Server{l, fs[0]} {
			c := newRawCaller(t, s.APIAddr(), ca, nil, false)
			// The admin token claiming to act for a node gets no node access,
			// directly or through a follower's forward.
			r := c.call(t, "GET", "/v1/node/self", admin, nil, headerFwdNode, w.node.ID+"/"+string(structs.RoleWorker))
			wantError(t, "admin with a forged node header", r, http.StatusForbidden, "forbidden")
			r = c.call(t, "POST", "/v1/node/renew", admin, mustJSON(t, structs.RenewRequest{CSRPEM: string(newCSR(t))}), headerFwdNode, w.node.ID+"/"+string(structs.RoleWorker))
			wantError(t, "admin renewing with a forged node header", r, http.StatusForbidden, "forbidden")
			// A worker claiming to be a manager gets no admin access.
			wc := newRawCaller(t, s.APIAddr(), ca, w.certs.Current(), false)
			r = wc.call(t, "GET", "/v1/nodes", "", nil, headerFwdNode, l.NodeID()+"/"+string(structs.RoleManager), headerForwarded, l.NodeID())
			wantError(t, "worker with a forged manager header", r, http.StatusForbidden, "forbidden")
			r = wc.call(t, "GET", "/v1/node/self", "", nil, headerFwdNode, l.NodeID()+"/"+string(structs.RoleManager))
			if r.status != http.StatusOK {
				t.Fatalf("worker node/self with a forged header: %s", r)
			}
			var self structs.NodePublic
			mustUnmarshal(t, r.body, &self)
			if self.ID != w.node.ID {
				t.Errorf("forged header made node/self answer for %s, want the caller %s", self.ID, w.node.ID)
			}
		}
	})

	t.Run("InternalPortRefusesWorkers", func(t *testing.T) {
		l, fs := roles(t)
		w := joinWorker(t, l.APIAddr(), tc.boot.WorkerToken, "")
		waitNode(t, tc.servers, w.node.ID)
		workerTLS := pki.InternalClientTLS(w.certs.Pool, w.certs.GetClientCertificate, nil)
		for _, s := range append([]*Server{l}, fs...) {
			addr := s.node.RPCAddr()
			// Control: a manager's certificate gets through, and the node
			// header it vouches with is honoured.
			r, err := internalCall(t, addr, fs[0].internalTLS, "GET", "/v1/status/leader", admin)
			if err != nil || r.status != http.StatusOK {
				t.Fatalf("manager on %s's internal port: %v %v", s.NodeID(), r, err)
			}
			r, err = internalCall(t, addr, fs[0].internalTLS, "GET", "/v1/node/self", "", headerFwdNode, w.node.ID+"/worker")
			if err != nil || r.status != http.StatusOK {
				t.Fatalf("manager vouching for a worker on %s's internal port: %v %v", s.NodeID(), r, err)
			}

			// A worker certificate on the HTTP protocol, vouching for a
			// manager and carrying the admin token, is refused.
			r, err = internalCall(t, addr, workerTLS, "GET", "/v1/nodes", admin, headerFwdNode, l.NodeID()+"/manager", headerForwarded, l.NodeID())
			if err == nil && r.status != http.StatusForbidden {
				t.Errorf("worker certificate on %s's internal HTTP: %s, want refusal", s.NodeID(), r)
			}
			// ...and on the Raft protocol it must not reach Raft at all.
			if err := raftProbe(addr, workerTLS); err == nil {
				t.Errorf("worker certificate got a Raft answer from %s's RPC port", s.NodeID())
			}
			// Control: the same probe with a manager's certificate is
			// answered (it only asks, with an old term).
			if err := raftProbe(addr, fs[0].internalTLS); err != nil {
				t.Errorf("manager certificate Raft probe to %s: %v", s.NodeID(), err)
			}
		}
	})

	t.Run("RenewThroughFollower", func(t *testing.T) {
		l, fs := roles(t)
		w := joinWorker(t, l.APIAddr(), tc.boot.WorkerToken, "")
		old := pki.SerialHex(w.certs.Leaf())
		if err := w.renewer(t, fs[0]).RenewOnce(t.Context()); err != nil {
			t.Fatalf("renew through a follower: %v", err)
		}
		serial := pki.SerialHex(w.certs.Leaf())
		id, role, err := pki.Identity(w.certs.Leaf())
		if serial == old || err != nil || id != w.node.ID || role != structs.RoleWorker {
			t.Fatalf("renewed through a follower: serial %s (old %s), identity %s/%s %v", serial, old, id, role, err)
		}
		if n := l.fsm.State().Snapshot().Node(nil, w.node.ID); n.CertSerial != serial {
			t.Errorf("leader records serial %s, want %s", n.CertSerial, serial)
		}
	})

	var agent *client.Agent
	t.Run("WorkerIsNotAVoter", func(t *testing.T) {
		l, fs := roles(t)
		w := joinWorker(t, fs[0].APIAddr(), tc.boot.WorkerToken, "")
		a, err := client.StartJoined(client.Config{
			DataDir: w.dir, Advertise: w.node.Address, SerfPort: w.node.SerfPort, Name: "agent",
			Logger: testConfig(t).Logger.Named("agent"),
		}, w.node, w.certs, w.resp)
		if err != nil {
			t.Fatal(err)
		}
		agent = a
		parent.Cleanup(a.Shutdown) // later subtests gossip with it
		waitFor(t, 15*time.Second, "the leader to see the worker alive in gossip", func() error {
			if err := serfAlive(l, 4); err != nil {
				return err
			}
			if n := l.fsm.State().Snapshot().Node(nil, w.node.ID); n == nil || n.Status != structs.NodeStatusReady {
				return fmt.Errorf("worker node %+v", n)
			}
			return nil
		})
		// Give reconcile a few rounds to (wrongly) add it.
		l.triggerReconcile()
		time.Sleep(5 * l.cfg.ReconcileInterval)
		if got := raftIDs(t, l); !slices.Equal(got, managerIDs()) {
			t.Errorf("raft configuration %v, want only the managers %v", got, managerIDs())
		}
	})

	t.Run("GossipRotate", func(t *testing.T) {
		l, fs := roles(t)
		members := 3
		if agent != nil {
			members = 4
		}
		for _, s := range tc.servers {
			waitFor(t, 15*time.Second, "every member alive in gossip", func() error { return serfAlive(s, members) })
		}
		oldKeys, err := l.gossipKeys()
		if err != nil || len(oldKeys) != 1 {
			t.Fatalf("gossip keys before rotation: %d, %v", len(oldKeys), err)
		}
		oldSealed := l.fsm.State().Snapshot().Cluster(nil).GossipKeysSealed
		if err := tc.adminClient(t, fs[0]).Operator().GossipRotate(); err != nil {
			t.Fatalf("rotate through a follower: %v", err)
		}
		newKeys, err := l.gossipKeys()
		if err != nil || len(newKeys) != 1 || bytes.Equal(newKeys[0], oldKeys[0]) {
			t.Fatalf("keys in state after rotation: %d (changed: %v), %v", len(newKeys), len(newKeys) == 1 && !bytes.Equal(newKeys[0], oldKeys[0]), err)
		}
		want := encodeKey(newKeys[0])
		for _, s := range tc.servers {
			waitFor(t, 10*time.Second, "the sealed keyring to replicate", func() error {
				c := s.fsm.State().Snapshot().Cluster(nil)
				if bytes.Equal(c.GossipKeysSealed, oldSealed) {
					return errors.New("old sealed keyring")
				}
				keys, err := s.gossipKeys()
				if err != nil || len(keys) != 1 || !bytes.Equal(keys[0], newKeys[0]) {
					return fmt.Errorf("keys %d, %v", len(keys), err)
				}
				return nil
			})
			// Listing keys is itself a gossip query: every member answering
			// it proves they all talk with the new key alone.
			resp, err := s.getSerf().KeyManager().ListKeys()
			if err != nil {
				t.Fatalf("list keys from %s: %v (%+v)", s.NodeID(), err, resp)
			}
			if resp.NumErr != 0 || resp.NumResp != members || resp.NumNodes != members {
				t.Errorf("list keys from %s: %d of %d members answered, %d errors", s.NodeID(), resp.NumResp, resp.NumNodes, resp.NumErr)
			}
			if len(resp.Keys) != 1 || resp.Keys[want] != members || resp.PrimaryKeys[want] != members {
				t.Errorf("keyring seen from %s: keys %v primary %v, want only the new key on all %d members", s.NodeID(), resp.Keys, resp.PrimaryKeys, members)
			}
		}
		// A worker restarting fetches the new key.
		w := joinWorker(t, l.APIAddr(), tc.boot.WorkerToken, "")
		waitNode(t, tc.servers, w.node.ID)
		got, err := w.client(t, fs[0]).Nodes().GossipKeys()
		if err != nil || len(got.Keys) != 1 || !bytes.Equal(got.Keys[0], newKeys[0]) {
			t.Errorf("gossip keys served to a worker after rotation: %v, %v", got, err)
		}
		if err := serfAlive(l, members); err != nil {
			t.Errorf("after rotation: %v", err)
		}
		var rotated bool
		for _, ev := range l.fsm.State().Snapshot().Events(nil) {
			rotated = rotated || ev.Type == structs.EventGossipRotated
		}
		if !rotated {
			t.Error("no gossip-key-rotated event")
		}
	})

	t.Run("RemoveWorkerRevokesCert", func(t *testing.T) {
		l, fs := roles(t)
		w := joinWorker(t, l.APIAddr(), tc.boot.WorkerToken, "")
		serial := pki.SerialHex(w.certs.Leaf())
		all := append([]*Server{l}, fs...)
		live := make([]*rawCaller, len(all))
		for i, s := range all {
			live[i] = newRawCaller(t, s.APIAddr(), ca, w.certs.Current(), true)
			waitFor(t, 10*time.Second, "the worker to be known to every manager", func() error {
				r, err := live[i].try("GET", "/v1/node/self", "", nil)
				if err != nil {
					return err
				}
				if r.status != http.StatusOK {
					return errors.New(r.String())
				}
				return nil
			})
		}
		if err := tc.adminClient(t, fs[0]).Nodes().Remove(w.node.ID); err != nil {
			t.Fatalf("remove worker through a follower: %v", err)
		}
		for _, s := range all {
			waitFor(t, 10*time.Second, "the revocation to replicate", func() error {
				snap := s.fsm.State().Snapshot()
				if rec := snap.IssuedCert(nil, serial); rec == nil || !rec.Revoked {
					return fmt.Errorf("certificate record %+v", rec)
				}
				if snap.Node(nil, w.node.ID) != nil {
					return errors.New("node still present")
				}
				return nil
			})
		}
		// The node comes back under its old ID with a new token, as an
		// operator re-provisioning it would do. The old certificate must
		// stay dead, also on connections opened before it was revoked.
		joinWorker(t, l.APIAddr(), tc.boot.WorkerToken, w.node.ID)
		for i, s := range all {
			waitFor(t, 10*time.Second, "the rejoin to replicate", func() error {
				if s.fsm.State().Snapshot().Node(nil, w.node.ID) == nil {
					return errors.New("not yet")
				}
				return nil
			})
			fresh := newRawCaller(t, s.APIAddr(), ca, w.certs.Current(), false)
			if r, err := fresh.try("GET", "/v1/node/self", "", nil); err == nil {
				t.Errorf("revoked certificate opened a new connection to %s: %s", s.NodeID(), r)
			}
			r, err := live[i].try("POST", "/v1/node/renew", "", mustJSON(t, structs.RenewRequest{CSRPEM: string(newCSR(t))}))
			if err == nil && !live[i].reused {
				t.Fatalf("the pooled connection to %s was not reused; the test proves nothing", s.NodeID())
			}
			if err == nil && r.status != http.StatusUnauthorized {
				t.Errorf("revoked certificate on a connection opened before the revocation, %s: %s, want 401", s.NodeID(), r)
			}
		}
	})

	t.Run("RemoveLeaderRefused", func(t *testing.T) {
		l, fs := roles(t)
		before := stateIndex(l)
		for _, s := range []*Server{l, fs[0]} {
			c := newRawCaller(t, s.APIAddr(), ca, nil, false)
			r := c.call(t, "DELETE", "/v1/node/"+l.NodeID(), admin, nil)
			wantError(t, "remove the leader", r, http.StatusConflict, "conflict")
		}
		if got := stateIndex(l); got != before {
			t.Errorf("refused removal moved the state index from %d to %d", before, got)
		}
		if got := raftIDs(t, l); !slices.Equal(got, managerIDs()) {
			t.Errorf("raft configuration %v, want %v", got, managerIDs())
		}
	})

	t.Run("RemoveManager", func(t *testing.T) {
		l, fs := roles(t)
		gone, stay := fs[0], fs[1]
		serial := pki.SerialHex(gone.certs.Leaf())
		// A connection the manager opened to the leader's internal port
		// before its removal (its forwarding pool keeps them).
		pooled := newInternalCaller(t, l.node.RPCAddr(), gone.internalTLS, true)
		if r := pooled.call(t, "GET", "/v1/status/leader", admin, nil); r.status != http.StatusOK {
			t.Fatalf("internal call before removal: %s", r)
		}
		if err := tc.adminClient(t, stay).Nodes().Remove(gone.NodeID()); err != nil {
			t.Fatalf("remove manager: %v", err)
		}
		removed = append(removed, gone)
		if got := raftIDs(t, l); !slices.Equal(got, managerIDs()) {
			t.Errorf("raft configuration after removal %v, want %v", got, managerIDs())
		}
		snap := l.fsm.State().Snapshot()
		if snap.Node(nil, gone.NodeID()) != nil {
			t.Error("removed manager still has a node record")
		}
		if rec := snap.IssuedCert(nil, serial); rec == nil || !rec.Revoked {
			t.Errorf("removed manager's certificate record %+v, want revoked", rec)
		}
		// It keeps running and gossiping, but reconcile must not add it
		// back, and its certificate no longer opens the RPC port.
		l.triggerReconcile()
		time.Sleep(5 * l.cfg.ReconcileInterval)
		if got := raftIDs(t, l); !slices.Equal(got, managerIDs()) {
			t.Errorf("raft configuration after reconcile %v, want %v", got, managerIDs())
		}
		if r, err := internalCall(t, l.node.RPCAddr(), gone.internalTLS, "GET", "/v1/status/leader", admin); err == nil {
			t.Errorf("removed manager reached the leader's internal port: %s", r)
		}
		if err := raftProbe(l.node.RPCAddr(), gone.internalTLS); err == nil {
			t.Error("removed manager got a Raft answer from the leader")
		}
		// Over the pooled connection it must not vouch for anyone either:
		// here it asks for a certificate in the name of the other manager.
		r, err := pooled.try("POST", "/v1/node/renew", "", mustJSON(t, structs.RenewRequest{CSRPEM: string(newCSR(t))}),
			headerFwdNode, stay.NodeID()+"/"+string(structs.RoleManager), headerForwarded, gone.NodeID())
		if err == nil && !pooled.reused {
			t.Fatal("the pooled internal connection was not reused; the test proves nothing")
		}
		if err == nil && r.status != http.StatusUnauthorized {
			t.Errorf("removed manager on a pooled internal connection, renewing as %s: %s, want 401", stay.NodeID(), r)
		}
		// The two left commit writes, also through the follower.
		if err := tc.adminClient(t, stay).Namespaces().Create(structs.NamespaceRequest{Name: "after-removal"}); err != nil {
			t.Errorf("write after removing a manager: %v", err)
		}
	})
}

// waitNode waits until every server in ss has the node in its state.
func waitNode(t testing.TB, ss []*Server, id string) {
	t.Helper()
	for _, s := range ss {
		waitFor(t, 10*time.Second, "node "+id+" to replicate", func() error {
			if s.fsm.State().Snapshot().Node(nil, id) == nil {
				return fmt.Errorf("%s does not know node %s yet", s.NodeID(), id)
			}
			return nil
		})
	}
}

// serfAlive checks that s's gossip sees exactly n members, all alive.
func serfAlive(s *Server, n int) error {
	sf := s.getSerf()
	if sf == nil {
		return errors.New("gossip not started")
	}
	alive := 0
	for _, m := range sf.Members() {
		if m.Status == serf.StatusAlive {
			alive++
		}
	}
	if alive != n || sf.NumNodes() != n {
		return fmt.Errorf("%s sees %d of %d members alive, want %d", s.NodeID(), alive, sf.NumNodes(), n)
	}
	return nil
}

// raftProbe sends a harmless AppendEntries (an old term, no entries) to the
// Raft listener at addr over the RPC port with tc. A nil error means Raft
// answered: the caller reached it.
func raftProbe(addr string, tc *tls.Config) error {
	tcpAddr, err := net.ResolveTCPAddr("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	layer := &raftLayer{chanListener: newChanListener(tcpAddr), clientTLS: tc}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: 1, Timeout: 3 * time.Second, Logger: hclog.NewNullLogger(),
	})
	defer trans.Close()
	var resp raft.AppendEntriesResponse
	return trans.AppendEntries("probe", raft.ServerAddress(addr), &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("probe"), Addr: []byte(addr)},
		Term:      0,
	}, &resp)
}
