package keyring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// ErrUnknownKey is returned when an envelope names a root key that the
// caller (or Keyring) does not hold. The error wrapping it names the ID.
var ErrUnknownKey = errors.New("keyring: unknown root key")

// SecretID identifies one version of one secret. Every envelope is bound to
// it, so ciphertext or a wrapped data key copied to another secret, or to
// another version of the same secret, does not decrypt.
type SecretID struct {
	Namespace string
	Name      string
	Version   uint64
}

// describe names the secret in error messages. Names come from users, so
// they are quoted: a name cannot forge the rest of the message.
func (id SecretID) describe() string {
	return fmt.Sprintf("%q/%q version %d", id.Namespace, id.Name, id.Version)
}

// Envelope is what a secret version stores: the value sealed under its own
// random data key, and that data key sealed (wrapped) under a root key.
// Rotating the root key re-wraps only the 61-byte WrappedDataKey; the value
// is never decrypted for it.
//
// Both blobs use the Seal format (version byte, random nonce, ciphertext
// and tag). The AAD (see valueAAD, dataKeyAAD) is not stored: it is rebuilt
// from the SecretID the caller asks for and from RootKeyID.
type Envelope struct {
	// RootKeyID names the root key that wrapped the data key.
	RootKeyID string
	// WrappedDataKey is Seal(rootKey, dataKey, dataKeyAAD(id, RootKeyID)).
	WrappedDataKey []byte
	// Ciphertext is Seal(dataKey, value, valueAAD(id)).
	Ciphertext []byte
}

// EncryptValue encrypts plaintext for the secret version id under a fresh
// random data key, and wraps the data key with rootKey, named rootKeyID.
//
// Each data key seals exactly one value, so the 2^32-seals-per-key limit of
// random GCM nonces applies only to root keys, which seal one data key per
// secret version.
func EncryptValue(rootKeyID string, rootKey []byte, id SecretID, plaintext []byte) (*Envelope, error) {
	if rootKeyID == "" {
		return nil, fmt.Errorf("keyring: cannot encrypt secret %s: empty root key ID", id.describe())
	}
	if err := checkKeyLen("root key "+strconv.Quote(rootKeyID), rootKey); err != nil {
		return nil, fmt.Errorf("keyring: cannot encrypt secret %s: %w", id.describe(), err)
	}
	dataKey, err := NewKey()
	if err != nil {
		return nil, err
	}
	// Best effort: this clears our copy of the data key, but not the AES key
	// schedule crypto/aes derives from it, nor copies in registers or on the
	// stack (runtime/secret, which would, is still a GOEXPERIMENT in Go 1.26).
	defer clear(dataKey)
	ct, err := Seal(dataKey, plaintext, valueAAD(id))
	if err != nil {
		return nil, fmt.Errorf("keyring: cannot encrypt secret %s: %w", id.describe(), err)
	}
	wrapped, err := Seal(rootKey, dataKey, dataKeyAAD(id, rootKeyID))
	if err != nil {
		return nil, fmt.Errorf("keyring: cannot wrap data key of secret %s: %w", id.describe(), err)
	}
	return &Envelope{RootKeyID: rootKeyID, WrappedDataKey: wrapped, Ciphertext: ct}, nil
}

// DecryptValue returns the plaintext of env, which must have been made for
// the secret version id. rootKeys looks up a plaintext root key by ID; an ID
// it does not know fails with ErrUnknownKey. A wrong key, a wrong id, or any
// change to env fails with an error wrapping ErrOpen.
func DecryptValue(env *Envelope, rootKeys func(id string) ([]byte, bool), id SecretID) ([]byte, error) {
	dataKey, err := unwrapDataKey("decrypt", env, rootKeys, id)
	if err != nil {
		return nil, err
	}
	defer clear(dataKey)
	pt, err := openStored(dataKey, env.Ciphertext, valueAAD(id))
	if err != nil {
		return nil, fmt.Errorf("keyring: cannot decrypt secret %s: value: %w", id.describe(), err)
	}
	return pt, nil
}

// Rewrap returns a copy of env whose data key is wrapped by newKey, named
// newKeyID, instead of oldKey; env is not modified. The value is neither
// decrypted nor re-encrypted: Ciphertext is copied as is. That is why the
// value AAD does not bind the root key ID (see valueAAD). A damaged
// Ciphertext is therefore carried over unnoticed and fails at decryption.
func Rewrap(env *Envelope, oldKey []byte, newKeyID string, newKey []byte, id SecretID) (*Envelope, error) {
	if newKeyID == "" {
		return nil, fmt.Errorf("keyring: cannot re-wrap secret %s: empty new root key ID", id.describe())
	}
	if err := checkKeyLen("root key "+strconv.Quote(newKeyID), newKey); err != nil {
		return nil, fmt.Errorf("keyring: cannot re-wrap secret %s: %w", id.describe(), err)
	}
	dataKey, err := unwrapDataKey("re-wrap", env, func(string) ([]byte, bool) { return oldKey, true }, id)
	if err != nil {
		return nil, err
	}
	defer clear(dataKey)
	wrapped, err := Seal(newKey, dataKey, dataKeyAAD(id, newKeyID))
	if err != nil {
		return nil, fmt.Errorf("keyring: cannot re-wrap data key of secret %s: %w", id.describe(), err)
	}
	return &Envelope{
		RootKeyID:      newKeyID,
		WrappedDataKey: wrapped,
		Ciphertext:     append([]byte(nil), env.Ciphertext...),
	}, nil
}

// unwrapDataKey returns env's plaintext data key; the caller clears it. op
// names the caller's operation in errors.
func unwrapDataKey(op string, env *Envelope, rootKeys func(id string) ([]byte, bool), id SecretID) ([]byte, error) {
	if env == nil {
		return nil, fmt.Errorf("keyring: cannot %s secret %s: nil envelope", op, id.describe())
	}
	rootKey, ok := rootKeys(env.RootKeyID)
	if !ok {
		return nil, fmt.Errorf("keyring: cannot %s secret %s: %w %q", op, id.describe(), ErrUnknownKey, env.RootKeyID)
	}
	// A root key of the wrong length is our bug, not tampering: report it
	// as such instead of as ErrOpen.
	if err := checkKeyLen("root key "+strconv.Quote(env.RootKeyID), rootKey); err != nil {
		return nil, fmt.Errorf("keyring: cannot %s secret %s: %w", op, id.describe(), err)
	}
	dataKey, err := openStored(rootKey, env.WrappedDataKey, dataKeyAAD(id, env.RootKeyID))
	if err != nil {
		return nil, fmt.Errorf("keyring: cannot %s secret %s: data key wrapped by root key %q: %w", op, id.describe(), env.RootKeyID, err)
	}
	if len(dataKey) != KeySize {
		clear(dataKey)
		return nil, fmt.Errorf("keyring: cannot %s secret %s: data key is %d bytes, want %d", op, id.describe(), len(dataKey), KeySize)
	}
	return dataKey, nil
}

// AAD labels. A label is the first field of its AAD, so a value AAD can
// never equal a data-key AAD, and a future format gets a new label.
const (
	valueAADLabel   = "hive-secret-value/v1"
	dataKeyAADLabel = "hive-secret-data-key/v1"
)

// valueAAD binds a sealed value to its secret version:
//
//	field(valueAADLabel) | field(namespace) | field(name) | uint64be(version)
//
// where field(s) = uint64be(len(s)) | s. Length prefixes make the encoding
// injective: ("a/b", "c") and ("a", "b/c") differ, whatever bytes names hold.
//
// It deliberately omits the root key ID, although the design calls for
// namespace/name/version/key-id: rotation re-wraps the data key but must not
// touch the value, so a key ID here would be the old one forever after the
// first rotation. The ID is bound where it can be kept true, in dataKeyAAD;
// since the data key is random and seals this value only, holding it already
// proves which wrapped key, and so which root key, it came from.
//
// Stored data depends on this encoding: never change it under the same label.
func valueAAD(id SecretID) []byte {
	b := make([]byte, 0, 4*8+len(valueAADLabel)+len(id.Namespace)+len(id.Name))
	b = appendField(b, valueAADLabel)
	b = appendField(b, id.Namespace)
	b = appendField(b, id.Name)
	return binary.BigEndian.AppendUint64(b, id.Version)
}

// dataKeyAAD binds a wrapped data key to its secret version and root key:
// the valueAAD fields under dataKeyAADLabel, then field(rootKeyID). A
// wrapped data key moved to another secret, version or key ID fails to
// unwrap even when the same root key is behind both IDs.
func dataKeyAAD(id SecretID, rootKeyID string) []byte {
	b := make([]byte, 0, 5*8+len(dataKeyAADLabel)+len(id.Namespace)+len(id.Name)+len(rootKeyID))
	b = appendField(b, dataKeyAADLabel)
	b = appendField(b, id.Namespace)
	b = appendField(b, id.Name)
	b = binary.BigEndian.AppendUint64(b, id.Version)
	return appendField(b, rootKeyID)
}

func appendField(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// checkKeyLen reports a key of the wrong size, naming what it is but never
// its bytes.
func checkKeyLen(what string, key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("keyring: %s is %d bytes, want %d (AES-256)", what, len(key), KeySize)
	}
	return nil
}

// openStored is Open for blobs read back from storage. A blob too short or
// of an unknown format version is, to the caller, as much "not what we
// wrote" as a forged one, so it also matches ErrOpen, keeping Open's
// more precise message. The key length must be checked first: a bad key is
// not tampering.
func openStored(key, sealed, aad []byte) ([]byte, error) {
	pt, err := Open(key, sealed, aad)
	if err != nil && !errors.Is(err, ErrOpen) {
		return nil, malformedError{err}
	}
	return pt, err
}

// malformedError is a non-authentication failure of Open that matches both
// its cause and ErrOpen.
type malformedError struct{ err error }

func (e malformedError) Error() string   { return e.err.Error() }
func (e malformedError) Unwrap() []error { return []error{e.err, ErrOpen} }
