package fsm

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// SecretWriteType changes secrets and root keys.
const SecretWriteType MessageType = 23

// SecretWriteRequest changes secrets and root keys in one entry.
//
// Secrets are written whole, guarded by ExpectIndex: the ModifyIndex the
// writer read the secret at (0: it must not exist), so two concurrent
// updates cannot silently lose one version. Rewraps move single versions'
// data keys to another root key only if they are still wrapped by the key
// the rotation read, so a rotation never undoes a concurrent update.
type SecretWriteRequest struct {
	Secrets       []*SecretPut
	DeleteSecrets [][2]string // namespace, name
	Rewraps       []SecretRewrap
	RootKeys      []*structs.RootKey
	// DeleteRootKeys removes root keys; refused while any version still
	// uses one.
	DeleteRootKeys []string
	Now            time.Time
}

// SecretPut writes one secret if it is still at ExpectIndex.
type SecretPut struct {
	Secret      *structs.Secret
	ExpectIndex uint64
}

// SecretRewrap moves one version's data key from one root key to another.
type SecretRewrap struct {
	Namespace, Name string
	Version         uint64
	From, To        string // root key IDs
	WrappedDataKey  []byte
}

// SecretRewrapResult says how many rewraps applied (the others found their
// version changed or gone and were skipped).
type SecretRewrapResult struct {
	Applied int
}

func init() {
	register(SecretWriteType, "secret write", applySecretWrite)
}

func applySecretWrite(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[SecretWriteRequest](buf)
	if err != nil {
		return nil, err
	}
	if err := checkSecretWrite(txn.Read(), req); err != nil {
		return nil, err
	}
	for _, k := range req.DeleteSecrets {
		if err := txn.DeleteSecret(k[0], k[1]); err != nil {
			return nil, err
		}
	}
	for _, k := range req.RootKeys {
		if err := txn.UpsertRootKey(k); err != nil {
			return nil, err
		}
	}
	for _, p := range req.Secrets {
		if err := txn.UpsertSecret(p.Secret); err != nil {
			return nil, err
		}
	}
	applied := 0
	counts := map[string]int{}
	for _, rw := range req.Rewraps {
		sec := txn.Read().Secret(nil, rw.Namespace, rw.Name)
		if sec == nil {
			continue
		}
		i := slices.IndexFunc(sec.Versions, func(v *structs.SecretVersion) bool { return v.Version == rw.Version })
		if i < 0 || sec.Versions[i].RootKeyID != rw.From {
			continue
		}
		cp := *sec
		cp.Versions = slices.Clone(sec.Versions)
		v := *cp.Versions[i]
		v.RootKeyID, v.WrappedDataKey = rw.To, rw.WrappedDataKey
		cp.Versions[i] = &v
		if err := txn.UpsertSecret(&cp); err != nil {
			return nil, err
		}
		applied++
		counts[rw.From]++
	}
	for id, n := range counts {
		if k := txn.Read().RootKey(nil, id); k != nil {
			cp := *k
			cp.Rewrapped += n
			if err := txn.UpsertRootKey(&cp); err != nil {
				return nil, err
			}
		}
	}
	for _, id := range req.DeleteRootKeys {
		if err := txn.DeleteRootKey(id); err != nil {
			return nil, err
		}
	}
	return SecretRewrapResult{Applied: applied}, nil
}

func checkSecretWrite(r *state.Snapshot, req *SecretWriteRequest) error {
	for _, k := range req.DeleteSecrets {
		if r.Secret(nil, k[0], k[1]) == nil {
			return fmt.Errorf("secret %s/%s: %w", k[0], k[1], state.ErrNotFound)
		}
	}
	keys := map[string]bool{}
	for _, k := range r.RootKeys(nil) {
		keys[k.ID] = true
	}
	active := 0
	for _, k := range req.RootKeys {
		if k == nil || k.ID == "" || len(k.WrappedKey) == 0 {
			return invalid(errors.New("root key needs an ID and a wrapped key"))
		}
		switch k.State {
		case structs.RootKeyActive:
			active++
		case structs.RootKeyRotating, structs.RootKeyRetired:
		default:
			return invalid(fmt.Errorf("root key %s: state %q", k.ID, k.State))
		}
		keys[k.ID] = true
	}
	if active > 1 {
		return invalid(errors.New("a write may make at most one root key active"))
	}
	for _, p := range req.Secrets {
		if p == nil || p.Secret == nil {
			return invalid(errors.New("nil secret"))
		}
		s := p.Secret
		if err := structs.ValidateName("secret", s.Name); err != nil {
			return invalid(err)
		}
		if r.Namespace(nil, s.Namespace) == nil {
			return invalid(fmt.Errorf("secret %s/%s: namespace %q does not exist", s.Namespace, s.Name, s.Namespace))
		}
		cur := r.Secret(nil, s.Namespace, s.Name)
		switch {
		case cur == nil && p.ExpectIndex != 0:
			return fmt.Errorf("secret %s/%s was deleted meanwhile: %w", s.Namespace, s.Name, ErrConflict)
		case cur != nil && cur.ModifyIndex != p.ExpectIndex:
			return fmt.Errorf("secret %s/%s changed meanwhile (index %d, expected %d); retry: %w", s.Namespace, s.Name, cur.ModifyIndex, p.ExpectIndex, ErrConflict)
		}
		if s.Current() == nil {
			return invalid(fmt.Errorf("secret %s/%s: current version %d is not among its versions", s.Namespace, s.Name, s.Version))
		}
		for _, v := range s.Versions {
			if v == nil || len(v.Ciphertext) == 0 || len(v.WrappedDataKey) == 0 {
				return invalid(fmt.Errorf("secret %s/%s: version without ciphertext or data key", s.Namespace, s.Name))
			}
			if !keys[v.RootKeyID] {
				return invalid(fmt.Errorf("secret %s/%s version %d: unknown root key %q", s.Namespace, s.Name, v.Version, v.RootKeyID))
			}
		}
	}
	for _, rw := range req.Rewraps {
		if !keys[rw.To] || len(rw.WrappedDataKey) == 0 {
			return invalid(fmt.Errorf("rewrap of %s/%s version %d: unknown root key %q or no data key", rw.Namespace, rw.Name, rw.Version, rw.To))
		}
	}
	for _, id := range req.DeleteRootKeys {
		if r.RootKey(nil, id) == nil {
			return fmt.Errorf("root key %s: %w", id, state.ErrNotFound)
		}
		moved := map[string]bool{}
		for _, rw := range req.Rewraps {
			if rw.From == id {
				moved[fmt.Sprintf("%s/%s/%d", rw.Namespace, rw.Name, rw.Version)] = true
			}
		}
		for _, s := range r.Secrets(nil, "") {
			for _, v := range s.Versions {
				if v.RootKeyID == id && !moved[fmt.Sprintf("%s/%s/%d", s.Namespace, s.Name, v.Version)] {
					return fmt.Errorf("root key %s still wraps %s/%s version %d: %w", id, s.Namespace, s.Name, v.Version, ErrConflict)
				}
			}
		}
	}
	return nil
}

// UnsealRotateType re-wraps everything the unseal key seals.
const UnsealRotateType MessageType = 24

// UnsealRotateRequest replaces, in one entry, every record sealed by the
// unseal key with its re-wrap under a new one: the CA key, the gossip
// keyring and every root key. UnsealKeyID names the new key (a hash
// prefix, never the key) so managers can tell which key the state needs.
type UnsealRotateRequest struct {
	CAKeySealed      []byte
	GossipKeysSealed []byte
	RootKeys         []*structs.RootKey
	UnsealKeyID      string
	Now              time.Time
}

func init() {
	register(UnsealRotateType, "unseal rotate", applyUnsealRotate)
}

func applyUnsealRotate(txn *state.Txn, buf []byte) (any, error) {
	req, err := decodeInto[UnsealRotateRequest](buf)
	if err != nil {
		return nil, err
	}
	r := txn.Read()
	c := r.Cluster(nil)
	if c == nil {
		return nil, fmt.Errorf("cluster not bootstrapped: %w", ErrInvalid)
	}
	if len(req.CAKeySealed) == 0 || len(req.GossipKeysSealed) == 0 || req.UnsealKeyID == "" {
		return nil, invalid(errors.New("unseal rotation needs the re-sealed CA key, gossip keys and the new key's ID"))
	}
	have := r.RootKeys(nil)
	if len(req.RootKeys) != len(have) {
		return nil, fmt.Errorf("unseal rotation re-wraps %d root keys but the cluster has %d; retry: %w", len(req.RootKeys), len(have), ErrConflict)
	}
	for _, k := range req.RootKeys {
		old := r.RootKey(nil, k.ID)
		if old == nil || old.State != k.State {
			return nil, fmt.Errorf("root key %s changed meanwhile; retry: %w", k.ID, ErrConflict)
		}
	}
	cp := *c
	cp.CAKeySealed, cp.GossipKeysSealed, cp.UnsealKeyID = req.CAKeySealed, req.GossipKeysSealed, req.UnsealKeyID
	if err := txn.PutCluster(&cp); err != nil {
		return nil, err
	}
	for _, k := range req.RootKeys {
		if err := txn.UpsertRootKey(k); err != nil {
			return nil, err
		}
	}
	return nil, txn.AddEvent(structs.Event{Time: req.Now, Type: structs.EventUnsealRotated, Subject: req.UnsealKeyID,
		Message: fmt.Sprintf("unseal key rotated: CA key, gossip keys and %d root keys re-wrapped", len(req.RootKeys))})
}
