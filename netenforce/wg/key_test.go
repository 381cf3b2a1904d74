package wg

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k1.PublicKey() != k2.PublicKey() {
		t.Fatalf("reload gave another key: %s vs %s", k1.PublicKey(), k2.PublicKey())
	}
	st, err := os.Stat(filepath.Join(dir, keyDir))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o700 {
		t.Errorf("key dir mode %#o, want 0700", got)
	}
	st, err = os.Stat(filepath.Join(dir, keyDir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode %#o, want 0600", got)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, keyDir))
	if len(entries) != 1 {
		t.Errorf("key dir holds %d entries, want only %s", len(entries), keyFile)
	}
}

func TestLoadOrCreateKeyTightensDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, keyDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(dir); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, keyDir))
	if got := st.Mode().Perm(); got != 0o700 {
		t.Errorf("key dir mode %#o, want 0700", got)
	}
}

func TestLoadOrCreateKeyRefusesReadableKey(t *testing.T) {
	dir := t.TempDir()
	k, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, keyDir, keyFile)
	secret, _ := os.ReadFile(path)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadOrCreateKey(dir)
	if err == nil || !strings.Contains(err.Error(), "want 0600") {
		t.Fatalf("group/other-readable key accepted: err = %v", err)
	}
	if strings.Contains(err.Error(), strings.TrimSpace(string(secret))) {
		t.Fatal("error leaks the private key")
	}
	_ = k
}

func TestLoadOrCreateKeyCorruptFileNotEchoed(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, keyDir), 0o700); err != nil {
		t.Fatal(err)
	}
	const junk = "NOT-A-KEY-but-maybe-something-secret"
	if err := os.WriteFile(filepath.Join(dir, keyDir, keyFile), []byte(junk), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreateKey(dir)
	if err == nil {
		t.Fatal("corrupt key accepted")
	}
	if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "NOT-A-KEY") {
		t.Fatalf("error echoes file content: %v", err)
	}
}

func TestPrivateKeyNeverPrinted(t *testing.T) {
	k, err := LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	secret := k.k.String()
	j, err := json.Marshal(struct{ K *PrivateKey }{k})
	if err != nil {
		t.Fatal(err)
	}
	outs := []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %q %x", k, k, k, k, k, k),
		fmt.Sprintf("%v", *k), fmt.Sprintf("%+v", struct{ K *PrivateKey }{k}), string(j),
	}
	for _, o := range outs {
		if strings.Contains(o, secret) || strings.Contains(o, fmt.Sprintf("%x", k.k[:])) ||
			strings.Contains(o, strings.Trim(fmt.Sprint(k.k[:]), "[]")) {
			t.Errorf("private key printed: %q", o)
		}
	}
	if k.PublicKey() == ([32]byte{}) {
		t.Error("zero public key")
	}
}
