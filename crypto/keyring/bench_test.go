package keyring

import (
	"bytes"
	"testing"
)

// benchValue is a typical secret: a password or token is smaller, a TLS key
// or config file larger.
var benchValue = bytes.Repeat([]byte("x"), 1024)

func BenchmarkEncrypt(b *testing.B) {
	root := benchKey(b)
	b.SetBytes(int64(len(benchValue)))
	for b.Loop() {
		if _, err := EncryptValue("k1", root, testID, benchValue); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	root := benchKey(b)
	env := mustEncrypt(b, "k1", root, testID, benchValue)
	lookup := keys(map[string][]byte{"k1": root})
	b.SetBytes(int64(len(benchValue)))
	for b.Loop() {
		if _, err := DecryptValue(env, lookup, testID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRewrap measures root-key rotation, which re-wraps every secret
// version; the target is at least 5,000 secrets/s.
func BenchmarkRewrap(b *testing.B) {
	oldKey, newKey := benchKey(b), benchKey(b)
	env := mustEncrypt(b, "old", oldKey, testID, benchValue)
	n := 0
	for b.Loop() {
		if _, err := Rewrap(env, oldKey, "new", newKey, testID); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "secrets/s")
}

func benchKey(b *testing.B) []byte {
	b.Helper()
	k, err := NewKey()
	if err != nil {
		b.Fatal(err)
	}
	return k
}
