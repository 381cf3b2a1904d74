package keyring

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// Root key states, in the order a key passes through them during rotation.
const (
	// RootKeyActive marks the one root key that wraps new data keys.
	RootKeyActive = "active"
	// RootKeyRotating marks a former active key whose data keys are being
	// re-wrapped under the new active key; it still decrypts.
	RootKeyRotating = "rotating"
	// RootKeyRetired marks a key that no stored data key references any
	// more; it is kept until the caller deletes it.
	RootKeyRetired = "retired"
)

// rootKeyIDBytes random bytes give a 16-hex-character ID: unique enough
// among the handful of root keys a cluster ever has, short enough to log.
const rootKeyIDBytes = 8

// RootKey is the stored form of a root key, as the caller keeps it in Raft
// and in snapshots. It holds the key only wrapped (sealed) by the cluster
// unseal key, so nothing that reads Raft or a snapshot learns a root key
// without also holding the unseal key, which never enters Raft.
//
// Only ID is bound into the wrap: State changes during rotation and
// CreatedAt is informational, and neither must force a re-wrap. A wrapped
// key copied under another ID fails to unwrap.
type RootKey struct {
	// ID names the key in every Envelope it wraps.
	ID string
	// WrappedKey is Seal(unsealKey, key, "hive-root-key/"+ID).
	WrappedKey []byte
	// CreatedAt is when the key was made; it orders keys for operators.
	CreatedAt time.Time
	// State is RootKeyActive, RootKeyRotating or RootKeyRetired.
	State string
}

// NewRootKey makes a new active root key with a random ID, wrapped by
// unsealKey. It returns the stored form and the plaintext key; the caller
// must keep the plaintext only in memory (in a Keyring) and store only the
// RootKey.
func NewRootKey(unsealKey []byte, now time.Time) (*RootKey, []byte, error) {
	if err := checkKeyLen("unseal key", unsealKey); err != nil {
		return nil, nil, err
	}
	idBytes := make([]byte, rootKeyIDBytes)
	if _, err := rand.Read(idBytes); err != nil {
		return nil, nil, fmt.Errorf("keyring: cannot generate root key ID: %w", err)
	}
	id := hex.EncodeToString(idBytes)
	key, err := NewKey()
	if err != nil {
		return nil, nil, err
	}
	wrapped, err := Seal(unsealKey, key, rootKeyAAD(id))
	if err != nil {
		clear(key)
		return nil, nil, fmt.Errorf("keyring: cannot wrap new root key %q: %w", id, err)
	}
	return &RootKey{ID: id, WrappedKey: wrapped, CreatedAt: now, State: RootKeyActive}, key, nil
}

// Unwrap returns the plaintext root key. A wrong unseal key, a changed
// WrappedKey or a changed ID fail with an error that wraps ErrOpen and names
// the key ID.
func (r *RootKey) Unwrap(unsealKey []byte) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("keyring: cannot unwrap a nil root key")
	}
	if err := checkKeyLen("unseal key", unsealKey); err != nil {
		return nil, fmt.Errorf("keyring: cannot unwrap root key %q: %w", r.ID, err)
	}
	key, err := openStored(unsealKey, r.WrappedKey, rootKeyAAD(r.ID))
	if err != nil {
		return nil, fmt.Errorf("keyring: cannot unwrap root key %q (wrong unseal key?): %w", r.ID, err)
	}
	// Only code holding the unseal key could have sealed a value of another
	// length under this AAD, so this is a bug, not an attack; refuse anyway
	// rather than hand AES a key it will reject later, far from the cause.
	if len(key) != KeySize {
		clear(key)
		return nil, fmt.Errorf("keyring: root key %q unwraps to %d bytes, want %d", r.ID, len(key), KeySize)
	}
	return key, nil
}

// RewrapRootKey returns a copy of r wrapped by newUnseal instead of
// oldUnseal, for rotating the cluster unseal key. ID, CreatedAt and State
// are kept, so every envelope under the root key stays valid; r itself is
// not modified.
func RewrapRootKey(r *RootKey, oldUnseal, newUnseal []byte) (*RootKey, error) {
	if err := checkKeyLen("new unseal key", newUnseal); err != nil {
		return nil, fmt.Errorf("keyring: cannot re-wrap root key: %w", err)
	}
	key, err := r.Unwrap(oldUnseal)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	wrapped, err := Seal(newUnseal, key, rootKeyAAD(r.ID))
	if err != nil {
		return nil, fmt.Errorf("keyring: cannot re-wrap root key %q: %w", r.ID, err)
	}
	out := *r
	out.WrappedKey = wrapped
	return &out, nil
}

// rootKeyAAD binds a wrapped root key to its ID. It is injective because the
// ID is the only variable part and comes last; the prefix keeps it apart
// from the other blobs the unseal key seals (server: "hive/ca-key/...",
// "hive/gossip-keys/..."). Stored data depends on it: never change it.
func rootKeyAAD(id string) []byte {
	return []byte("hive-root-key/" + id)
}

// validRootKeyState reports whether s is one of the RootKey states.
func validRootKeyState(s string) bool {
	switch s {
	case RootKeyActive, RootKeyRotating, RootKeyRetired:
		return true
	}
	return false
}
