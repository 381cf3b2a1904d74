package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"

	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

func (s *Server) handleLeader(_ http.ResponseWriter, _ *http.Request, _ *caller) (any, error) {
	addr, id := s.raft.LeaderWithID()
	if id == "" {
		return nil, errorf(http.StatusServiceUnavailable, "no_leader", "%s", ErrNoLeader)
	}
	return structs.LeaderResponse{LeaderID: string(id), LeaderAddr: string(addr)}, nil
}

func (s *Server) nodePublic(n *structs.Node) structs.NodePublic {
	p := n.Public()
	_, id := s.raft.LeaderWithID()
	p.Leader = string(id) == n.ID
	return p
}

func (s *Server) handleNodes(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		out := []structs.NodePublic{}
		for _, n := range snap.Nodes(ws) {
			out = append(out, s.nodePublic(n))
		}
		return out, snap.Index(state.TableNodes), nil
	})
}

func (s *Server) handleNode(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	return s.nodeByID(w, r, r.PathValue("id"))
}

func (s *Server) handleNodeSelf(w http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	return s.nodeByID(w, r, c.nodeID)
}

func (s *Server) nodeByID(w http.ResponseWriter, r *http.Request, id string) (any, error) {
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		n := snap.Node(ws, id)
		if n == nil {
			return nil, 0, notFound("node %q not found; list nodes with `hive node ls`", id)
		}
		return s.nodePublic(n), snap.Index(state.TableNodes), nil
	})
}

func (s *Server) handleNodeRemove(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	id := r.PathValue("id")
	n := s.fsm.State().Snapshot().Node(nil, id)
	if n == nil {
		return nil, notFound("node %q not found; list nodes with `hive node ls`", id)
	}
	if id == s.node.ID {
		return nil, errorf(http.StatusConflict, "conflict", "node %s is the current leader and cannot remove itself; stop it or remove it from another leader", id)
	}
	if _, err := s.apply(fsm.NodeRemoveType, &fsm.NodeRemoveRequest{NodeID: id, Now: time.Now().UTC()}); err != nil {
		return nil, err
	}
	if n.Role == structs.RoleManager {
		if err := s.raft.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error(); err != nil {
			return nil, fmt.Errorf("node %s removed and its certificates revoked, but removing it from raft failed: %w", id, err)
		}
	}
	if sf := s.getSerf(); sf != nil {
		// Only works once the member is failed; a live removed node keeps
		// gossiping but its certificate no longer opens any door. On a live
		// member the prune is refuted at once and the call only blocks for
		// Serf's broadcast timeout (5s), so it is skipped then.
		for _, m := range sf.Members() {
			if m.Name == id && m.Status != serf.StatusAlive {
				_ = sf.RemoveFailedNodePrune(id)
			}
		}
	}
	s.logger.Info("node removed", "id", id, "role", n.Role)
	return struct{}{}, nil
}

func (s *Server) handleRaftPeers(_ http.ResponseWriter, _ *http.Request, _ *caller) (any, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	_, leader := s.raft.LeaderWithID()
	out := []structs.RaftPeer{}
	for _, srv := range f.Configuration().Servers {
		out = append(out, structs.RaftPeer{
			ID: string(srv.ID), Address: string(srv.Address),
			Voter: srv.Suffrage == raft.Voter, Leader: srv.ID == leader,
		})
	}
	return out, nil
}

func (s *Server) handleNamespaces(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		out := []*structs.Namespace{}
		out = append(out, snap.Namespaces(ws)...)
		return out, snap.Index(state.TableNamespaces), nil
	})
}

func (s *Server) handleNamespace(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	name := r.PathValue("name")
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		ns := snap.Namespace(ws, name)
		if ns == nil {
			return nil, 0, notFound("namespace %q not found", name)
		}
		return ns, snap.Index(state.TableNamespaces), nil
	})
}

func (s *Server) handleNamespaceCreate(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	name := r.PathValue("name")
	var req structs.NamespaceRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
	}
	if req.Name != "" && req.Name != name {
		return nil, badRequest("namespace name in the body (%q) differs from the one in the path (%q)", req.Name, name)
	}
	if err := structs.ValidateName("namespace", name); err != nil {
		return nil, badRequest("%v", err)
	}
	if len(req.Description) > 1024 {
		return nil, badRequest("namespace description is %d bytes; the limit is 1024", len(req.Description))
	}
	if err := structs.ValidateLabels(req.Labels); err != nil {
		return nil, badRequest("labels: %v", err)
	}
	ns := structs.Namespace{Name: name, Description: req.Description, AllowPrivileged: req.AllowPrivileged,
		Labels: req.Labels, Isolation: req.Isolation, CreatedAt: time.Now().UTC()}
	if _, err := s.apply(fsm.NamespaceUpsertType, &fsm.NamespaceUpsertRequest{Namespace: ns, Create: true}); err != nil {
		return nil, err
	}
	return s.fsm.State().Snapshot().Namespace(nil, name), nil
}

func (s *Server) handleNamespaceDelete(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	name := r.PathValue("name")
	if _, err := s.apply(fsm.NamespaceDeleteType, &fsm.NamespaceDeleteRequest{Name: name}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *Server) handleJoinTokens(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		out := []structs.JoinTokenPublic{}
		for _, t := range snap.JoinTokens(ws) {
			out = append(out, t.Public())
		}
		return out, snap.Index(state.TableJoinTokens), nil
	})
}

// newJoinToken makes a token record and its secret string.
func (s *Server) newJoinToken(role structs.Role, ttl time.Duration, uses int, desc string, isDefault bool, now time.Time) (*structs.JoinToken, string, error) {
	ca := s.fsm.State().Snapshot().Cluster(nil)
	if ca == nil {
		return nil, "", errorf(http.StatusServiceUnavailable, "not_ready", "cluster is not initialised yet")
	}
	cert, err := pki.ParseCertPEM(ca.CACertPEM)
	if err != nil {
		return nil, "", err
	}
	return makeJoinToken(pki.Fingerprint(cert.Raw), role, ttl, uses, desc, isDefault, now)
}

func makeJoinToken(pin string, role structs.Role, ttl time.Duration, uses int, desc string, isDefault bool, now time.Time) (*structs.JoinToken, string, error) {
	secret, err := pki.NewJoinSecret()
	if err != nil {
		return nil, "", err
	}
	var idb [4]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, "", err
	}
	t := &structs.JoinToken{
		ID: hex.EncodeToString(idb[:]), Role: role, SecretHash: pki.HashSecret(secret),
		Description: desc, Default: isDefault, CreatedAt: now, MaxUses: uses,
	}
	if ttl > 0 {
		t.ExpiresAt = now.Add(ttl)
	}
	return t, pki.FormatJoinToken(pin, secret), nil
}

func (s *Server) handleJoinTokenCreate(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	var req structs.JoinTokenCreateRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if !req.Role.Valid() {
		return nil, badRequest("invalid role %q: use worker or manager", req.Role)
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return nil, badRequest("invalid ttl %q: use a positive duration such as 1h", req.TTL)
		}
		ttl = d
	}
	if req.MaxUses < 0 {
		return nil, badRequest("invalid uses %d: use 0 (unlimited) or a positive number", req.MaxUses)
	}
	if len(req.Description) > 1024 {
		return nil, badRequest("description is %d bytes; the limit is 1024", len(req.Description))
	}
	now := time.Now().UTC()
	tok, secret, err := s.newJoinToken(req.Role, ttl, req.MaxUses, req.Description, false, now)
	if err != nil {
		return nil, err
	}
	if _, err := s.apply(fsm.JoinTokenWriteType, &fsm.JoinTokenWriteRequest{Create: []structs.JoinToken{*tok}, Now: now}); err != nil {
		return nil, err
	}
	return structs.JoinTokenCreateResponse{Token: secret, Info: tok.Public()}, nil
}

func (s *Server) handleJoinTokenRevoke(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	id := r.PathValue("id")
	if s.fsm.State().Snapshot().JoinToken(nil, id) == nil {
		return nil, notFound("join token %q not found; list them with `hive join-token ls`", id)
	}
	if _, err := s.apply(fsm.JoinTokenWriteType, &fsm.JoinTokenWriteRequest{Revoke: []string{id}, Now: time.Now().UTC()}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// handleJoinTokenRotate replaces the default token of a role: the old one is
// revoked and a new one issued in the same Raft entry.
func (s *Server) handleJoinTokenRotate(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	role := structs.Role(r.PathValue("role"))
	if !role.Valid() {
		return nil, badRequest("invalid role %q: use worker or manager", role)
	}
	now := time.Now().UTC()
	var old *structs.JoinToken
	var revoke []string
	for _, t := range s.fsm.State().Snapshot().JoinTokens(nil) {
		if t.Role == role && t.Default && !t.Revoked {
			old = t
			revoke = append(revoke, t.ID)
		}
	}
	tok, secret, err := s.newJoinToken(role, 0, 0, "default "+string(role)+" join token", true, now)
	if err != nil {
		return nil, err
	}
	if _, err := s.apply(fsm.JoinTokenWriteType, &fsm.JoinTokenWriteRequest{Create: []structs.JoinToken{*tok}, Revoke: revoke, Now: now}); err != nil {
		return nil, err
	}
	resp := structs.JoinTokenCreateResponse{Token: secret, Info: tok.Public()}
	if old != nil {
		p := old.Public()
		p.Revoked, p.Default = true, false
		resp.Old = &p
	}
	return resp, nil
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		out := []*structs.Event{}
		out = append(out, snap.Events(ws)...)
		return out, snap.Index(state.TableEvents), nil
	})
}
