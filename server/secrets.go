package server

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/crypto/keyring"
	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// Secrets: values are encrypted on the manager that handles the write (the
// leader) and decrypted on the manager that answers a read, each with the
// root keys it unwraps with its unseal key and keeps only in memory.

// rootKeys caches unwrapped root keys. With no unseal key (an autolocked
// manager not yet unlocked) it is sealed: no secret is read or written.
type rootKeys struct {
	mu     sync.Mutex
	unseal []byte
	// next is a rotated unseal key received but not yet needed.
	next []byte
	keys map[string][]byte
	// createMu serializes creating the first root key on the leader.
	createMu sync.Mutex
}

// ErrKeyringSealed is returned while the manager has no unseal key.
var ErrKeyringSealed = errors.New("this manager's keyring is locked: unlock it with `hive operator unlock` before reading or writing secrets")

func (k *rootKeys) setUnseal(key []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.unseal = key
	k.keys = map[string][]byte{}
}

// unsealKey returns the unseal key, or nil while locked.
func (k *rootKeys) unsealKey() []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.unseal
}

func (k *rootKeys) sealed() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.unseal == nil
}

// key returns root key id, unwrapping it from state on first use.
func (k *rootKeys) key(snap *state.Snapshot, id string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.unseal == nil {
		return nil, ErrKeyringSealed
	}
	if b, ok := k.keys[id]; ok {
		return b, nil
	}
	rk := snap.RootKey(nil, id)
	if rk == nil {
		return nil, fmt.Errorf("root key %s is not in the state store: %w", id, keyring.ErrUnknownKey)
	}
	b, err := toKeyringRoot(rk).Unwrap(k.unseal)
	if err != nil {
		return nil, fmt.Errorf("unwrap root key %s: %w", id, err)
	}
	k.keys[id] = b
	return b, nil
}

func toKeyringRoot(rk *structs.RootKey) *keyring.RootKey {
	return &keyring.RootKey{ID: rk.ID, WrappedKey: rk.WrappedKey, CreatedAt: rk.CreatedAt, State: rk.State}
}

// activeRootKey returns the active root key, creating the cluster's first
// one if there is none (leader only: writes go through Raft).
func (s *Server) activeRootKey() (string, []byte, error) {
	find := func() (string, []byte, error, bool) {
		snap := s.fsm.State().Snapshot()
		for _, rk := range snap.RootKeys(nil) {
			if rk.State == structs.RootKeyActive {
				b, err := s.roots.key(snap, rk.ID)
				return rk.ID, b, err, true
			}
		}
		return "", nil, nil, false
	}
	if id, b, err, ok := find(); ok {
		return id, b, err
	}
	s.roots.createMu.Lock()
	defer s.roots.createMu.Unlock()
	if id, b, err, ok := find(); ok {
		return id, b, err
	}
	if s.roots.sealed() {
		return "", nil, ErrKeyringSealed
	}
	if _, err := s.newRootKey(nil); err != nil {
		return "", nil, err
	}
	id, b, err, _ := find()
	return id, b, err
}

// newRootKey writes a new active root key, demoting the current one to
// rotating (re-wrapped away from in the background).
func (s *Server) newRootKey(old *structs.RootKey) (*structs.RootKey, error) {
	s.roots.mu.Lock()
	unseal := s.roots.unseal
	s.roots.mu.Unlock()
	if unseal == nil {
		return nil, ErrKeyringSealed
	}
	now := time.Now().UTC()
	kr, _, err := keyring.NewRootKey(unseal, now)
	if err != nil {
		return nil, err
	}
	rk := &structs.RootKey{ID: kr.ID, WrappedKey: kr.WrappedKey, State: structs.RootKeyActive, CreatedAt: now}
	req := &fsm.SecretWriteRequest{RootKeys: []*structs.RootKey{rk}, Now: now}
	if old != nil {
		cp := *old
		cp.State = structs.RootKeyRotating
		req.RootKeys = append(req.RootKeys, &cp)
	}
	if _, err := s.apply(fsm.SecretWriteType, req); err != nil {
		return nil, err
	}
	return rk, nil
}

func secretID(sec *structs.Secret, v uint64) keyring.SecretID {
	return keyring.SecretID{Namespace: sec.Namespace, Name: sec.Name, Version: v}
}

// encryptVersion seals data as version v of sec.
func (s *Server) encryptVersion(sec *structs.Secret, v uint64, data map[string]string, now time.Time) (*structs.SecretVersion, error) {
	id, key, err := s.activeRootKey()
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	env, err := keyring.EncryptValue(id, key, secretID(sec, v), plain)
	clear(plain)
	if err != nil {
		return nil, err
	}
	return &structs.SecretVersion{Version: v, Keys: slices.Sorted(maps.Keys(data)), RootKeyID: env.RootKeyID,
		WrappedDataKey: env.WrappedDataKey, Ciphertext: env.Ciphertext, CreatedAt: now}, nil
}

// decryptVersion opens version v of sec.
func (s *Server) decryptVersion(snap *state.Snapshot, sec *structs.Secret, v *structs.SecretVersion) (map[string]string, error) {
	env := &keyring.Envelope{RootKeyID: v.RootKeyID, WrappedDataKey: v.WrappedDataKey, Ciphertext: v.Ciphertext}
	var keyErr error
	plain, err := keyring.DecryptValue(env, func(id string) ([]byte, bool) {
		b, err := s.roots.key(snap, id)
		if err != nil {
			keyErr = err
			return nil, false
		}
		return b, true
	}, secretID(sec, v.Version))
	if keyErr != nil {
		return nil, keyErr
	}
	if err != nil {
		return nil, fmt.Errorf("decrypt secret %s/%s version %d: %w", sec.Namespace, sec.Name, v.Version, err)
	}
	out := map[string]string{}
	err = json.Unmarshal(plain, &out)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s version %d: bad plaintext: %w", sec.Namespace, sec.Name, v.Version, err)
	}
	return out, nil
}

const generateAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// generateValue returns n random characters from a 62-letter alphabet
// (~5.95 bits each).
func generateValue(n int) (string, error) {
	b := make([]byte, n)
	max := big.NewInt(int64(len(generateAlphabet)))
	for i := range b {
		j, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		b[i] = generateAlphabet[j.Int64()]
	}
	return string(b), nil
}

func secretInfo(sec *structs.Secret, withVersions bool) structs.SecretInfo {
	info := structs.SecretInfo{Namespace: sec.Namespace, Name: sec.Name, Description: sec.Description, Labels: sec.Labels,
		Version: sec.Version, Keys: []string{}, ExpiresAt: sec.ExpiresAt, RotationDueAt: sec.RotationDueAt,
		Generated: slices.Sorted(maps.Keys(sec.Generate)), CreatedAt: sec.CreatedAt, UpdatedAt: sec.UpdatedAt}
	if sec.RotationPeriod > 0 {
		info.RotationPeriod = sec.RotationPeriod.String()
	}
	if cur := sec.Current(); cur != nil {
		info.Keys = cur.Keys
	}
	if withVersions {
		for _, v := range sec.Versions {
			info.Versions = append(info.Versions, structs.SecretVersionInfo{Version: v.Version, Keys: v.Keys, RootKeyID: v.RootKeyID, CreatedAt: v.CreatedAt})
		}
	}
	return info
}

// buildData checks and assembles one version's values.
func buildData(req *structs.SecretRequest, gen map[string]int) (map[string]string, error) {
	data := map[string]string{}
	size := 0
	for k, v := range req.Data {
		if err := structs.ValidateSecretKey(k); err != nil {
			return nil, badRequest("%v", err)
		}
		data[k] = v
		size += len(k) + len(v)
	}
	for k, n := range gen {
		if err := structs.ValidateSecretKey(k); err != nil {
			return nil, badRequest("%v", err)
		}
		if n < 8 || n > 4096 {
			return nil, badRequest("--generate %s=%d: length must be 8-4096", k, n)
		}
		if _, dup := req.Data[k]; dup {
			return nil, badRequest("key %q is both given and generated", k)
		}
		v, err := generateValue(n)
		if err != nil {
			return nil, err
		}
		data[k] = v
		size += len(k) + n
	}
	if len(data) == 0 {
		return nil, badRequest("a secret needs at least one key: use --from-literal K=V, --from-file K=PATH or --generate K=LEN")
	}
	if size > structs.MaxSecretSize {
		return nil, errorf(http.StatusRequestEntityTooLarge, "too_large", "secret values take %d bytes; the limit is %d (1 MiB)", size, structs.MaxSecretSize)
	}
	return data, nil
}

func parseOptDuration(what, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, badRequest("invalid %s %q: use a positive duration such as 24h or 720h", what, s)
	}
	return d, nil
}

// putVersion adds a version holding data to sec (nil: a new secret) and
// commits it, guarded by the index it was read at.
func (s *Server) putVersion(ns, name string, old *structs.Secret, req *structs.SecretRequest, data map[string]string, now time.Time) (*structs.Secret, error) {
	var sec structs.Secret
	var expect uint64
	if old != nil {
		sec = *old
		sec.Versions = slices.Clone(old.Versions)
		expect = old.ModifyIndex
	} else {
		sec = structs.Secret{Namespace: ns, Name: name, CreatedAt: now}
	}
	if req != nil {
		if req.Description != "" {
			sec.Description = req.Description
		}
		if req.Labels != nil {
			sec.Labels = req.Labels
		}
		if req.MaxVersions < 0 || req.MaxVersions > 100 {
			return nil, badRequest("max_versions must be 1-100")
		} else if req.MaxVersions > 0 {
			sec.MaxVersions = req.MaxVersions
		}
		exp, err := parseOptDuration("expires", req.Expires)
		if err != nil {
			return nil, err
		}
		if exp > 0 {
			sec.ExpiresAt = now.Add(exp)
		}
		rot, err := parseOptDuration("rotation_period", req.RotationPeriod)
		if err != nil {
			return nil, err
		}
		if rot > 0 {
			sec.RotationPeriod = rot
		}
		if len(req.Generate) > 0 {
			sec.Generate = req.Generate
		}
	}
	if sec.RotationPeriod > 0 {
		sec.RotationDueAt = now.Add(sec.RotationPeriod)
	}
	next := sec.Version + 1
	v, err := s.encryptVersion(&sec, next, data, now)
	if err != nil {
		return nil, err
	}
	sec.Versions = append(sec.Versions, v)
	sec.Version, sec.UpdatedAt = next, now
	max := sec.MaxVersions
	if max == 0 {
		max = structs.DefaultSecretVersions
	}
	if len(sec.Versions) > max {
		sec.Versions = sec.Versions[len(sec.Versions)-max:]
	}
	if _, err := s.apply(fsm.SecretWriteType, &fsm.SecretWriteRequest{Secrets: []*fsm.SecretPut{{Secret: &sec, ExpectIndex: expect}}, Now: now}); err != nil {
		return nil, err
	}
	return s.fsm.State().Snapshot().Secret(nil, ns, name), nil
}

func (s *Server) handleSecrets(w http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	ns := r.URL.Query().Get("namespace")
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		out := []structs.SecretInfo{}
		for _, sec := range snap.Secrets(ws, ns) {
			out = append(out, secretInfo(sec, false))
		}
		return out, snap.Index(state.TableSecrets), nil
	})
}

func (s *Server) handleSecret(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	sec := s.fsm.State().Snapshot().Secret(nil, namespaceParam(r), r.PathValue("name"))
	if sec == nil {
		return nil, notFound("secret %s/%s not found; list them with `hive secret ls`", namespaceParam(r), r.PathValue("name"))
	}
	return secretInfo(sec, true), nil
}

func (s *Server) handleSecretCreate(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	ns, name := namespaceParam(r), r.PathValue("name")
	var req structs.SecretRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if err := structs.ValidateName("secret", name); err != nil {
		return nil, badRequest("%v", err)
	}
	snap := s.fsm.State().Snapshot()
	if snap.Namespace(nil, ns) == nil {
		return nil, notFound("namespace %q not found", ns)
	}
	if snap.Secret(nil, ns, name) != nil {
		return nil, errorf(http.StatusConflict, "conflict", "secret %s/%s exists; add a version with `hive secret update`", ns, name)
	}
	data, err := buildData(&req, req.Generate)
	if err != nil {
		return nil, err
	}
	sec, err := s.putVersion(ns, name, nil, &req, data, time.Now().UTC())
	clearMap(data)
	if err != nil {
		return nil, err
	}
	return secretInfo(sec, true), nil
}

func clearMap(m map[string]string) {
	for k := range m {
		delete(m, k)
	}
}

func (s *Server) handleSecretUpdate(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	ns, name := namespaceParam(r), r.PathValue("name")
	var req structs.SecretRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	old := s.fsm.State().Snapshot().Secret(nil, ns, name)
	if old == nil {
		return nil, notFound("secret %s/%s not found; create it with `hive secret create`", ns, name)
	}
	data, err := buildData(&req, req.Generate)
	if err != nil {
		return nil, err
	}
	sec, err := s.putVersion(ns, name, old, &req, data, time.Now().UTC())
	clearMap(data)
	if err != nil {
		return nil, err
	}
	return secretInfo(sec, true), nil
}

func (s *Server) handleSecretRollback(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	ns, name := namespaceParam(r), r.PathValue("name")
	var req structs.SecretRollbackRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	snap := s.fsm.State().Snapshot()
	old := snap.Secret(nil, ns, name)
	if old == nil {
		return nil, notFound("secret %s/%s not found", ns, name)
	}
	v := old.VersionN(req.To)
	if v == nil {
		return nil, notFound("secret %s/%s has no version %d; see `hive secret versions`", ns, name, req.To)
	}
	data, err := s.decryptVersion(snap, old, v)
	if err != nil {
		return nil, err
	}
	sec, err := s.putVersion(ns, name, old, nil, data, time.Now().UTC())
	clearMap(data)
	if err != nil {
		return nil, err
	}
	return secretInfo(sec, true), nil
}

func (s *Server) handleSecretDelete(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	k := [2]string{namespaceParam(r), r.PathValue("name")}
	if _, err := s.apply(fsm.SecretWriteType, &fsm.SecretWriteRequest{DeleteSecrets: [][2]string{k}}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// handleSecretValue reveals a version's values (secret/value:read).
func (s *Server) handleSecretValue(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	ns, name := namespaceParam(r), r.PathValue("name")
	c.event = "secret-read"
	snap := s.fsm.State().Snapshot()
	sec := snap.Secret(nil, ns, name)
	if sec == nil {
		return nil, notFound("secret %s/%s not found", ns, name)
	}
	v := sec.Current()
	if q := r.URL.Query().Get("version"); q != "" {
		n, err := strconv.ParseUint(q, 10, 64)
		if err != nil {
			return nil, badRequest("invalid version %q", q)
		}
		if v = sec.VersionN(n); v == nil {
			return nil, notFound("secret %s/%s has no version %d", ns, name, n)
		}
	}
	data, err := s.decryptVersion(snap, sec, v)
	if err != nil {
		return nil, secretErr(err)
	}
	c.reason += fmt.Sprintf("; revealed version %d", v.Version)
	return &structs.SecretValue{Namespace: ns, Name: name, Version: v.Version, Data: data}, nil
}

func secretErr(err error) error {
	if errors.Is(err, ErrKeyringSealed) {
		return errorf(http.StatusServiceUnavailable, "sealed", "%v", err)
	}
	return err
}

// handleNodeSecrets gives a worker the secrets its allocation references:
// the node authorizer of secrets.
func (s *Server) handleNodeSecrets(w http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	allocID := r.URL.Query().Get("alloc")
	c.event, c.resource, c.action, c.name = "secret-read", "secret/value", "read", allocID
	a := s.fsm.State().Snapshot().Alloc(nil, allocID)
	if a == nil || a.NodeID != c.nodeID {
		s.metrics.denied.WithLabelValues("secret/value", "read").Inc()
		c.reason = "allocation is not placed on the calling node"
		return nil, errorf(http.StatusForbidden, "forbidden", "allocation %q is not placed on this node; a node may read only its own allocations' secrets", allocID)
	}
	c.namespace = a.Namespace
	names := map[string]bool{}
	for _, t := range a.Tasks {
		for _, ts := range t.Secrets {
			names[ts.Name] = true
		}
	}
	return s.blockingQuery(w, r, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		out := &structs.NodeSecretsResponse{AllocID: allocID, Secrets: map[string]structs.SecretValue{}}
		now := time.Now()
		for _, n := range slices.Sorted(maps.Keys(names)) {
			sec := snap.Secret(ws, a.Namespace, n)
			if sec == nil || sec.Expired(now) {
				continue
			}
			data, err := s.decryptVersion(snap, sec, sec.Current())
			if err != nil {
				return nil, 0, secretErr(err)
			}
			out.Secrets[n] = structs.SecretValue{Namespace: a.Namespace, Name: n, Version: sec.Version, Data: data}
		}
		c.reason = fmt.Sprintf("delivered %d secret(s) for allocation %s", len(out.Secrets), allocID)
		return out, snap.Index(state.TableSecrets), nil
	})
}

// ---- keyring operations -----------------------------------------------------

func (s *Server) handleKeyringStatus(_ http.ResponseWriter, _ *http.Request, _ *caller) (any, error) {
	snap := s.fsm.State().Snapshot()
	uses := map[string]int{}
	for _, sec := range snap.Secrets(nil, "") {
		for _, v := range sec.Versions {
			uses[v.RootKeyID]++
		}
	}
	out := &structs.KeyringStatus{Sealed: s.roots.sealed(), Keys: []structs.RootKeyInfo{}}
	for _, rk := range snap.RootKeys(nil) {
		out.Keys = append(out.Keys, structs.RootKeyInfo{ID: rk.ID, State: rk.State, CreatedAt: rk.CreatedAt, Versions: uses[rk.ID]})
		if rk.State != structs.RootKeyActive {
			out.Pending += uses[rk.ID]
		}
	}
	sort.Slice(out.Keys, func(i, j int) bool { return out.Keys[i].CreatedAt.Before(out.Keys[j].CreatedAt) })
	return out, nil
}

// handleKeyringRotate makes a new active root key; the rotator re-wraps
// every data key under it in the background.
func (s *Server) handleKeyringRotate(w http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	snap := s.fsm.State().Snapshot()
	var old *structs.RootKey
	for _, rk := range snap.RootKeys(nil) {
		if rk.State == structs.RootKeyActive {
			old = rk
		}
	}
	s.roots.createMu.Lock()
	rk, err := s.newRootKey(old)
	s.roots.createMu.Unlock()
	if err != nil {
		return nil, secretErr(err)
	}
	c.reason += "; new active root key " + rk.ID
	s.kickRotator()
	return s.handleKeyringStatus(w, r, c)
}

// rewrapBatch bounds the versions one Raft entry re-wraps.
const rewrapBatch = 512

func (s *Server) kickRotator() {
	select {
	case s.rotateC <- struct{}{}:
	default:
	}
}

// runRotator re-wraps data keys away from rotating root keys and deletes
// those keys once nothing uses them (leader only).
func (s *Server) runRotator(stop <-chan struct{}) {
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		for s.rotateOnce() {
		}
		s.maintainSecrets(time.Now().UTC())
		select {
		case <-stop:
			return
		case <-s.rotateC:
		case <-tick.C:
		}
	}
}

// rotateOnce does one batch; it reports whether there is more to do.
func (s *Server) rotateOnce() bool {
	snap := s.fsm.State().Snapshot()
	var active *structs.RootKey
	rotating := map[string]bool{}
	for _, rk := range snap.RootKeys(nil) {
		switch rk.State {
		case structs.RootKeyActive:
			active = rk
		case structs.RootKeyRotating, structs.RootKeyRetired:
			rotating[rk.ID] = true
		}
	}
	if active == nil || len(rotating) == 0 || s.roots.sealed() {
		return false
	}
	newKey, err := s.roots.key(snap, active.ID)
	if err != nil {
		s.logger.Error("key rotation: cannot unwrap the active root key", "error", err)
		return false
	}
	req := &fsm.SecretWriteRequest{Now: time.Now().UTC()}
	failed := false
	for _, sec := range snap.Secrets(nil, "") {
		for _, v := range sec.Versions {
			if !rotating[v.RootKeyID] || len(req.Rewraps) >= rewrapBatch {
				continue
			}
			oldKey, err := s.roots.key(snap, v.RootKeyID)
			if err != nil {
				s.logger.Error("key rotation: cannot unwrap a retiring root key", "key", v.RootKeyID, "error", err)
				return false
			}
			env, err := keyring.Rewrap(&keyring.Envelope{RootKeyID: v.RootKeyID, WrappedDataKey: v.WrappedDataKey, Ciphertext: v.Ciphertext},
				oldKey, active.ID, newKey, secretID(sec, v.Version))
			if err != nil {
				s.logger.Error("key rotation: cannot re-wrap", "secret", sec.Namespace+"/"+sec.Name, "version", v.Version, "error", err)
				failed = true
				continue
			}
			req.Rewraps = append(req.Rewraps, fsm.SecretRewrap{Namespace: sec.Namespace, Name: sec.Name, Version: v.Version,
				From: v.RootKeyID, To: active.ID, WrappedDataKey: env.WrappedDataKey})
		}
	}
	more := len(req.Rewraps) >= rewrapBatch
	if !more && !failed {
		// This batch moves the last versions: the old keys go with it.
		req.DeleteRootKeys = slices.Sorted(maps.Keys(rotating))
	}
	if _, err := s.apply(fsm.SecretWriteType, req); err != nil {
		if errors.Is(err, fsm.ErrConflict) {
			return true // a version was added meanwhile; look again
		}
		s.logger.Error("key rotation: write failed", "error", err)
		return false
	}
	if !more && !failed {
		s.logger.Info("key rotation finished", "active", active.ID, "retired", req.DeleteRootKeys)
	}
	return more
}

// maintainSecrets raises expiry and rotation-due events, regenerates
// generated secrets whose period is up, and rotates the root key on its
// schedule (leader only).
func (s *Server) maintainSecrets(now time.Time) {
	snap := s.fsm.State().Snapshot()
	if s.roots.sealed() {
		return
	}
	for _, rk := range snap.RootKeys(nil) {
		if rk.State == structs.RootKeyActive && s.cfg.RootKeyRotation > 0 && now.Sub(rk.CreatedAt) >= s.cfg.RootKeyRotation {
			s.roots.createMu.Lock()
			nk, err := s.newRootKey(rk)
			s.roots.createMu.Unlock()
			if err != nil {
				s.logger.Error("scheduled root key rotation failed", "error", err)
				break
			}
			s.raiseEvent(now, structs.EventRootKeyRotated, nk.ID, fmt.Sprintf("root key %s replaced %s after %s", nk.ID, rk.ID, s.cfg.RootKeyRotation))
			s.kickRotator()
		}
	}
	for _, sec := range snap.Secrets(nil, "") {
		name := sec.Namespace + "/" + sec.Name
		switch {
		case sec.Expired(now) && !sec.ExpiryNoted:
			cp := *sec
			cp.ExpiryNoted = true
			if _, err := s.apply(fsm.SecretWriteType, &fsm.SecretWriteRequest{Secrets: []*fsm.SecretPut{{Secret: &cp, ExpectIndex: sec.ModifyIndex}}, Now: now}); err == nil {
				s.raiseEvent(now, structs.EventSecretExpired, name, fmt.Sprintf("secret %s expired at %s and is no longer delivered", name, sec.ExpiresAt.Format(time.RFC3339)))
			}
		case !sec.RotationDueAt.IsZero() && !now.Before(sec.RotationDueAt) && !sec.Expired(now):
			if len(sec.Generate) == 0 {
				cp := *sec
				cp.RotationDueAt = now.Add(sec.RotationPeriod)
				if _, err := s.apply(fsm.SecretWriteType, &fsm.SecretWriteRequest{Secrets: []*fsm.SecretPut{{Secret: &cp, ExpectIndex: sec.ModifyIndex}}, Now: now}); err == nil {
					s.raiseEvent(now, structs.EventSecretRotationDue, name, fmt.Sprintf("secret %s is due for rotation (every %s); update it with `hive secret update`", name, sec.RotationPeriod))
				}
				continue
			}
			cur, err := s.decryptVersion(snap, sec, sec.Current())
			if err != nil {
				s.logger.Error("cannot rotate generated secret", "secret", name, "error", err)
				continue
			}
			for k, n := range sec.Generate {
				if cur[k], err = generateValue(n); err != nil {
					break
				}
			}
			if err == nil {
				_, err = s.putVersion(sec.Namespace, sec.Name, sec, nil, cur, now)
			}
			clearMap(cur)
			if err != nil {
				s.logger.Error("cannot rotate generated secret", "secret", name, "error", err)
				continue
			}
			s.raiseEvent(now, structs.EventSecretRotated, name, fmt.Sprintf("generated secret %s regenerated (every %s)", name, sec.RotationPeriod))
		}
	}
}

func (s *Server) raiseEvent(now time.Time, typ, subject, msg string) {
	if _, err := s.apply(fsm.EventType, &fsm.EventRequest{Event: structs.Event{Time: now, Type: typ, Subject: subject, Message: msg}}); err != nil {
		s.logger.Warn("cannot record event", "type", typ, "error", err)
	}
}

// handleUnlock gives this manager the unseal key of an autolocked cluster.
// A wrong key is refused, counted and audited.
func (s *Server) handleUnlock(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	var req structs.UnlockRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if !s.roots.sealed() {
		return &structs.KeyringStatus{Sealed: false}, nil
	}
	key, err := DecodeUnlockKey(req.Key)
	if err != nil {
		s.metrics.authFailures.WithLabelValues("unlock").Inc()
		c.reason = "malformed unlock key"
		return nil, badRequest("%v", err)
	}
	cl := s.fsm.State().Snapshot().Cluster(nil)
	if cl == nil {
		return nil, errorf(http.StatusServiceUnavailable, "not_ready", "this manager has not loaded the cluster state yet; retry shortly")
	}
	if _, err := keyring.Open(key, cl.CAKeySealed, caKeyAAD(cl.ClusterID)); err != nil {
		s.metrics.authFailures.WithLabelValues("unlock").Inc()
		c.reason = "wrong unlock key"
		s.logger.Warn("wrong unlock key refused", "remote", r.RemoteAddr)
		return nil, errorf(http.StatusForbidden, "wrong_key", "that is not this cluster's unlock key")
	}
	s.roots.setUnseal(key)
	c.reason = "manager unlocked"
	s.logger.Info("manager unlocked")
	return &structs.KeyringStatus{Sealed: false}, nil
}
