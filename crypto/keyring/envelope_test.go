package keyring

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// keys returns a rootKeys lookup over a fixed map.
func keys(m map[string][]byte) func(string) ([]byte, bool) {
	return func(id string) ([]byte, bool) {
		k, ok := m[id]
		return k, ok
	}
}

func mustEncrypt(t testing.TB, kid string, key []byte, id SecretID, pt []byte) *Envelope {
	t.Helper()
	env, err := EncryptValue(kid, key, id, pt)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func cloneEnv(e *Envelope) *Envelope {
	return &Envelope{
		RootKeyID:      e.RootKeyID,
		WrappedDataKey: bytes.Clone(e.WrappedDataKey),
		Ciphertext:     bytes.Clone(e.Ciphertext),
	}
}

var testID = SecretID{Namespace: "prod", Name: "db-password", Version: 3}

func TestEnvelopeRoundTrip(t *testing.T) {
	root := mustKey(t)
	lookup := keys(map[string][]byte{"k1": root})
	for _, pt := range [][]byte{nil, {}, []byte("hunter2"), bytes.Repeat([]byte("s3cr3t!"), 10000)} {
		env := mustEncrypt(t, "k1", root, testID, pt)
		if env.RootKeyID != "k1" {
			t.Fatalf("RootKeyID = %q", env.RootKeyID)
		}
		// Seal format: version | nonce | data key | tag.
		if len(env.WrappedDataKey) != 1+12+KeySize+16 {
			t.Fatalf("wrapped data key is %d bytes", len(env.WrappedDataKey))
		}
		if len(env.Ciphertext) != 1+12+len(pt)+16 {
			t.Fatalf("ciphertext is %d bytes for %d of plaintext", len(env.Ciphertext), len(pt))
		}
		if len(pt) > 0 && bytes.Contains(env.Ciphertext, pt) {
			t.Fatal("ciphertext contains the plaintext")
		}
		got, err := DecryptValue(env, lookup, testID)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("DecryptValue = %q, %v; want %q", got, err, pt)
		}
	}
	// Every encryption gets its own data key and nonces.
	a := mustEncrypt(t, "k1", root, testID, []byte("same"))
	b := mustEncrypt(t, "k1", root, testID, []byte("same"))
	if bytes.Equal(a.WrappedDataKey, b.WrappedDataKey) || bytes.Equal(a.Ciphertext, b.Ciphertext) {
		t.Fatal("two encryptions of the same value are equal")
	}
	// Crossing the two: b's data key does not open a's value.
	cross := &Envelope{RootKeyID: "k1", WrappedDataKey: b.WrappedDataKey, Ciphertext: a.Ciphertext}
	if _, err := DecryptValue(cross, lookup, testID); !errors.Is(err, ErrOpen) {
		t.Fatalf("value decrypted with another envelope's data key: %v", err)
	}
}

func TestEncryptValueErrors(t *testing.T) {
	root := mustKey(t)
	if _, err := EncryptValue("", root, testID, []byte("x")); err == nil || !strings.Contains(err.Error(), "empty root key ID") {
		t.Errorf("empty key ID: %v", err)
	}
	if _, err := EncryptValue("k1", root[:16], testID, []byte("x")); err == nil || !strings.Contains(err.Error(), "is 16 bytes, want 32") {
		t.Errorf("short root key: %v", err)
	}
}

func TestDecryptValueTampering(t *testing.T) {
	root := mustKey(t)
	pt := []byte("correct horse battery staple")
	env := mustEncrypt(t, "k1", root, testID, pt)
	// "k1-alias" is the same key under another ID: only the AAD binding of
	// the root key ID can reject an envelope relabelled to it.
	lookup := keys(map[string][]byte{"k1": root, "k1-alias": root, "k2": mustKey(t)})

	type tc struct {
		name string
		env  *Envelope
		id   SecretID
	}
	var tests []tc
	for i := range env.Ciphertext {
		e := cloneEnv(env)
		e.Ciphertext = flipByte(e.Ciphertext, i)
		tests = append(tests, tc{"ciphertext byte " + strconv.Itoa(i), e, testID})
	}
	for i := range env.WrappedDataKey {
		e := cloneEnv(env)
		e.WrappedDataKey = flipByte(e.WrappedDataKey, i)
		tests = append(tests, tc{"wrapped data key byte " + strconv.Itoa(i), e, testID})
	}
	relabel := func(kid string) *Envelope { e := cloneEnv(env); e.RootKeyID = kid; return e }
	trunc := func(f func(*Envelope)) *Envelope { e := cloneEnv(env); f(e); return e }
	tests = append(tests,
		tc{"root key ID relabelled, same key", relabel("k1-alias"), testID},
		tc{"root key ID relabelled, other key", relabel("k2"), testID},
		tc{"wrong namespace", env, SecretID{"dev", testID.Name, testID.Version}},
		tc{"wrong name", env, SecretID{testID.Namespace, "db-password2", testID.Version}},
		tc{"wrong version", env, SecretID{testID.Namespace, testID.Name, testID.Version + 1}},
		tc{"zero id", env, SecretID{}},
		tc{"ciphertext truncated", trunc(func(e *Envelope) { e.Ciphertext = e.Ciphertext[:20] }), testID},
		tc{"ciphertext tag cut", trunc(func(e *Envelope) { e.Ciphertext = e.Ciphertext[:len(e.Ciphertext)-1] }), testID},
		tc{"ciphertext extended", trunc(func(e *Envelope) { e.Ciphertext = append(e.Ciphertext, 0) }), testID},
		tc{"ciphertext empty", trunc(func(e *Envelope) { e.Ciphertext = nil }), testID},
		tc{"wrapped data key empty", trunc(func(e *Envelope) { e.WrappedDataKey = nil }), testID},
		tc{"wrapped data key truncated", trunc(func(e *Envelope) { e.WrappedDataKey = e.WrappedDataKey[:40] }), testID},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecryptValue(tt.env, lookup, tt.id)
			if err == nil {
				t.Fatalf("decrypted to %q", got)
			}
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("err = %v, want ErrOpen", err)
			}
			if got != nil {
				t.Fatal("returned plaintext with an error")
			}
		})
	}
	// The original still decrypts: the cases above did not share memory with it.
	if got, err := DecryptValue(env, lookup, testID); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("original: %q, %v", got, err)
	}
}

func flipByte(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x01
	return b
}

func TestDecryptValueUnknownKey(t *testing.T) {
	root := mustKey(t)
	env := mustEncrypt(t, "k1", root, testID, []byte("x"))
	_, err := DecryptValue(env, keys(map[string][]byte{"k2": root}), testID)
	if !errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrOpen) {
		t.Fatalf("err = %v, want ErrUnknownKey only", err)
	}
	if !strings.Contains(err.Error(), `"k1"`) {
		t.Fatalf("error does not name the key: %v", err)
	}
	if _, err := DecryptValue(nil, keys(nil), testID); err == nil || !strings.Contains(err.Error(), "nil envelope") {
		t.Fatalf("nil envelope: %v", err)
	}
	// A lookup returning a bad key is a bug in the caller, not tampering.
	_, err = DecryptValue(env, keys(map[string][]byte{"k1": root[:31]}), testID)
	if err == nil || errors.Is(err, ErrOpen) || !strings.Contains(err.Error(), "31 bytes") {
		t.Fatalf("short root key: %v", err)
	}
}

// A wrapped data key, or a whole envelope, copied to another secret or
// version must not decrypt, even when both were wrapped by the same root key.
func TestEnvelopeMovedToOtherSecret(t *testing.T) {
	root := mustKey(t)
	lookup := keys(map[string][]byte{"k1": root})
	v1 := SecretID{"prod", "api-token", 1}
	v2 := SecretID{"prod", "api-token", 2}
	other := SecretID{"prod", "other", 1}
	e1 := mustEncrypt(t, "k1", root, v1, []byte("old token"))
	e2 := mustEncrypt(t, "k1", root, v2, []byte("new token"))

	moved := cloneEnv(e2)
	moved.WrappedDataKey = bytes.Clone(e1.WrappedDataKey)
	if _, err := DecryptValue(moved, lookup, v2); !errors.Is(err, ErrOpen) {
		t.Fatalf("v1's wrapped data key in v2's envelope: %v", err)
	}
	// Both blobs of v1 moved together (an old version replayed as the new one).
	for _, id := range []SecretID{v2, other} {
		if got, err := DecryptValue(e1, lookup, id); !errors.Is(err, ErrOpen) {
			t.Fatalf("v1's envelope decrypted as %v: %q, %v", id, got, err)
		}
	}
}

// Length-prefixed AAD fields: identities that would collide if the fields
// were simply joined with "/" must not.
func TestAADUnambiguous(t *testing.T) {
	pairs := [][2]SecretID{
		{{"a/b", "c", 1}, {"a", "b/c", 1}},
		{{"ab", "", 1}, {"a", "b", 1}},
		{{"", "ab", 1}, {"a", "b", 1}},
		{{"a", "b\x00\x00\x00\x00\x00\x00\x00\x01", 0}, {"a", "b", 1}},
	}
	root := mustKey(t)
	lookup := keys(map[string][]byte{"k1": root})
	for _, p := range pairs {
		if bytes.Equal(valueAAD(p[0]), valueAAD(p[1])) || bytes.Equal(dataKeyAAD(p[0], "k"), dataKeyAAD(p[1], "k")) {
			t.Errorf("AAD of %+v equals AAD of %+v", p[0], p[1])
		}
		env := mustEncrypt(t, "k1", root, p[0], []byte("v"))
		if _, err := DecryptValue(env, lookup, p[1]); !errors.Is(err, ErrOpen) {
			t.Errorf("envelope for %+v decrypted as %+v: %v", p[0], p[1], err)
		}
	}
	if bytes.Equal(dataKeyAAD(testID, "ab"), dataKeyAAD(SecretID{testID.Namespace, testID.Name + "a", testID.Version}, "b")) {
		t.Error("key ID is not separated from the name")
	}
	// The two kinds of AAD never coincide.
	if bytes.HasPrefix(dataKeyAAD(testID, ""), valueAAD(testID)) {
		t.Error("data-key AAD starts with the value AAD")
	}
}

// Pin the AAD encoding: stored envelopes depend on it, so a change must
// fail here rather than make every stored secret unreadable.
func TestAADEncodingIsStable(t *testing.T) {
	id := SecretID{"ns", "n", 258}
	wantValue := "0000000000000014" + hex.EncodeToString([]byte("hive-secret-value/v1")) +
		"0000000000000002" + hex.EncodeToString([]byte("ns")) +
		"0000000000000001" + hex.EncodeToString([]byte("n")) +
		"0000000000000102"
	if got := hex.EncodeToString(valueAAD(id)); got != wantValue {
		t.Errorf("valueAAD = %s\nwant       %s", got, wantValue)
	}
	wantKey := "0000000000000017" + hex.EncodeToString([]byte("hive-secret-data-key/v1")) +
		"0000000000000002" + hex.EncodeToString([]byte("ns")) +
		"0000000000000001" + hex.EncodeToString([]byte("n")) +
		"0000000000000102" +
		"0000000000000002" + hex.EncodeToString([]byte("k1"))
	if got := hex.EncodeToString(dataKeyAAD(id, "k1")); got != wantKey {
		t.Errorf("dataKeyAAD = %s\nwant         %s", got, wantKey)
	}
	if got := string(rootKeyAAD("0123456789abcdef")); got != "hive-root-key/0123456789abcdef" {
		t.Errorf("rootKeyAAD = %q", got)
	}
}

func TestRewrap(t *testing.T) {
	oldKey, newKey := mustKey(t), mustKey(t)
	pt := []byte("rotate me")
	env := mustEncrypt(t, "old", oldKey, testID, pt)
	orig := cloneEnv(env)

	re, err := Rewrap(env, oldKey, "new", newKey, testID)
	if err != nil {
		t.Fatal(err)
	}
	if re.RootKeyID != "new" {
		t.Fatalf("RootKeyID = %q", re.RootKeyID)
	}
	if !bytes.Equal(re.Ciphertext, env.Ciphertext) {
		t.Fatal("Rewrap changed the ciphertext")
	}
	if bytes.Equal(re.WrappedDataKey, env.WrappedDataKey) {
		t.Fatal("Rewrap did not change the wrapped data key")
	}
	if env.RootKeyID != orig.RootKeyID || !bytes.Equal(env.WrappedDataKey, orig.WrappedDataKey) || !bytes.Equal(env.Ciphertext, orig.Ciphertext) {
		t.Fatal("Rewrap modified its input")
	}
	if len(re.Ciphertext) > 0 && &re.Ciphertext[0] == &env.Ciphertext[0] {
		t.Fatal("Rewrap's result shares the ciphertext's memory with its input")
	}

	got, err := DecryptValue(re, keys(map[string][]byte{"new": newKey}), testID)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("decrypt rewrapped: %q, %v", got, err)
	}
	// The old key no longer decrypts it, under either ID.
	if _, err := DecryptValue(re, keys(map[string][]byte{"new": oldKey}), testID); !errors.Is(err, ErrOpen) {
		t.Fatalf("old key under the new ID: %v", err)
	}
	if _, err := DecryptValue(re, keys(map[string][]byte{"old": oldKey}), testID); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old key under the old ID: %v", err)
	}
	// Relabelling the rewrapped envelope back to the old ID fails too.
	back := cloneEnv(re)
	back.RootKeyID = "old"
	if _, err := DecryptValue(back, keys(map[string][]byte{"old": oldKey, "new": newKey}), testID); !errors.Is(err, ErrOpen) {
		t.Fatalf("rewrapped envelope relabelled to the old ID: %v", err)
	}
	// The original envelope still decrypts with the old key, until the caller
	// replaces it: rotation is safe to interrupt.
	if got, err := DecryptValue(env, keys(map[string][]byte{"old": oldKey}), testID); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("original after Rewrap: %q, %v", got, err)
	}
	// Chained rotations keep working.
	third := mustKey(t)
	re2, err := Rewrap(re, newKey, "third", third, testID)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecryptValue(re2, keys(map[string][]byte{"third": third}), testID); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("after two rotations: %q, %v", got, err)
	}
}

func TestRewrapErrors(t *testing.T) {
	oldKey, newKey := mustKey(t), mustKey(t)
	env := mustEncrypt(t, "old", oldKey, testID, []byte("x"))
	tests := []struct {
		name    string
		env     *Envelope
		oldKey  []byte
		newID   string
		newKey  []byte
		id      SecretID
		wantErr string
		open    bool
	}{
		{"wrong old key", env, mustKey(t), "new", newKey, testID, "wrong key or tampered data", true},
		{"wrong secret", env, oldKey, "new", newKey, SecretID{"prod", "db-password", 4}, "wrong key or tampered data", true},
		{"tampered wrapped key", &Envelope{"old", flipByte(env.WrappedDataKey, 20), env.Ciphertext}, oldKey, "new", newKey, testID, "wrong key or tampered data", true},
		{"truncated wrapped key", &Envelope{"old", env.WrappedDataKey[:20], env.Ciphertext}, oldKey, "new", newKey, testID, "shorter than the minimum", true},
		{"nil envelope", nil, oldKey, "new", newKey, testID, "nil envelope", false},
		{"empty new ID", env, oldKey, "", newKey, testID, "empty new root key ID", false},
		{"short new key", env, oldKey, "new", newKey[:8], testID, "is 8 bytes, want 32", false},
		{"short old key", env, oldKey[:8], "new", newKey, testID, "is 8 bytes, want 32", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Rewrap(tt.env, tt.oldKey, tt.newID, tt.newKey, tt.id)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
			if errors.Is(err, ErrOpen) != tt.open {
				t.Fatalf("errors.Is(err, ErrOpen) = %v, want %v: %v", !tt.open, tt.open, err)
			}
		})
	}
}

// Errors name secrets and key IDs, never key material or values.
func TestErrorsDoNotLeak(t *testing.T) {
	root, other := mustKey(t), mustKey(t)
	pt := []byte("PLAINTEXT-MARKER-0123456789")
	env := mustEncrypt(t, "k1", root, testID, pt)
	var errs []error
	add := func(_ any, err error) { errs = append(errs, err) }
	add(DecryptValue(env, keys(map[string][]byte{"k1": other}), testID))
	add(DecryptValue(env, keys(map[string][]byte{"k1": root}), SecretID{"x", "y", 1}))
	add(DecryptValue(env, keys(map[string][]byte{"k1": root[:5]}), testID))
	add(Rewrap(env, other, "k2", root, testID))
	rk, rkPlain, err := NewRootKey(root, testTime)
	if err != nil {
		t.Fatal(err)
	}
	add(rk.Unwrap(other))
	add(rk.Unwrap(root[:3]))
	add(RewrapRootKey(rk, other, root))
	add(nil, NewKeyring().Add("k", root, true))
	kr := NewKeyring()
	add(nil, kr.Load(other, []*RootKey{rk}))
	add(nil, kr.Add("k", root[:7], true))
	secrets := [][]byte{root, other, rkPlain, pt}
	for i, err := range errs {
		if err == nil {
			t.Fatalf("case %d: no error", i)
		}
		msg := err.Error()
		for _, s := range secrets {
			for _, form := range []string{string(s), hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s))} {
				if len(form) >= 3 && strings.Contains(msg, form[:len(form)/2+1]) {
					t.Fatalf("case %d: error %q contains secret material", i, msg)
				}
			}
		}
	}
}
