package pki

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hivesec/hive/structs"
)

// nodeCert issues a tls.Certificate for a node, valid from now.
func nodeCert(t *testing.T, ca *CA, id string, role structs.Role, now time.Time) *tls.Certificate {
	t.Helper()
	key := mustKey(t)
	certPEM, _ := mustSign(t, ca, key, id, role, now)
	return tlsCert(t, certPEM, key)
}

func tlsCert(t *testing.T, certPEM []byte, key *ecdsa.PrivateKey) *tls.Certificate {
	t.Helper()
	keyPEM, err := EncodeKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// craftCert issues a node certificate, then lets edit change it and re-signs
// it with the CA, to build certificates SignCSR would never issue.
func craftCert(t *testing.T, ca *CA, id string, role structs.Role, edit func(*x509.Certificate)) *tls.Certificate {
	t.Helper()
	k := mustKey(t)
	_, tmpl := mustSign(t, ca, k, id, role, time.Now())
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &k.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

func serve(c *tls.Certificate) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c, nil }
}

func present(c *tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if c == nil {
			return &tls.Certificate{}, nil // no certificate
		}
		return c, nil
	}
}

// handshake runs a real TLS handshake over loopback TCP and returns both
// sides' errors. The client reads one byte after its handshake because in
// TLS 1.3 the server checks the client certificate after the client has
// finished; a refusal then shows up as an alert on that read.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
		conn := tls.Server(raw, server)
		if err := conn.Handshake(); err != nil {
			done <- err
			return
		}
		_, err = conn.Write([]byte{1})
		done <- err
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	conn := tls.Client(raw, client)
	clientErr = conn.Handshake()
	if clientErr == nil {
		_, clientErr = conn.Read(make([]byte, 1))
	}
	raw.Close()
	return <-done, clientErr
}

func TestInternalServerTLS(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "c1")
	other := mustCA(t, "c2")
	serverCert := nodeCert(t, ca, "m1", structs.RoleManager, now)
	worker := nodeCert(t, ca, "w1", structs.RoleWorker, now)
	foreign := nodeCert(t, other, "w1", structs.RoleWorker, now)
	expired := nodeCert(t, ca, "w1", structs.RoleWorker, now.Add(-30*24*time.Hour))

	noID := craftCert(t, ca, "w1", structs.RoleWorker, func(c *x509.Certificate) { c.URIs = nil })

	errDenied := errors.New("node w1 is on the deny list")
	tests := []struct {
		name       string
		clientCert *tls.Certificate
		maxVersion uint16
		deny       bool
		wantOK     bool
	}{
		{"valid worker", worker, 0, false, true},
		{"TLS 1.2 client", worker, tls.VersionTLS12, false, false},
		{"no client cert", nil, 0, false, false},
		{"cert from another CA", foreign, 0, false, false},
		{"expired cert", expired, 0, false, false},
		{"cert without node identity", noID, 0, false, false},
		{"deny list", worker, 0, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen *x509.Certificate
			verify := func(c *x509.Certificate) error {
				seen = c
				if tt.deny {
					return errDenied
				}
				return nil
			}
			srv := InternalServerTLS(ca.Pool(), serve(serverCert), verify)
			cli := InternalClientTLS(ca.Pool(), present(tt.clientCert), nil)
			cli.MaxVersion = tt.maxVersion
			if tt.maxVersion != 0 {
				cli.MinVersion = tt.maxVersion
			}
			serr, cerr := handshake(t, srv, cli)
			t.Logf("server: %v; client: %v", serr, cerr)
			if tt.wantOK {
				if serr != nil || cerr != nil {
					t.Fatalf("handshake failed: server %v, client %v", serr, cerr)
				}
				if seen == nil || seen.Subject.CommonName != "w1" {
					t.Fatalf("verify saw %v, want the client leaf", seen)
				}
				return
			}
			if serr == nil {
				t.Fatal("server accepted the handshake")
			}
			if cerr == nil {
				t.Error("client did not see the refusal")
			}
			if tt.deny && !errors.Is(serr, errDenied) {
				t.Errorf("server error %v does not wrap the verify error", serr)
			}
		})
	}
}

func TestInternalClientTLS(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "c1")
	other := mustCA(t, "c2")
	worker := nodeCert(t, ca, "w1", structs.RoleWorker, now)
	errDenied := errors.New("manager m1 is on the deny list")
	tests := []struct {
		name       string
		serverCert *tls.Certificate
		verify     func(*x509.Certificate) error
		wantOK     bool
	}{
		{"manager", nodeCert(t, ca, "m1", structs.RoleManager, now), nil, true},
		{"worker posing as manager", nodeCert(t, ca, "w2", structs.RoleWorker, now), nil, false},
		{"worker cert with manager DNS name", craftCert(t, ca, "w2", structs.RoleWorker, func(c *x509.Certificate) {
			c.DNSNames = []string{ManagerServerName}
		}), nil, false},
		{"manager of another CA", nodeCert(t, other, "m1", structs.RoleManager, now), nil, false},
		{"deny list", nodeCert(t, ca, "m1", structs.RoleManager, now), func(*x509.Certificate) error { return errDenied }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := InternalServerTLS(ca.Pool(), serve(tt.serverCert), nil)
			cli := InternalClientTLS(ca.Pool(), present(worker), tt.verify)
			serr, cerr := handshake(t, srv, cli)
			t.Logf("server: %v; client: %v", serr, cerr)
			if tt.wantOK != (serr == nil && cerr == nil) {
				t.Fatalf("server %v, client %v; want ok=%v", serr, cerr, tt.wantOK)
			}
		})
	}
}

func TestAPIServerTLS(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "c1")
	other := mustCA(t, "c2")
	serverCert := nodeCert(t, ca, "m1", structs.RoleManager, now)
	user := nodeCert(t, ca, "w1", structs.RoleWorker, now)
	foreign := nodeCert(t, other, "w1", structs.RoleWorker, now)
	errDenied := errors.New("denied")
	tests := []struct {
		name       string
		clientCert *tls.Certificate
		tls12      bool
		cbcOnly    bool
		deny       bool
		wantOK     bool
		wantVerify bool
	}{
		{"no client cert", nil, false, false, true, true, false},
		{"no client cert TLS 1.2", nil, true, false, false, true, false},
		{"client cert", user, false, false, false, true, true},
		{"client cert TLS 1.2", user, true, false, false, true, true},
		{"client cert denied", user, false, false, true, false, true},
		{"client cert from another CA", foreign, false, false, false, false, false},
		{"TLS 1.2 CBC suites only", nil, true, true, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			verify := func(*x509.Certificate) error {
				called = true
				if tt.deny {
					return errDenied
				}
				return nil
			}
			srv := APIServerTLS(ca.Pool(), serve(serverCert), verify)
			cli := APIClientTLS(ca.Pool(), tt.clientCert)
			if tt.tls12 {
				cli.MaxVersion = tls.VersionTLS12
			}
			if tt.clientCert == foreign {
				// crypto/tls would quietly not send a cert the server's CA list
				// does not name; force it so the server's check is exercised.
				cli.GetClientCertificate = present(foreign)
			}
			if tt.cbcOnly {
				cli.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
			}
			serr, cerr := handshake(t, srv, cli)
			t.Logf("server: %v; client: %v", serr, cerr)
			if tt.wantOK != (serr == nil && cerr == nil) {
				t.Fatalf("server %v, client %v; want ok=%v", serr, cerr, tt.wantOK)
			}
			if called != tt.wantVerify {
				t.Errorf("verify called = %v, want %v", called, tt.wantVerify)
			}
		})
	}
}
