package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hivesec/hive/structs"
)

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSign(t *testing.T, ca *CA, key *ecdsa.PrivateKey, id string, role structs.Role, now time.Time) ([]byte, *x509.Certificate) {
	t.Helper()
	csr, err := NewCSR(key, "ignored")
	if err != nil {
		t.Fatal(err)
	}
	p, c, err := ca.SignCSR(csr, id, role, nil, 0, now)
	if err != nil {
		t.Fatalf("SignCSR: %v", err)
	}
	return p, c
}

func TestSignCSRIdentity(t *testing.T) {
	ca, err := NewCA("c1", testNow)
	if err != nil {
		t.Fatal(err)
	}
	key := mustKey(t)
	csr, err := NewCSR(key, "evil-manager")
	if err != nil {
		t.Fatal(err)
	}
	ips := []net.IP{net.ParseIP("10.0.0.5"), net.ParseIP("127.0.0.1")}
	certPEM, cert, err := ca.SignCSR(csr, "node-1", structs.RoleWorker, ips, 2*time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseCertPEM(certPEM)
	if err != nil || !parsed.Equal(cert) {
		t.Fatalf("returned PEM does not hold the returned cert: %v", err)
	}
	id, role, err := Identity(cert)
	if err != nil || id != "node-1" || role != structs.RoleWorker {
		t.Fatalf("Identity = %q, %q, %v", id, role, err)
	}
	if cert.Subject.CommonName != "node-1" {
		t.Errorf("CN = %q, the CSR's subject must be ignored", cert.Subject.CommonName)
	}
	if !cert.NotBefore.Equal(testNow.Add(-time.Minute)) || !cert.NotAfter.Equal(testNow.Add(2*time.Hour)) {
		t.Errorf("validity %s..%s", cert.NotBefore, cert.NotAfter)
	}
	if strings.Join(cert.DNSNames, ",") != "localhost,worker.hive.internal" {
		t.Errorf("DNSNames = %v", cert.DNSNames)
	}
	var gotIPs []string
	for _, ip := range cert.IPAddresses {
		gotIPs = append(gotIPs, ip.String())
	}
	if strings.Join(gotIPs, ",") != "10.0.0.5,127.0.0.1,::1" {
		t.Errorf("IPAddresses = %v", gotIPs)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature || len(cert.ExtKeyUsage) != 2 {
		t.Errorf("KeyUsage=%v ExtKeyUsage=%v", cert.KeyUsage, cert.ExtKeyUsage)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		t.Error("cert is not for the CSR key")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("cert does not verify against the CA: %v", err)
	}
	if SerialHex(cert) != strings.ToLower(cert.SerialNumber.Text(16)) || SerialHex(cert) == "" {
		t.Errorf("SerialHex = %q", SerialHex(cert))
	}

	// Lifetime 0 means the default.
	_, cert, err = ca.SignCSR(csr, "node-1", structs.RoleManager, nil, 0, testNow)
	if err != nil || cert.NotAfter.Sub(testNow) != DefaultCertLifetime {
		t.Errorf("default lifetime: %v, %v", cert.NotAfter.Sub(testNow), err)
	}
}

func TestSignCSRErrors(t *testing.T) {
	ca, err := NewCA("c1", testNow)
	if err != nil {
		t.Fatal(err)
	}
	key := mustKey(t)
	good, err := NewCSR(key, "n")
	if err != nil {
		t.Fatal(err)
	}
	// Flip a bit in the signature (the last bytes of the DER).
	block, _ := pem.Decode(good)
	bad := append([]byte(nil), block.Bytes...)
	bad[len(bad)-2] ^= 0xff
	badSig := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: bad})
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384CSR, err := NewCSR(p384, "n")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		csr      []byte
		id       string
		role     structs.Role
		ips      []net.IP
		lifetime time.Duration
		wantErr  string
	}{
		{"bad CSR signature", badSig, "n1", "worker", nil, 0, "signature is invalid"},
		{"not PEM", []byte("junk"), "n1", "worker", nil, 0, "no PEM block"},
		{"wrong PEM type", ca.CertPEM, "n1", "worker", nil, 0, `expected "CERTIFICATE REQUEST"`},
		{"malformed DER", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1, 2}}), "n1", "worker", nil, 0, "malformed CSR"},
		{"P-384 key", p384CSR, "n1", "worker", nil, 0, "expected ECDSA P-256"},
		{"empty node ID", good, "", "worker", nil, 0, "node ID"},
		{"slash in node ID", good, "a/b", "worker", nil, 0, "node ID"},
		{"unknown role", good, "n1", "admin", nil, 0, "unknown role"},
		{"negative lifetime", good, "n1", "worker", nil, -time.Hour, "negative"},
		{"outlives CA", good, "n1", "worker", nil, 11 * 365 * 24 * time.Hour, "after the cluster CA"},
		{"invalid IP", good, "n1", "worker", []net.IP{{1, 2, 3}}, 0, "IP address #1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ca.SignCSR(tt.csr, tt.id, tt.role, tt.ips, tt.lifetime, testNow)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestIdentityErrors(t *testing.T) {
	u := func(s string) []*url.URL {
		p, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return []*url.URL{p}
	}
	tests := []struct {
		name    string
		uris    []*url.URL
		wantErr string
	}{
		{"no URI", nil, "no hive://node"},
		{"wrong scheme", u("spiffe://node/worker/n1"), "no hive://node"},
		{"wrong host", u("hive://user/worker/n1"), "malformed"},
		{"too few parts", u("hive://node/worker"), "malformed"},
		{"too many parts", u("hive://node/worker/n1/x"), "malformed"},
		{"query", u("hive://node/worker/n1?x=1"), "malformed"},
		{"bad role", u("hive://node/admin/n1"), "unknown role"},
		{"empty ID", u("hive://node/worker/"), "invalid node ID"},
		{"two identities", append(u("hive://node/worker/n1"), u("hive://node/manager/n1")...), "more than one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := &x509.Certificate{SerialNumber: big.NewInt(255), Subject: pkix.Name{CommonName: "n1"}, URIs: tt.uris}
			_, _, err := Identity(cert)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
	if _, _, err := Identity(nil); err == nil {
		t.Error("Identity(nil) succeeded")
	}
}

func TestRenewAt(t *testing.T) {
	nb := testNow
	na := nb.Add(DefaultCertLifetime)
	total := na.Sub(nb)
	lo, hi := nb.Add(total/2), nb.Add(total*8/10)
	r := mrand.New(mrand.NewPCG(1, 2))
	var sawLow, sawHigh bool
	for i := 0; i < 100000; i++ {
		rr := r
		if i%2 == 1 {
			rr = nil // the global generator must obey the same bounds
		}
		got := RenewAt(nb, na, rr)
		if got.Before(lo) || got.After(hi) {
			t.Fatalf("RenewAt = %s, outside [%s, %s]", got, lo, hi)
		}
		sawLow = sawLow || got.Before(nb.Add(total*55/100))
		sawHigh = sawHigh || got.After(nb.Add(total*75/100))
	}
	if !sawLow || !sawHigh {
		t.Error("RenewAt does not spread over the window")
	}
	if got := RenewAt(na, nb, nil); !got.Equal(na) {
		t.Errorf("inverted window: RenewAt = %s, want notBefore", got)
	}
}
