package wg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// keyDir and keyFile name where, under the node's data directory, the
// WireGuard private key lives.
const (
	keyDir  = "wireguard"
	keyFile = "private.key"
)

// PrivateKey is the node's WireGuard private key. It is opaque on purpose:
// the key bytes never leave this package, and every way of printing or
// marshalling the value yields a redacted placeholder, so a stray log line or
// %v in an error cannot leak it.
type PrivateKey struct {
	k wgtypes.Key
}

const redacted = "wg-private-key(redacted)"

// PublicKey returns the public half, the only part that travels (via Raft).
func (p PrivateKey) PublicKey() wgtypes.Key { return p.k.PublicKey() }

// String, GoString, Format and MarshalText redact the key.
func (p PrivateKey) String() string               { return redacted }
func (p PrivateKey) GoString() string             { return redacted }
func (p PrivateKey) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(redacted)) }
func (p PrivateKey) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LoadOrCreateKey returns the private key stored in
// <dataDir>/wireguard/private.key, generating it on first use. The directory
// is kept at 0700 and the file must be 0600: a key file readable by group or
// others is refused rather than silently used, since it may already have
// leaked. Errors name the file but never include its content.
func LoadOrCreateKey(dataDir string) (*PrivateKey, error) {
	if dataDir == "" {
		return nil, errors.New("wireguard key: empty data dir")
	}
	dir := filepath.Join(dataDir, keyDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("wireguard key: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone; the directory is
	// Hive's own, so tighten it.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("wireguard key: %w", err)
	}
	path := filepath.Join(dir, keyFile)

	k, err := loadKey(path)
	if err == nil {
		return &PrivateKey{k: k}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}

	k, err = wgtypes.GeneratePrivateKey()
	if err != nil {
		return nil, fmt.Errorf("wireguard key: generate: %w", err)
	}
	if err := writeKey(dir, path, k); err != nil {
		if errors.Is(err, fs.ErrExist) {
			if k, err := loadKey(path); err == nil {
				return &PrivateKey{k: k}, nil
			}
		}
		return nil, err
	}
	return &PrivateKey{k: k}, nil
}

func loadKey(path string) (wgtypes.Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("wireguard key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("wireguard key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return wgtypes.Key{}, fmt.Errorf("wireguard key: %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return wgtypes.Key{}, fmt.Errorf("wireguard key: %s has mode %#o, want 0600 (refusing a key others could have read)", path, perm)
	}
	buf := make([]byte, 128)
	n, err := f.Read(buf)
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("wireguard key: read %s: %w", path, err)
	}
	// wgtypes.ParseKey's error is not wrapped: the text must never echo
	// any part of the file.
	k, err := wgtypes.ParseKey(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("wireguard key: %s does not hold a base64 WireGuard key", path)
	}
	return k, nil
}

// writeKey writes the key atomically (temp file + fsync + rename), so a
// crash never leaves a truncated key that would change the node's identity.
func writeKey(dir, path string, k wgtypes.Key) error {
	tmp, err := os.CreateTemp(dir, ".private.key-*")
	if err != nil {
		return fmt.Errorf("wireguard key: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("wireguard key: %w", err)
	}
	if _, err := tmp.WriteString(k.String() + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("wireguard key: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("wireguard key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("wireguard key: %w", err)
	}
	// Link, not rename: it never replaces a key another process created
	// meanwhile; in that race the caller loads the winner's key.
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("wireguard key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
