package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/crypto/keyring"
	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/structs"
)

// Unseal-key rotation. The unseal key never enters Raft, so a new one has
// to reach every manager another way, and before the state needs it: the
// leader first hands the new key to every manager over mutual TLS (each
// keeps it as "next", in memory and, unless the cluster is autolocked, in
// keystore/unseal.key.next), and only when all have it commits the
// re-wrapped CA key, gossip keys and root keys in one entry. Each manager
// switches to its next key when it sees that entry. A rotation that fails
// half way changes nothing: a next key nobody needs is simply ignored.

// unsealKeyID names a key without revealing it.
func unsealKeyID(key []byte) string {
	sum := sha256.Sum256(append([]byte("hive-unseal-id/"), key...))
	return hex.EncodeToString(sum[:8])
}

func nextUnsealPath(dataDir string) string { return UnsealKeyPath(dataDir) + ".next" }

// unsealNextRequest carries a new unseal key between managers.
type unsealNextRequest struct {
	Key []byte `json:"key"`
}

func (s *Server) autolocked() bool {
	c := s.fsm.State().Snapshot().Cluster(nil)
	return c != nil && c.Autolock
}

// setNextUnseal keeps a key this manager may soon need.
func (s *Server) setNextUnseal(key []byte) error {
	if !s.autolocked() {
		if err := keyring.WriteKeyFile(nextUnsealPath(s.cfg.DataDir), key); err != nil {
			return err
		}
	}
	s.roots.mu.Lock()
	s.roots.next = key
	s.roots.mu.Unlock()
	return nil
}

// handleUnsealNext receives the next unseal key from the leader.
func (s *Server) handleUnsealNext(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	if c.nodeRole != structs.RoleManager {
		return nil, errorf(http.StatusForbidden, "forbidden", "only managers exchange unseal keys")
	}
	var req unsealNextRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if len(req.Key) != keyring.KeySize {
		return nil, badRequest("an unseal key is %d bytes", keyring.KeySize)
	}
	if err := s.setNextUnseal(req.Key); err != nil {
		return nil, err
	}
	c.reason = "next unseal key " + unsealKeyID(req.Key) + " received"
	return struct{}{}, nil
}

// handleRotateUnseal re-wraps everything the unseal key seals under a new
// one (leader).
func (s *Server) handleRotateUnseal(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	old := s.roots.unsealKey()
	if old == nil {
		return nil, errorf(http.StatusServiceUnavailable, "sealed", "%v", ErrKeyringSealed)
	}
	snap := s.fsm.State().Snapshot()
	cl := snap.Cluster(nil)
	if cl == nil {
		return nil, errorf(http.StatusServiceUnavailable, "not_ready", "cluster state not loaded yet")
	}
	next, err := keyring.NewKey()
	if err != nil {
		return nil, err
	}
	id := unsealKeyID(next)
	// Phase one: every manager holds the new key before anything needs it.
	managers := 0
	var failed []string
	for _, n := range snap.Nodes(nil) {
		if n.Role != structs.RoleManager {
			continue
		}
		managers++
		if n.ID == s.node.ID {
			if err := s.setNextUnseal(next); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", n.ID, err))
			}
			continue
		}
		if err := s.sendNextUnseal(r.Context(), n, next); err != nil {
			failed = append(failed, fmt.Sprintf("%s (%s): %v", n.Name, n.ID, err))
		}
	}
	if len(failed) > 0 {
		return nil, errorf(http.StatusServiceUnavailable, "unavailable", "unseal key not rotated: every manager must take the new key first, and these did not: %s; bring them back or remove them, then retry", strings.Join(failed, "; "))
	}
	// Phase two: re-seal and commit in one entry.
	req := &fsm.UnsealRotateRequest{UnsealKeyID: id, Now: time.Now().UTC()}
	ca, err := keyring.Open(old, cl.CAKeySealed, caKeyAAD(cl.ClusterID))
	if err != nil {
		return nil, fmt.Errorf("open CA key: %w", err)
	}
	req.CAKeySealed, err = keyring.Seal(next, ca, caKeyAAD(cl.ClusterID))
	clear(ca)
	if err != nil {
		return nil, err
	}
	gk, err := keyring.Open(old, cl.GossipKeysSealed, gossipKeyAAD(cl.ClusterID))
	if err != nil {
		return nil, fmt.Errorf("open gossip keys: %w", err)
	}
	req.GossipKeysSealed, err = keyring.Seal(next, gk, gossipKeyAAD(cl.ClusterID))
	clear(gk)
	if err != nil {
		return nil, err
	}
	for _, rk := range snap.RootKeys(nil) {
		w, err := keyring.RewrapRootKey(toKeyringRoot(rk), old, next)
		if err != nil {
			return nil, fmt.Errorf("re-wrap root key %s: %w", rk.ID, err)
		}
		cp := *rk
		cp.WrappedKey = w.WrappedKey
		req.RootKeys = append(req.RootKeys, &cp)
	}
	if _, err := s.apply(fsm.UnsealRotateType, req); err != nil {
		return nil, err
	}
	s.promoteUnseal()
	c.reason = fmt.Sprintf("unseal key rotated to %s on %d managers", id, managers)
	out := &structs.UnsealRotateResponse{KeyID: id, Managers: managers}
	if cl.Autolock {
		out.UnlockKey = EncodeUnlockKey(next)
	}
	return out, nil
}

// sendNextUnseal gives manager n the next unseal key over mutual TLS.
func (s *Server) sendNextUnseal(ctx context.Context, n *structs.Node, key []byte) error {
	body, _ := json.Marshal(unsealNextRequest{Key: key})
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "https://"+n.RPCAddr()+"/v1/internal/unseal-key/next", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headerFwdNode, s.node.ID+"/"+string(structs.RoleManager))
	resp, err := s.forwarder.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

// promoteUnseal switches to the next unseal key once the state needs it.
func (s *Server) promoteUnseal() {
	cl := s.fsm.State().Snapshot().Cluster(nil)
	if cl == nil || cl.UnsealKeyID == "" {
		return
	}
	s.roots.mu.Lock()
	cur, next := s.roots.unseal, s.roots.next
	s.roots.mu.Unlock()
	if cur != nil && unsealKeyID(cur) == cl.UnsealKeyID {
		return
	}
	if next == nil || unsealKeyID(next) != cl.UnsealKeyID {
		if cur != nil {
			s.logger.Error("the cluster's unseal key was rotated but this manager never received the new one; it can no longer read secrets or sign certificates: unlock it with the new key (hive operator unlock)", "key_id", cl.UnsealKeyID)
			s.roots.setUnseal(nil)
		}
		return
	}
	if !cl.Autolock {
		if err := keyring.WriteKeyFile(UnsealKeyPath(s.cfg.DataDir), next); err != nil {
			s.logger.Error("cannot store the new unseal key", "error", err)
			return
		}
		if err := os.Remove(nextUnsealPath(s.cfg.DataDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.logger.Warn("cannot remove the used next-key file", "error", err)
		}
	}
	s.roots.setUnseal(next)
	s.roots.mu.Lock()
	s.roots.next = nil
	s.roots.mu.Unlock()
	s.caMu.Lock()
	s.ca = nil
	s.caMu.Unlock()
	s.logger.Info("switched to the rotated unseal key", "key_id", cl.UnsealKeyID)
}

// watchUnseal promotes the next unseal key when a rotation commits, on
// every manager.
func (s *Server) watchUnseal() {
	if b, err := keyring.ReadKeyFile(nextUnsealPath(s.cfg.DataDir)); err == nil {
		s.roots.mu.Lock()
		s.roots.next = b
		s.roots.mu.Unlock()
	}
	for {
		store := s.fsm.State()
		ws := memdb.NewWatchSet()
		store.Snapshot().Cluster(ws)
		s.promoteUnseal()
		ws.Add(store.AbandonCh())
		ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
		_ = ws.WatchCtx(ctx)
		cancel()
		if s.ctx.Err() != nil {
			return
		}
	}
}
