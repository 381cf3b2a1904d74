package keyring

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// ErrSealed is returned by a Keyring that holds no root keys because it has
// not been loaded yet (a manager started with --autolock waits for
// `hive operator unlock`) or was sealed again.
var ErrSealed = errors.New("keyring: sealed: root keys are not loaded; unlock the manager with hive operator unlock")

// Keyring holds the plaintext root keys of a manager in memory and
// encrypts and decrypts secret envelopes with them. It is safe for
// concurrent use.
//
// Keys never leave the Keyring by reference: Add copies in, Key and Active
// copy out. That lets Seal clear every key it holds without corrupting an
// Encrypt running in another goroutine, which holds the read lock for the
// whole operation. Clearing is best effort (see EncryptValue).
type Keyring struct {
	mu     sync.RWMutex
	sealed bool
	keys   map[string][]byte // root key ID -> plaintext key
	active string            // ID of the key that wraps new data keys; "" if none
}

// NewKeyring returns a sealed Keyring; Load unseals it.
func NewKeyring() *Keyring {
	return &Keyring{sealed: true}
}

// Load unwraps every stored root key with unsealKey and replaces whatever
// the Keyring held with them, unsealing it. It is all or nothing: on error
// the Keyring is unchanged. A key that fails to unwrap is named in the
// error, which wraps ErrOpen for a wrong unseal key or a changed key.
//
// The keys must be consistent: distinct non-empty IDs, known states, and
// exactly one RootKeyActive unless keys is empty (a new cluster, before its
// first root key is added). Rotating and retired keys are loaded too, since
// envelopes may still name them.
func (k *Keyring) Load(unsealKey []byte, keys []*RootKey) error {
	if err := checkKeyLen("unseal key", unsealKey); err != nil {
		return fmt.Errorf("keyring: cannot load root keys: %w", err)
	}
	var active []string
	seen := make(map[string]bool, len(keys))
	for i, r := range keys {
		switch {
		case r == nil:
			return fmt.Errorf("keyring: cannot load root keys: entry %d is nil", i)
		case r.ID == "":
			return fmt.Errorf("keyring: cannot load root keys: entry %d has an empty ID", i)
		case seen[r.ID]:
			return fmt.Errorf("keyring: cannot load root keys: root key %q appears twice", r.ID)
		case !validRootKeyState(r.State):
			return fmt.Errorf("keyring: cannot load root keys: root key %q has state %q, want %s, %s or %s",
				r.ID, r.State, RootKeyActive, RootKeyRotating, RootKeyRetired)
		}
		seen[r.ID] = true
		if r.State == RootKeyActive {
			active = append(active, r.ID)
		}
	}
	if len(keys) > 0 && len(active) != 1 {
		var which string
		if len(active) > 1 {
			which = " (" + strings.Join(active, ", ") + ")"
		}
		return fmt.Errorf("keyring: cannot load root keys: %d of %d keys are active%s, want exactly 1",
			len(active), len(keys), which)
	}

	// Unwrap outside the lock: a failure then leaves the Keyring untouched,
	// and readers are not held up by the AES work.
	plain := make(map[string][]byte, len(keys))
	for _, r := range keys {
		key, err := r.Unwrap(unsealKey)
		if err != nil {
			clearAll(plain)
			return fmt.Errorf("keyring: cannot load root keys: %w", err)
		}
		plain[r.ID] = key
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	clearAll(k.keys)
	k.keys = plain
	k.active = ""
	if len(active) == 1 {
		k.active = active[0]
	}
	k.sealed = false
	return nil
}

// Sealed reports whether the Keyring holds no root keys because Load has
// not run since it was made or last sealed.
func (k *Keyring) Sealed() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.sealed
}

// Active returns the ID and a copy of the root key that wraps new data
// keys; ok is false if the Keyring is sealed or has no active key.
func (k *Keyring) Active() (id string, key []byte, ok bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.sealed || k.active == "" {
		return "", nil, false
	}
	return k.active, cloneKey(k.keys[k.active]), true
}

// Key returns a copy of the root key named id; ok is false if the Keyring
// is sealed or does not hold it. Prefer Encrypt, Decrypt and Rewrap, which
// leave no copies behind.
func (k *Keyring) Key(id string) ([]byte, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	key, ok := k.lookup(id)
	if !ok {
		return nil, false
	}
	return cloneKey(key), true
}

// Add puts a copy of a plaintext root key into the unsealed Keyring and,
// if active, makes it the key that wraps new data keys; the previously
// active key stays loaded so its envelopes still decrypt. Adding a key that
// is already held with the same bytes only updates the active choice, so
// replaying a Raft entry is harmless; the same ID with other bytes is
// refused, since it would orphan every envelope under the held key.
//
// Add refuses a sealed Keyring with ErrSealed: keys added before Load would
// be replaced by it, and a half-loaded Keyring would report envelopes under
// not-yet-loaded keys as unknown rather than sealed.
func (k *Keyring) Add(id string, key []byte, active bool) error {
	if id == "" {
		return errors.New("keyring: cannot add root key: empty ID")
	}
	if err := checkKeyLen("root key", key); err != nil {
		return fmt.Errorf("keyring: cannot add root key %q: %w", id, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sealed {
		return fmt.Errorf("keyring: cannot add root key %q: %w", id, ErrSealed)
	}
	if held, ok := k.keys[id]; ok {
		if subtle.ConstantTimeCompare(held, key) != 1 {
			return fmt.Errorf("keyring: cannot add root key %q: a different key with that ID is already loaded", id)
		}
	} else {
		k.keys[id] = cloneKey(key)
	}
	if active {
		k.active = id
	}
	return nil
}

// Forget clears and drops the root key named id, once nothing references
// it. Forgetting the active key leaves the Keyring without one, so Encrypt
// fails until another key is added as active.
func (k *Keyring) Forget(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.keys[id]; ok {
		clear(key)
		delete(k.keys, id)
	}
	if k.active == id {
		k.active = ""
	}
}

// Seal clears and drops every root key and seals the Keyring until the next
// Load. It waits for running Encrypt, Decrypt and Rewrap calls to finish.
func (k *Keyring) Seal() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clearAll(k.keys)
	k.keys = nil
	k.active = ""
	k.sealed = true
}

// Encrypt encrypts plaintext for the secret version id under the active
// root key. It fails with ErrSealed on a sealed Keyring.
func (k *Keyring) Encrypt(id SecretID, plaintext []byte) (*Envelope, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.sealed {
		return nil, fmt.Errorf("keyring: cannot encrypt secret %s: %w", id.describe(), ErrSealed)
	}
	if k.active == "" {
		return nil, fmt.Errorf("keyring: cannot encrypt secret %s: no active root key", id.describe())
	}
	return EncryptValue(k.active, k.keys[k.active], id, plaintext)
}

// Decrypt returns the plaintext of env for the secret version id. It fails
// with ErrSealed on a sealed Keyring, and otherwise as DecryptValue does.
func (k *Keyring) Decrypt(env *Envelope, id SecretID) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.sealed {
		return nil, fmt.Errorf("keyring: cannot decrypt secret %s: %w", id.describe(), ErrSealed)
	}
	// lookup, not Key: the read lock is already held, and taking it again
	// could deadlock behind a waiting writer.
	return DecryptValue(env, k.lookup, id)
}

// Rewrap re-wraps env's data key under the active root key, for rotation.
// An envelope already under the active key is returned as is (the same
// pointer), so the caller can skip writing it back. It fails with
// ErrSealed on a sealed Keyring and ErrUnknownKey if env's key is not held.
func (k *Keyring) Rewrap(env *Envelope, id SecretID) (*Envelope, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.sealed {
		return nil, fmt.Errorf("keyring: cannot re-wrap secret %s: %w", id.describe(), ErrSealed)
	}
	if k.active == "" {
		return nil, fmt.Errorf("keyring: cannot re-wrap secret %s: no active root key", id.describe())
	}
	if env == nil {
		return nil, fmt.Errorf("keyring: cannot re-wrap secret %s: nil envelope", id.describe())
	}
	if env.RootKeyID == k.active {
		return env, nil
	}
	old, ok := k.lookup(env.RootKeyID)
	if !ok {
		return nil, fmt.Errorf("keyring: cannot re-wrap secret %s: %w %q", id.describe(), ErrUnknownKey, env.RootKeyID)
	}
	return Rewrap(env, old, k.active, k.keys[k.active], id)
}

// lookup returns the held key itself; k.mu must be held.
func (k *Keyring) lookup(id string) ([]byte, bool) {
	if k.sealed {
		return nil, false
	}
	key, ok := k.keys[id]
	return key, ok
}

func cloneKey(key []byte) []byte { return append([]byte(nil), key...) }

func clearAll(keys map[string][]byte) {
	for _, key := range keys {
		clear(key)
	}
}
