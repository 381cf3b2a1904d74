package pki

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mustCA(t *testing.T, id string) *CA {
	t.Helper()
	ca, err := NewCA(id, time.Now())
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

func TestNewCA(t *testing.T) {
	ca, err := NewCA("c1", testNow)
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Cert
	if c.Subject.CommonName != "Hive Cluster CA c1" {
		t.Errorf("CN = %q", c.Subject.CommonName)
	}
	if !c.IsCA || c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("IsCA=%v KeyUsage=%v", c.IsCA, c.KeyUsage)
	}
	if got := c.NotAfter.Sub(testNow); got != caLifetime {
		t.Errorf("lifetime = %s, want %s", got, caLifetime)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %s not a positive 128-bit number", c.SerialNumber)
	}
	if _, err := NewCA("", testNow); err == nil {
		t.Error("NewCA with empty cluster ID succeeded")
	}
}

func TestLoadCARoundTrip(t *testing.T) {
	ca := mustCA(t, "c1")
	der, err := ca.KeyDER()
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadCA(ca.CertPEM, der)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if got.Pin() != ca.Pin() || !got.Key.Equal(ca.Key) {
		t.Error("loaded CA differs from the original")
	}
	if len(ca.Pin()) != PinLength || strings.ToUpper(ca.Pin()) != ca.Pin() {
		t.Errorf("pin %q: want %d upper-case chars", ca.Pin(), PinLength)
	}
}

func TestLoadCAErrors(t *testing.T) {
	ca := mustCA(t, "c1")
	otherDER, err := mustCA(t, "c2").KeyDER()
	if err != nil {
		t.Fatal(err)
	}
	goodDER, err := ca.KeyDER()
	if err != nil {
		t.Fatal(err)
	}
	nodeKey := mustKey(t)
	keyPEM, err := EncodeKeyPEM(nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	leafPEM, _ := mustSign(t, ca, nodeKey, "n1", "worker", time.Now())
	tests := []struct {
		name    string
		cert    []byte
		key     []byte
		wantErr string
	}{
		{"key from another CA", ca.CertPEM, otherDER, "does not match"},
		{"key not DER", ca.CertPEM, []byte("nope"), "not PKCS#8"},
		{"cert not PEM", []byte("garbage"), goodDER, "no PEM block"},
		{"cert wrong PEM type", keyPEM, goodDER, `expected "CERTIFICATE"`},
		{"cert not a CA", leafPEM, goodDER, "not a CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadCA(tt.cert, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestKeyPEMRoundTrip(t *testing.T) {
	k := mustKey(t)
	b, err := EncodeKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeKeyPEM(b)
	if err != nil || !got.Equal(k) {
		t.Fatalf("DecodeKeyPEM = %v, %v", got, err)
	}
	ca := mustCA(t, "c1")
	for name, in := range map[string][]byte{
		"empty":      nil,
		"wrong type": ca.CertPEM,
		"bad DER":    []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
	} {
		if _, err := DecodeKeyPEM(in); err == nil {
			t.Errorf("%s: DecodeKeyPEM succeeded", name)
		}
	}
}

func TestFingerprint(t *testing.T) {
	fp := Fingerprint([]byte("x"))
	// sha256("x") = 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881
	if fp != "FVYRMQVXE2YEIALCPSU7XLBS6XEFGD5RSA6MJWYCEWDRPEQ2JCAQ" {
		t.Errorf("Fingerprint = %s", fp)
	}
}
