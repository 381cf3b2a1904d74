package keyring

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadOrCreateKeyFile reads the raw 32-byte key at path, or, if the file does
// not exist, creates parent directories (0700) and the file (0600) with a new
// key. Creation is atomic and never replaces an existing file, so two
// processes racing to create the key end up with the same key.
func LoadOrCreateKeyFile(path string) ([]byte, error) {
	key, err := ReadKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key, err = NewKey()
	if err != nil {
		return nil, err
	}
	tmp, err := writeTemp(path, key)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	// Link fails if path exists, unlike Rename: the loser of a race reads the
	// winner's key instead of overwriting it.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return ReadKeyFile(path)
		}
		return nil, fmt.Errorf("keyring: cannot create key file: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	return key, nil
}

// WriteKeyFile atomically writes key to path with mode 0600, replacing any
// existing file, so a crash leaves either the old key or the new one.
func WriteKeyFile(path string, key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("keyring: cannot write key file %s: key is %d bytes, want %d", path, len(key), KeySize)
	}
	tmp, err := writeTemp(path, key)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("keyring: cannot write key file: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// ReadKeyFile reads the raw 32-byte key at path. It refuses a file that
// group or others can access in any way, since the key unseals every secret
// in the cluster, and a file of the wrong length, which is not a key.
func ReadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: cannot read key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyring: cannot read key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keyring: key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("keyring: key file %s has mode %04o, so other users may read it; run chmod 600 %s, and rotate the key if others could have read it", path, perm, path)
	}
	// Read one byte more than a key so an over-long file is detected
	// without trusting the size reported by Stat.
	buf := make([]byte, KeySize+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("keyring: cannot read key file: %w", err)
	}
	if n != KeySize {
		size := fmt.Sprintf("%d bytes", n)
		if n > KeySize {
			size = fmt.Sprintf("more than %d bytes", KeySize)
		}
		return nil, fmt.Errorf("keyring: key file %s holds %s, want exactly %d; it is not a Hive key file: restore it from backup", path, size, KeySize)
	}
	return buf[:KeySize], nil
}

// writeTemp writes key to a new 0600 file beside path and returns its name.
func writeTemp(path string, key []byte) (string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("keyring: cannot create key directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("keyring: cannot create key file: %w", err)
	}
	// CreateTemp already uses 0600; Chmod makes the mode explicit regardless
	// of how that default may change.
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(key)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("keyring: cannot write key file: %w", err)
	}
	return f.Name(), nil
}

// syncDir makes a rename or link durable across a power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keyring: cannot sync key directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keyring: cannot sync key directory: %w", err)
	}
	return nil
}
