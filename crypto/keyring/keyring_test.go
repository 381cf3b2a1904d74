package keyring

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func mustKey(t *testing.T) []byte {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	key := mustKey(t)
	for _, pt := range [][]byte{nil, []byte("s"), bytes.Repeat([]byte("secret"), 1000)} {
		sealed, err := Seal(key, pt, []byte("ns/name/1/k1"))
		if err != nil {
			t.Fatal(err)
		}
		if sealed[0] != 1 || len(sealed) != 1+12+len(pt)+16 {
			t.Fatalf("sealed layout: version %d, len %d", sealed[0], len(sealed))
		}
		got, err := Open(key, sealed, []byte("ns/name/1/k1"))
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open = %q, %v", got, err)
		}
	}
	a, _ := Seal(key, []byte("x"), nil)
	b, _ := Seal(key, []byte("x"), nil)
	if bytes.Equal(a, b) {
		t.Error("two seals of the same plaintext are equal; nonce is not random")
	}
}

func TestOpenErrors(t *testing.T) {
	key := mustKey(t)
	sealed, err := Seal(key, []byte("plaintext"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	wrongVersion := append([]byte{2}, sealed[1:]...)
	tests := []struct {
		name    string
		key     []byte
		sealed  []byte
		aad     []byte
		wantErr string
	}{
		{"wrong key", mustKey(t), sealed, []byte("aad"), "wrong key or tampered data"},
		{"wrong aad", key, sealed, []byte("aae"), "wrong key or tampered data"},
		{"missing aad", key, sealed, nil, "wrong key or tampered data"},
		{"short key", key[:16], sealed, []byte("aad"), "key is 16 bytes, want 32"},
		{"empty", key, nil, []byte("aad"), "shorter than the minimum"},
		{"truncated", key, sealed[:28], []byte("aad"), "shorter than the minimum"},
		{"wrong version", key, wrongVersion, []byte("aad"), "format version 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(tt.key, tt.sealed, tt.aad)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := Seal(key[:31], nil, nil); err == nil {
		t.Error("Seal with a 31-byte key succeeded")
	}
}

func TestOpenTamperEachByte(t *testing.T) {
	key := mustKey(t)
	sealed, err := Seal(key, []byte("attack at dawn"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(sealed)
			bad[i] ^= bit
			if _, err := Open(key, bad, []byte("aad")); err == nil {
				t.Fatalf("flipping bit %#x of byte %d went unnoticed", bit, i)
			} else if i > 0 && !errors.Is(err, ErrOpen) {
				t.Fatalf("byte %d: err = %v, want ErrOpen", i, err)
			}
		}
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "unseal.key")
	k1, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != KeySize {
		t.Fatalf("key length %d", len(k1))
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	di, err := os.Stat(dir)
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("key dir mode %v, %v; want 0700", di.Mode(), err)
	}
	k2, err := LoadOrCreateKeyFile(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second load returned a different key (%v)", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

func TestLoadOrCreateKeyFileRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "unseal.key")
	keys := make([][]byte, 8)
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], errs[i] = LoadOrCreateKeyFile(path)
		}()
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil || !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("racer %d: %v, or got a different key", i, errs[i])
		}
	}
}

func TestWriteReadKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	key := mustKey(t)
	if err := WriteKeyFile(path, key); err != nil {
		t.Fatal(err)
	}
	newKey := mustKey(t)
	if err := WriteKeyFile(path, newKey); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	got, err := ReadKeyFile(path)
	if err != nil || !bytes.Equal(got, newKey) {
		t.Fatalf("ReadKeyFile = %x, %v", got, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	if err := WriteKeyFile(path, key[:10]); err == nil {
		t.Error("WriteKeyFile with a 10-byte key succeeded")
	}
}

func TestReadKeyFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // WriteFile's mode is masked by umask
			t.Fatal(err)
		}
		return p
	}
	key := mustKey(t)
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"world readable", write("world", key, 0o604), "mode 0604"},
		{"group readable", write("group", key, 0o640), "mode 0640"},
		{"group writable", write("gw", key, 0o620), "mode 0620"},
		{"too short", write("short", key[:31], 0o600), "holds 31 bytes"},
		{"too long", write("long", append(bytes.Clone(key), 0), 0o600), "more than 32 bytes"},
		{"empty", write("empty", nil, 0o600), "holds 0 bytes"},
		{"directory", dir, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadKeyFile(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
			// LoadOrCreateKeyFile must refuse the same files, not replace them.
			if tt.name != "missing" {
				if _, err := LoadOrCreateKeyFile(tt.path); err == nil {
					t.Fatal("LoadOrCreateKeyFile accepted it")
				}
			}
		})
	}
}
