// Package keyring seals data with 256-bit keys (AES-256-GCM) and keeps the
// node's unseal key in a private key file. Envelope encryption of secrets and
// root-key rotation build on these two primitives.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// KeySize is the size of every key the keyring uses: AES-256.
const KeySize = 32

// sealVersion is the first byte of sealed data; a new format gets a new
// version so old data stays readable.
const sealVersion = 1

const nonceSize = 12 // the GCM standard nonce; random nonces are safe up to ~2^32 seals per key

// ErrOpen is returned when authentication fails: the key or the
// AAD is wrong, or the data was changed.
var ErrOpen = errors.New("keyring: cannot open sealed data: wrong key or tampered data")

// NewKey returns a fresh random 256-bit key.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("keyring: cannot generate key: %w", err)
	}
	return k, nil
}

// Seal encrypts plaintext with AES-256-GCM under key, binding aad (which is
// not stored: Open needs the same aad). Output is
// version byte 1 | 12-byte random nonce | ciphertext+16-byte tag.
func Seal(key, plaintext, aad []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("keyring: cannot generate nonce: %w", err)
	}
	return aead.Seal(out, out[1:], plaintext, aad), nil
}

// Open reverses Seal. It fails with ErrOpen if key or aad differ from the
// ones used to seal, or if any byte was changed.
func Open(key, sealed, aad []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	if minLen := 1 + nonceSize + aead.Overhead(); len(sealed) < minLen {
		return nil, fmt.Errorf("keyring: sealed data is %d bytes, shorter than the minimum %d; it is truncated or not sealed data", len(sealed), minLen)
	}
	if sealed[0] != sealVersion {
		return nil, fmt.Errorf("keyring: sealed data has format version %d, this build reads only version %d; it is corrupt or written by a newer Hive", sealed[0], sealVersion)
	}
	pt, err := aead.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], aad)
	if err != nil {
		// The AEAD error says nothing more; ErrOpen says what it means.
		return nil, ErrOpen
	}
	return pt, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("keyring: key is %d bytes, want %d (AES-256)", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keyring: cannot create cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: cannot create GCM: %w", err)
	}
	return aead, nil
}
