package keyring

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

var testTime = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func mustRootKey(t testing.TB, unseal []byte) (*RootKey, []byte) {
	t.Helper()
	r, key, err := NewRootKey(unseal, testTime)
	if err != nil {
		t.Fatal(err)
	}
	return r, key
}

func TestNewRootKey(t *testing.T) {
	unseal := mustKey(t)
	r, key := mustRootKey(t, unseal)
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(r.ID) {
		t.Errorf("ID = %q, want 16 hex characters", r.ID)
	}
	if r.State != RootKeyActive || !r.CreatedAt.Equal(testTime) {
		t.Errorf("State %q, CreatedAt %v", r.State, r.CreatedAt)
	}
	if len(key) != KeySize {
		t.Fatalf("plaintext key is %d bytes", len(key))
	}
	if bytes.Contains(r.WrappedKey, key) {
		t.Fatal("wrapped key contains the plaintext key")
	}
	got, err := r.Unwrap(unseal)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("Unwrap = %x, %v", got, err)
	}
	r2, key2 := mustRootKey(t, unseal)
	if r2.ID == r.ID || bytes.Equal(key2, key) {
		t.Fatal("two root keys share an ID or a key")
	}
	if _, _, err := NewRootKey(unseal[:16], testTime); err == nil {
		t.Fatal("NewRootKey accepted a 16-byte unseal key")
	}
}

// The stored form must never carry the plaintext: no field for it, and
// nothing of it in what the caller serializes.
func TestRootKeyStoredFormHasNoPlaintext(t *testing.T) {
	var fields []string
	rt := reflect.TypeFor[RootKey]()
	for i := range rt.NumField() {
		fields = append(fields, rt.Field(i).Name)
	}
	if want := []string{"ID", "WrappedKey", "CreatedAt", "State"}; !reflect.DeepEqual(fields, want) {
		t.Fatalf("RootKey fields = %v, want %v; a new field must not hold key material", fields, want)
	}
	r, key := mustRootKey(t, mustKey(t))
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	plainJS, _ := json.Marshal(key) // base64, as json encodes []byte
	if bytes.Contains(js, plainJS[1:len(plainJS)-1]) || bytes.Contains(js, key) {
		t.Fatal("serialized RootKey contains the plaintext key")
	}
}

func TestRootKeyUnwrapErrors(t *testing.T) {
	unseal := mustKey(t)
	r, _ := mustRootKey(t, unseal)
	mod := func(f func(*RootKey)) *RootKey {
		c := *r
		c.WrappedKey = bytes.Clone(r.WrappedKey)
		f(&c)
		return &c
	}
	tests := []struct {
		name   string
		r      *RootKey
		unseal []byte
		open   bool
	}{
		{"wrong unseal key", r, mustKey(t), true},
		{"changed ID", mod(func(c *RootKey) { c.ID = "0000000000000000" }), unseal, true},
		{"flipped wrapped byte", mod(func(c *RootKey) { c.WrappedKey[30] ^= 1 }), unseal, true},
		{"flipped nonce byte", mod(func(c *RootKey) { c.WrappedKey[1] ^= 1 }), unseal, true},
		{"truncated", mod(func(c *RootKey) { c.WrappedKey = c.WrappedKey[:10] }), unseal, true},
		{"wrong format version", mod(func(c *RootKey) { c.WrappedKey[0] = 9 }), unseal, true},
		{"short unseal key", r, unseal[:31], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := tt.r.Unwrap(tt.unseal)
			if err == nil {
				t.Fatalf("unwrapped to %d bytes", len(key))
			}
			if errors.Is(err, ErrOpen) != tt.open {
				t.Fatalf("errors.Is(err, ErrOpen) = %v, want %v: %v", !tt.open, tt.open, err)
			}
			if !strings.Contains(err.Error(), `"`+tt.r.ID+`"`) {
				t.Fatalf("error does not name the key ID: %v", err)
			}
		})
	}
	// State and CreatedAt are not bound: rotation changes State in place.
	moved := mod(func(c *RootKey) { c.State = RootKeyRetired; c.CreatedAt = time.Time{} })
	if _, err := moved.Unwrap(unseal); err != nil {
		t.Fatalf("changing State broke Unwrap: %v", err)
	}
	var nilKey *RootKey
	if _, err := nilKey.Unwrap(unseal); err == nil {
		t.Fatal("nil RootKey unwrapped")
	}
}

func TestRewrapRootKey(t *testing.T) {
	oldUnseal, newUnseal := mustKey(t), mustKey(t)
	r, key := mustRootKey(t, oldUnseal)
	r.State = RootKeyRotating
	orig := *r
	orig.WrappedKey = bytes.Clone(r.WrappedKey)

	// A secret encrypted before the unseal-key rotation must decrypt after.
	env := mustEncrypt(t, r.ID, key, testID, []byte("survives"))

	nr, err := RewrapRootKey(r, oldUnseal, newUnseal)
	if err != nil {
		t.Fatal(err)
	}
	if nr.ID != r.ID || nr.State != r.State || !nr.CreatedAt.Equal(r.CreatedAt) {
		t.Fatalf("RewrapRootKey changed metadata: %+v", nr)
	}
	if !reflect.DeepEqual(*r, orig) {
		t.Fatal("RewrapRootKey modified its input")
	}
	got, err := nr.Unwrap(newUnseal)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("Unwrap with new unseal key = %x, %v", got, err)
	}
	if _, err := nr.Unwrap(oldUnseal); !errors.Is(err, ErrOpen) {
		t.Fatalf("old unseal key still unwraps the re-wrapped key: %v", err)
	}
	kr := NewKeyring()
	nr.State = RootKeyActive
	if err := kr.Load(newUnseal, []*RootKey{nr}); err != nil {
		t.Fatal(err)
	}
	if pt, err := kr.Decrypt(env, testID); err != nil || string(pt) != "survives" {
		t.Fatalf("decrypt after unseal-key rotation: %q, %v", pt, err)
	}

	if _, err := RewrapRootKey(r, mustKey(t), newUnseal); !errors.Is(err, ErrOpen) {
		t.Fatalf("wrong old unseal key: %v", err)
	}
	if _, err := RewrapRootKey(r, oldUnseal, newUnseal[:1]); err == nil || errors.Is(err, ErrOpen) {
		t.Fatalf("short new unseal key: %v", err)
	}
}
