package server

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/hivesec/hive/audit"
	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/gossip"
	"github.com/hivesec/hive/structs"
)

func (s *Server) handleJoinCA(_ http.ResponseWriter, _ *http.Request, _ *caller) (any, error) {
	c := s.fsm.State().Snapshot().Cluster(nil)
	if c == nil {
		return nil, errorf(http.StatusServiceUnavailable, "not_ready", "this manager has not caught up with the cluster yet; retry shortly")
	}
	return structs.CAResponse{CACertPEM: string(c.CACertPEM)}, nil
}

// handleJoin admits a node. It runs on the leader: the token use, the node
// record and the certificate serial are committed in one Raft entry.
func (s *Server) handleJoin(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	c.event, c.resource, c.action = audit.EventNodeJoin, "node", "create"
	var req structs.JoinRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	ip := net.ParseIP(req.Address)
	if ip == nil || ip.IsUnspecified() {
		return nil, badRequest("invalid node address %q: give the IP other nodes reach it at (--advertise)", req.Address)
	}
	for _, p := range []int{req.APIPort, req.RPCPort, req.SerfPort} {
		if p < 0 || p > 65535 {
			return nil, badRequest("invalid port %d: use 1-65535", p)
		}
	}
	if req.SerfPort == 0 {
		return nil, badRequest("serf port is required")
	}
	if req.Name == "" || len(req.Name) > 253 {
		return nil, badRequest("node name must be 1-253 characters")
	}
	if req.NodeID != "" {
		if _, err := uuid.Parse(req.NodeID); err != nil {
			return nil, badRequest("invalid node ID %q: it must be a UUID", req.NodeID)
		}
	}
	jt, err := pki.ParseJoinToken(req.Token)
	if err != nil {
		return nil, errorf(http.StatusUnauthorized, "invalid_token", "%v", err)
	}
	snap := s.fsm.State().Snapshot()
	cluster := snap.Cluster(nil)
	if cluster == nil {
		return nil, errorf(http.StatusServiceUnavailable, "not_ready", "cluster is not initialised yet")
	}
	ca, err := s.unsealCA()
	if err != nil {
		return nil, errorf(http.StatusServiceUnavailable, "sealed", "this manager cannot sign certificates: %v", err)
	}
	if jt.Pin != ca.Pin() {
		return nil, errorf(http.StatusUnauthorized, "invalid_token", "join token pins CA %s but this cluster's CA is %s; the token is for another cluster", jt.Pin, ca.Pin())
	}
	// Compare against every token in constant time; the set is small and
	// the answer must not depend on where a guess stops matching.
	var tok *structs.JoinToken
	for _, t := range snap.JoinTokens(nil) {
		if pki.SecretMatches(t.SecretHash, jt.Secret) {
			tok = t
		}
	}
	now := time.Now().UTC()
	if tok == nil {
		return nil, errorf(http.StatusUnauthorized, "invalid_token", "join token is not valid for this cluster (unknown secret)")
	}
	if err := tok.Usable(now); err != nil {
		return nil, errorf(http.StatusUnauthorized, "invalid_token", "%v", err)
	}
	if tok.Role == structs.RoleManager && (req.APIPort == 0 || req.RPCPort == 0) {
		return nil, badRequest("a manager must give its API and RPC ports")
	}
	nodeID := req.NodeID
	if nodeID != "" {
		old := snap.Node(nil, nodeID)
		if old != nil && old.Role != tok.Role {
			return nil, errorf(http.StatusConflict, "conflict", "node %s is a %s; a %s token cannot change its role", nodeID, old.Role, tok.Role)
		}
		// Rejoining under a known ID is for a node whose certificate expired
		// while it was offline. While the ID still has a valid certificate,
		// a token holder must not be able to take it over: the running node
		// renews its own certificate instead.
		if old != nil && now.Before(old.CertExpiry) {
			return nil, errorf(http.StatusConflict, "conflict", "node %s holds a certificate valid until %s; only a node whose certificate expired can rejoin under its ID (a running node renews by itself)", nodeID, old.CertExpiry.UTC().Format(time.RFC3339))
		}
	} else {
		nodeID = uuid.NewString()
	}
	certPEM, cert, err := ca.SignCSR([]byte(req.CSRPEM), nodeID, tok.Role, []net.IP{ip}, s.cfg.CertLifetime, now)
	if err != nil {
		return nil, badRequest("certificate request refused: %v", err)
	}
	node := structs.Node{
		ID: nodeID, Name: req.Name, Role: tok.Role, Address: ip.String(),
		APIPort: req.APIPort, RPCPort: req.RPCPort, SerfPort: req.SerfPort,
		Status: initialStatus(tok.Role), CertSerial: pki.SerialHex(cert), CertExpiry: cert.NotAfter,
		JoinedAt: now, UpdatedAt: now,
	}
	issued := structs.IssuedCert{Serial: pki.SerialHex(cert), NodeID: nodeID, Role: tok.Role, NotAfter: cert.NotAfter, IssuedAt: now}
	if _, err := s.apply(fsm.NodeRegisterType, &fsm.NodeRegisterRequest{TokenID: tok.ID, Node: node, Cert: issued, Now: now}); err != nil {
		return nil, err
	}
	keys, err := s.gossipKeys()
	if err != nil {
		return nil, err
	}
	resp := &structs.JoinResponse{
		ClusterID: cluster.ClusterID, NodeID: nodeID, Role: tok.Role,
		CertPEM: string(certPEM), CACertPEM: string(cluster.CACertPEM), GossipKeys: keys,
		Managers: s.managerAddrs(),
	}
	if tok.Role == structs.RoleManager {
		resp.UnsealKey = s.roots.unsealKey()
		if resp.UnsealKey == nil {
			return nil, errorf(http.StatusServiceUnavailable, "sealed", "%v", ErrKeyringSealed)
		}
		resp.Autolock = cluster.Autolock
	}
	s.logger.Info("node joined", "id", nodeID, "role", tok.Role, "address", ip, "token", tok.ID)
	c.name, c.reason = nodeID, fmt.Sprintf("%s %q joined from %s with join token %s", tok.Role, req.Name, ip, tok.ID)
	return resp, nil
}

func (s *Server) managerAddrs() []structs.PeerAddrs {
	var out []structs.PeerAddrs
	for _, n := range s.fsm.State().Snapshot().Nodes(nil) {
		if n.Role == structs.RoleManager {
			out = append(out, structs.PeerAddrs{ID: n.ID, APIAddr: n.APIAddr(), RPCAddr: n.RPCAddr(), SerfAddr: n.SerfAddr()})
		}
	}
	return out
}

// handleRenew signs a fresh certificate for the calling node, keeping its
// identity: the current certificate authenticated the call.
func (s *Server) handleRenew(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	var req structs.RenewRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	n := s.fsm.State().Snapshot().Node(nil, c.nodeID)
	if n == nil {
		return nil, errorf(http.StatusForbidden, "forbidden", "node %s is not a member of the cluster; rejoin with a join token", c.nodeID)
	}
	ca, err := s.unsealCA()
	if err != nil {
		return nil, errorf(http.StatusServiceUnavailable, "sealed", "this manager cannot sign certificates: %v", err)
	}
	now := time.Now().UTC()
	certPEM, cert, err := ca.SignCSR([]byte(req.CSRPEM), n.ID, n.Role, []net.IP{net.ParseIP(n.Address)}, s.cfg.CertLifetime, now)
	if err != nil {
		return nil, badRequest("certificate request refused: %v", err)
	}
	issued := structs.IssuedCert{Serial: pki.SerialHex(cert), NodeID: n.ID, Role: n.Role, NotAfter: cert.NotAfter, IssuedAt: now}
	if _, err := s.apply(fsm.CertIssuedType, &fsm.CertIssuedRequest{Cert: issued, Now: now}); err != nil {
		return nil, err
	}
	return structs.RenewResponse{CertPEM: string(certPEM)}, nil
}

func (s *Server) handleGossipKeys(_ http.ResponseWriter, _ *http.Request, c *caller) (any, error) {
	if s.fsm.State().Snapshot().Node(nil, c.nodeID) == nil {
		return nil, errorf(http.StatusForbidden, "forbidden", "node %s is not a member of the cluster", c.nodeID)
	}
	keys, err := s.gossipKeys()
	if err != nil {
		return nil, errorf(http.StatusServiceUnavailable, "not_ready", "%v", err)
	}
	return structs.GossipKeysResponse{Keys: keys}, nil
}

// handleGossipRotate installs a new gossip key on every member, switches to
// it, records it in Raft, then removes the old key.
func (s *Server) handleGossipRotate(_ http.ResponseWriter, _ *http.Request, _ *caller) (any, error) {
	sf := s.getSerf()
	if sf == nil {
		return nil, errorf(http.StatusServiceUnavailable, "not_ready", "gossip is not running on the leader yet; retry shortly")
	}
	cluster := s.fsm.State().Snapshot().Cluster(nil)
	old, err := s.gossipKeys()
	if err != nil {
		return nil, err
	}
	key := make([]byte, gossip.KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	km := sf.KeyManager()
	enc := encodeKey(key)
	// Order matters: every member learns the new key, then Raft records it
	// (new first, old still accepted), and only then do members switch to
	// it. If the Raft write fails nobody uses a key the state lacks, and a
	// node that restarts mid-rotation can talk with either key.
	if resp, err := km.InstallKey(enc); err != nil {
		return nil, errorf(http.StatusServiceUnavailable, "gossip_rotate", "install new gossip key: %v (%d of %d members answered); retry when every node is reachable", err, resp.NumResp, resp.NumNodes)
	}
	if err := s.recordGossipKeys(cluster.ClusterID, append([][]byte{key}, old...)); err != nil {
		return nil, err
	}
	if resp, err := km.UseKey(enc); err != nil {
		return nil, errorf(http.StatusServiceUnavailable, "gossip_rotate", "switch to new gossip key: %v (%d of %d members answered); run the rotation again", err, resp.NumResp, resp.NumNodes)
	}
	for _, k := range old {
		if _, err := km.RemoveKey(encodeKey(k)); err != nil {
			s.logger.Warn("could not remove old gossip key from every member", "error", err)
		}
	}
	if err := s.recordGossipKeys(cluster.ClusterID, [][]byte{key}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *Server) recordGossipKeys(clusterID string, keys [][]byte) error {
	unseal := s.roots.unsealKey()
	if unseal == nil {
		return ErrKeyringSealed
	}
	sealed, err := sealGossipKeys(unseal, clusterID, keys)
	if err != nil {
		return err
	}
	_, err = s.apply(fsm.GossipKeysType, &fsm.GossipKeysRequest{Sealed: sealed, Now: time.Now().UTC()})
	return err
}

// initialStatus is a joining node's status: a worker is initializing until
// its agent registers (it cannot serve logs or images before that).
func initialStatus(r structs.Role) string {
	if r == structs.RoleWorker {
		return structs.NodeStatusInitializing
	}
	return structs.NodeStatusReady
}
