package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"testing"
)

// FuzzDecryptValue feeds DecryptValue arbitrary envelopes and secret IDs.
// It must never panic, and must succeed only on the untouched envelope for
// the right secret. "alias" holds the same key as "k1", so a relabelled key
// ID is caught only by the AAD binding, and "other" is a different key.
func FuzzDecryptValue(f *testing.F) {
	root := bytes.Repeat([]byte{0x42}, KeySize)
	id := SecretID{"prod", "db", 7}
	pt := []byte("the secret")
	// Built deterministically: fuzz workers are separate processes that rerun
	// this setup, and must compare against the same bytes as the seeds.
	dataKey := bytes.Repeat([]byte{0x44}, KeySize)
	env := &Envelope{
		RootKeyID:      "k1",
		WrappedDataKey: sealWithNonce(f, root, 1, dataKey, dataKeyAAD(id, "k1")),
		Ciphertext:     sealWithNonce(f, dataKey, 2, pt, valueAAD(id)),
	}
	lookup := keys(map[string][]byte{"k1": root, "alias": root, "other": bytes.Repeat([]byte{0x43}, KeySize)})

	f.Add("k1", env.WrappedDataKey, env.Ciphertext, id.Namespace, id.Name, id.Version)
	f.Add("alias", env.WrappedDataKey, env.Ciphertext, id.Namespace, id.Name, id.Version)
	f.Add("k1", env.WrappedDataKey, env.Ciphertext, "prod/db", "", id.Version)
	f.Add("k1", env.WrappedDataKey, env.Ciphertext, "pro", "ddb", id.Version) // collides if fields were just joined
	f.Add("k1", env.WrappedDataKey, env.Ciphertext, id.Namespace, id.Name, id.Version+1)
	f.Add("k1", env.Ciphertext, env.WrappedDataKey, id.Namespace, id.Name, id.Version)
	f.Add("other", []byte{}, []byte{1}, "", "", uint64(0))
	f.Add("unknown", []byte(nil), []byte(nil), "", "", uint64(0))

	if got, err := DecryptValue(env, lookup, id); err != nil || !bytes.Equal(got, pt) {
		f.Fatalf("hand-built envelope: %q, %v", got, err)
	}

	f.Fuzz(func(t *testing.T, kid string, wrapped, ct []byte, ns, name string, version uint64) {
		got, err := DecryptValue(&Envelope{RootKeyID: kid, WrappedDataKey: wrapped, Ciphertext: ct}, lookup, SecretID{ns, name, version})
		if err != nil {
			if got != nil {
				t.Fatalf("returned plaintext with error %v", err)
			}
			return
		}
		untouched := kid == "k1" && bytes.Equal(wrapped, env.WrappedDataKey) && bytes.Equal(ct, env.Ciphertext) &&
			ns == id.Namespace && name == id.Name && version == id.Version
		if !untouched || !bytes.Equal(got, pt) {
			t.Fatalf("decrypted a changed envelope: kid %q, id %q/%q/%d, %q", kid, ns, name, version, got)
		}
	})
}

// FuzzOpen feeds Open arbitrary keys, sealed data and AAD. It must never
// panic, and must succeed only on the exact key, sealed bytes and AAD of
// the one seal made here.
func FuzzOpen(f *testing.F) {
	key := bytes.Repeat([]byte{0x17}, KeySize)
	aad := []byte("aad")
	pt := []byte("plaintext")
	sealed := sealWithNonce(f, key, 1, pt, aad) // deterministic, as in FuzzDecryptValue
	if got, err := Open(key, sealed, aad); err != nil || !bytes.Equal(got, pt) {
		f.Fatalf("hand-built sealed data: %q, %v", got, err)
	}
	f.Add(key, sealed, aad)
	f.Add(key, sealed, []byte(nil))
	f.Add(key, sealed[:len(sealed)-1], aad)
	f.Add(key[:16], sealed, aad)
	f.Add(key, []byte{1}, aad)
	f.Add(key, append([]byte{2}, sealed[1:]...), aad)
	f.Add([]byte(nil), []byte(nil), []byte(nil))

	f.Fuzz(func(t *testing.T, k, s, a []byte) {
		got, err := Open(k, s, a)
		if err != nil {
			if got != nil {
				t.Fatalf("returned plaintext with error %v", err)
			}
			return
		}
		if !bytes.Equal(k, key) || !bytes.Equal(s, sealed) || !bytes.Equal(a, aad) || !bytes.Equal(got, pt) {
			t.Fatalf("opened changed input: key %x, sealed %x, aad %q -> %q", k, s, a, got)
		}
	})
}

// sealWithNonce produces Seal's format (version 1 | nonce | ciphertext+tag)
// with a fixed nonce, which Seal never uses, so fuzz seeds are the same in
// every process. It also pins the format: Open must accept it.
func sealWithNonce(f *testing.F, key []byte, nonceByte byte, pt, aad []byte) []byte {
	f.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		f.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		f.Fatal(err)
	}
	out := append([]byte{1}, bytes.Repeat([]byte{nonceByte}, aead.NonceSize())...)
	return aead.Seal(out, out[1:], pt, aad)
}
