package keyring

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// loadedKeyring returns a Keyring loaded with one active root key.
func loadedKeyring(t *testing.T) (*Keyring, string, []byte) {
	t.Helper()
	unseal := mustKey(t)
	r, key := mustRootKey(t, unseal)
	k := NewKeyring()
	if err := k.Load(unseal, []*RootKey{r}); err != nil {
		t.Fatal(err)
	}
	return k, r.ID, key
}

func TestKeyringSealed(t *testing.T) {
	k := NewKeyring()
	check := func(when string) {
		t.Helper()
		if !k.Sealed() {
			t.Fatalf("%s: not sealed", when)
		}
		if _, err := k.Encrypt(testID, []byte("x")); !errors.Is(err, ErrSealed) {
			t.Fatalf("%s: Encrypt: %v", when, err)
		}
		env := &Envelope{RootKeyID: "k1"}
		if _, err := k.Decrypt(env, testID); !errors.Is(err, ErrSealed) {
			t.Fatalf("%s: Decrypt: %v", when, err)
		}
		if _, err := k.Rewrap(env, testID); !errors.Is(err, ErrSealed) {
			t.Fatalf("%s: Rewrap: %v", when, err)
		}
		if err := k.Add("k9", mustKey(t), true); !errors.Is(err, ErrSealed) {
			t.Fatalf("%s: Add: %v", when, err)
		}
		if _, _, ok := k.Active(); ok {
			t.Fatalf("%s: Active returned a key", when)
		}
	}
	check("new")

	unseal := mustKey(t)
	r, key := mustRootKey(t, unseal)
	if err := k.Load(unseal, []*RootKey{r}); err != nil {
		t.Fatal(err)
	}
	if k.Sealed() {
		t.Fatal("sealed after Load")
	}
	env, err := k.Encrypt(testID, []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	held := k.keys[r.ID] // the Keyring's own copy, to check Seal clears it
	k.Seal()
	check("after Seal")
	if _, ok := k.Key(r.ID); ok {
		t.Fatal("Key returned a key after Seal")
	}
	if !bytes.Equal(held, make([]byte, KeySize)) {
		t.Fatal("Seal did not clear the key it held")
	}
	if bytes.Equal(key, make([]byte, KeySize)) {
		t.Fatal("Seal cleared the caller's copy")
	}
	if err := k.Load(unseal, []*RootKey{r}); err != nil {
		t.Fatal(err)
	}
	if pt, err := k.Decrypt(env, testID); err != nil || string(pt) != "v" {
		t.Fatalf("Decrypt after reload: %q, %v", pt, err)
	}
}

func TestKeyringLoad(t *testing.T) {
	unseal := mustKey(t)
	active, activeKey := mustRootKey(t, unseal)
	rotating, rotatingKey := mustRootKey(t, unseal)
	rotating.State = RootKeyRotating
	retired, retiredKey := mustRootKey(t, unseal)
	retired.State = RootKeyRetired
	k := NewKeyring()
	if err := k.Load(unseal, []*RootKey{retired, active, rotating}); err != nil {
		t.Fatal(err)
	}
	id, key, ok := k.Active()
	if !ok || id != active.ID || !bytes.Equal(key, activeKey) {
		t.Fatalf("Active = %q, %v", id, ok)
	}
	for _, c := range []struct {
		id  string
		key []byte
	}{{rotating.ID, rotatingKey}, {retired.ID, retiredKey}} {
		env := mustEncrypt(t, c.id, c.key, testID, []byte(c.id))
		if pt, err := k.Decrypt(env, testID); err != nil || string(pt) != c.id {
			t.Fatalf("Decrypt under %s: %q, %v", c.id, pt, err)
		}
	}
	env, err := k.Encrypt(testID, []byte("new"))
	if err != nil || env.RootKeyID != active.ID {
		t.Fatalf("Encrypt: %+v, %v", env, err)
	}
	// Key and Active hand out copies: changing them does not change the Keyring.
	kc, _ := k.Key(active.ID)
	clear(kc)
	_, ac, _ := k.Active()
	clear(ac)
	if pt, err := k.Decrypt(env, testID); err != nil || string(pt) != "new" {
		t.Fatalf("Decrypt after clearing copies from Key and Active: %q, %v", pt, err)
	}
}

func TestKeyringLoadErrors(t *testing.T) {
	unseal := mustKey(t)
	a, _ := mustRootKey(t, unseal)
	b, _ := mustRootKey(t, unseal)
	b.State = RootKeyRotating
	foreign, _ := mustRootKey(t, mustKey(t)) // wrapped by another cluster's unseal key
	foreign.State = RootKeyRetired
	with := func(r *RootKey, f func(*RootKey)) *RootKey { c := *r; f(&c); return &c }
	tests := []struct {
		name    string
		unseal  []byte
		keys    []*RootKey
		wantErr string
		open    bool
	}{
		{"wrong unseal key", mustKey(t), []*RootKey{a, b}, `root key "` + a.ID + `"`, true},
		{"one key wrapped by another unseal key", unseal, []*RootKey{a, b, foreign}, `root key "` + foreign.ID + `"`, true},
		{"tampered key", unseal, []*RootKey{a, with(b, func(c *RootKey) { c.WrappedKey = flipByte(c.WrappedKey, 40) })}, `root key "` + b.ID + `"`, true},
		{"ID swapped", unseal, []*RootKey{a, with(b, func(c *RootKey) { c.ID = "ffffffffffffffff" })}, `root key "ffffffffffffffff"`, true},
		{"short unseal key", unseal[:16], []*RootKey{a}, "unseal key is 16 bytes", false},
		{"nil entry", unseal, []*RootKey{a, nil}, "entry 1 is nil", false},
		{"empty ID", unseal, []*RootKey{with(a, func(c *RootKey) { c.ID = "" })}, "entry 0 has an empty ID", false},
		{"duplicate", unseal, []*RootKey{a, a}, "appears twice", false},
		{"unknown state", unseal, []*RootKey{with(a, func(c *RootKey) { c.State = "Active" })}, `state "Active"`, false},
		{"two active", unseal, []*RootKey{a, with(b, func(c *RootKey) { c.State = RootKeyActive })}, "2 of 2 keys are active", false},
		{"none active", unseal, []*RootKey{b}, "0 of 1 keys are active", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := NewKeyring()
			err := k.Load(tt.unseal, tt.keys)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
			if errors.Is(err, ErrOpen) != tt.open {
				t.Fatalf("errors.Is(err, ErrOpen) = %v, want %v: %v", !tt.open, tt.open, err)
			}
			if !k.Sealed() {
				t.Fatal("a failed Load unsealed the keyring")
			}
		})
	}

	// A failed Load leaves a loaded keyring as it was.
	k := NewKeyring()
	if err := k.Load(unseal, []*RootKey{a, b}); err != nil {
		t.Fatal(err)
	}
	if err := k.Load(mustKey(t), []*RootKey{a}); !errors.Is(err, ErrOpen) {
		t.Fatalf("reload with wrong unseal key: %v", err)
	}
	if id, _, ok := k.Active(); !ok || id != a.ID {
		t.Fatalf("after failed reload: Active = %q, %v", id, ok)
	}
	if _, ok := k.Key(b.ID); !ok {
		t.Fatal("after failed reload: lost a key")
	}
}

// A new cluster loads no keys, then adds its first root key.
func TestKeyringBootstrap(t *testing.T) {
	unseal := mustKey(t)
	k := NewKeyring()
	if err := k.Load(unseal, nil); err != nil {
		t.Fatal(err)
	}
	if k.Sealed() {
		t.Fatal("sealed after loading an empty key list")
	}
	if _, err := k.Encrypt(testID, []byte("x")); err == nil || errors.Is(err, ErrSealed) || !strings.Contains(err.Error(), "no active root key") {
		t.Fatalf("Encrypt without an active key: %v", err)
	}
	r, key := mustRootKey(t, unseal)
	if err := k.Add(r.ID, key, true); err != nil {
		t.Fatal(err)
	}
	env, err := k.Encrypt(testID, []byte("first"))
	if err != nil || env.RootKeyID != r.ID {
		t.Fatalf("Encrypt: %+v, %v", env, err)
	}
	// A restarted manager reading the stored key decrypts it.
	k2 := NewKeyring()
	if err := k2.Load(unseal, []*RootKey{r}); err != nil {
		t.Fatal(err)
	}
	if pt, err := k2.Decrypt(env, testID); err != nil || string(pt) != "first" {
		t.Fatalf("Decrypt after restart: %q, %v", pt, err)
	}
}

func TestKeyringAddForget(t *testing.T) {
	k, firstID, firstKey := loadedKeyring(t)
	envOld, err := k.Encrypt(testID, []byte("old"))
	if err != nil {
		t.Fatal(err)
	}

	second := mustKey(t)
	if err := k.Add("second", second, false); err != nil {
		t.Fatal(err)
	}
	if id, _, _ := k.Active(); id != firstID {
		t.Fatalf("Add(active=false) changed the active key to %q", id)
	}
	if err := k.Add("second", second, true); err != nil {
		t.Fatalf("re-adding the same key (Raft replay): %v", err)
	}
	if id, _, _ := k.Active(); id != "second" {
		t.Fatalf("active = %q, want second", id)
	}
	if err := k.Add("second", mustKey(t), true); err == nil || !strings.Contains(err.Error(), "different key") {
		t.Fatalf("same ID, other key: %v", err)
	}
	if err := k.Add("", second, false); err == nil {
		t.Fatal("Add accepted an empty ID")
	}
	if err := k.Add("short", second[:31], false); err == nil || !strings.Contains(err.Error(), "31 bytes") {
		t.Fatalf("short key: %v", err)
	}
	// Add copies: the caller clearing its key does not affect the Keyring.
	third := mustKey(t)
	if err := k.Add("third", third, true); err != nil {
		t.Fatal(err)
	}
	thirdCopy := bytes.Clone(third)
	clear(third)
	if held, _ := k.Key("third"); !bytes.Equal(held, thirdCopy) {
		t.Fatal("clearing the caller's key changed the Keyring's copy")
	}
	envNew, err := k.Encrypt(testID, []byte("new"))
	if err != nil || envNew.RootKeyID != "third" {
		t.Fatalf("Encrypt: %+v, %v", envNew, err)
	}
	if pt, err := k.Decrypt(envNew, testID); err != nil || string(pt) != "new" {
		t.Fatalf("Decrypt under a key the caller cleared: %q, %v", pt, err)
	}

	// Rotation: re-wrap the old envelope to the active key, then forget the old key.
	re, err := k.Rewrap(envOld, testID)
	if err != nil || re.RootKeyID != "third" {
		t.Fatalf("Keyring.Rewrap: %+v, %v", re, err)
	}
	if same, err := k.Rewrap(re, testID); err != nil || same != re {
		t.Fatalf("Rewrap of an envelope under the active key: %p, %v; want the same envelope", same, err)
	}
	k.Forget(firstID)
	if _, ok := k.Key(firstID); ok {
		t.Fatal("Key still returns a forgotten key")
	}
	if _, err := k.Decrypt(envOld, testID); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), firstID) {
		t.Fatalf("Decrypt under a forgotten key: %v", err)
	}
	if _, err := k.Rewrap(envOld, testID); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Rewrap under a forgotten key: %v", err)
	}
	if pt, err := k.Decrypt(re, testID); err != nil || string(pt) != "old" {
		t.Fatalf("Decrypt rewrapped: %q, %v", pt, err)
	}
	// The forgotten key itself still opens the original, outside the Keyring.
	if pt, err := DecryptValue(envOld, keys(map[string][]byte{firstID: firstKey}), testID); err != nil || string(pt) != "old" {
		t.Fatalf("original envelope: %q, %v", pt, err)
	}

	k.Forget("third")
	if _, _, ok := k.Active(); ok {
		t.Fatal("forgetting the active key left an active key")
	}
	if _, err := k.Encrypt(testID, nil); err == nil || !strings.Contains(err.Error(), "no active root key") {
		t.Fatalf("Encrypt with no active key: %v", err)
	}
	if _, err := k.Rewrap(envOld, testID); err == nil || !strings.Contains(err.Error(), "no active root key") {
		t.Fatalf("Rewrap with no active key: %v", err)
	}
	k.Forget("never-added") // no-op
}

// Run with -race: readers encrypt and decrypt while writers add and rotate
// keys. Every envelope must decrypt, since Add never drops a key.
func TestKeyringConcurrent(t *testing.T) {
	k, _, _ := loadedKeyring(t)
	const readers, rounds = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, readers+2)
	for r := range readers {
		wg.Go(func() {
			for i := range rounds {
				id := SecretID{"ns", fmt.Sprintf("s%d", r), uint64(i)}
				pt := []byte(fmt.Sprintf("value %d/%d", r, i))
				env, err := k.Encrypt(id, pt)
				if err != nil {
					errs <- err
					return
				}
				got, err := k.Decrypt(env, id)
				if err != nil || !bytes.Equal(got, pt) {
					errs <- fmt.Errorf("decrypt %v: %q, %v", id, got, err)
					return
				}
				if _, err := k.Rewrap(env, id); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range rounds / 4 {
			key, err := NewKey()
			if err == nil {
				err = k.Add(fmt.Sprintf("k%d", i), key, true)
			}
			if err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for range rounds {
			if id, _, ok := k.Active(); ok {
				k.Key(id)
			}
			k.Sealed()
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Seal clears keys in place, so an Encrypt must never run while it does:
// every Encrypt either fails with ErrSealed or returns an envelope the
// real key opens (not one wrapped by a half-cleared key).
func TestKeyringSealDuringEncrypt(t *testing.T) {
	unseal := mustKey(t)
	r, key := mustRootKey(t, unseal)
	lookup := keys(map[string][]byte{r.ID: key})
	k := NewKeyring()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for i := uint64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := SecretID{"ns", "n", i}
				env, err := k.Encrypt(id, []byte("v"))
				if errors.Is(err, ErrSealed) {
					continue
				}
				if err == nil {
					_, err = DecryptValue(env, lookup, id)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 200 {
		if err := k.Load(unseal, []*RootKey{r}); err != nil {
			t.Fatal(err)
		}
		k.Seal()
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
