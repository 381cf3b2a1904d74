package identity

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/structs"
)

func newCA(t testing.TB) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("cluster-"+t.Name(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue signs a fresh key for nodeID and returns the cert and key PEM.
func issue(t testing.TB, ca *pki.CA, nodeID string, role structs.Role, lifetime time.Duration) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "n")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err = ca.SignCSR(csr, nodeID, role, []net.IP{net.ParseIP("127.0.0.1")}, lifetime, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err = pki.EncodeKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func mode(t testing.TB, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestNodeSaveLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("load from an empty dir: %v, want ErrNoIdentity", err)
	}
	n := &Node{
		ID: "n-1", Role: structs.RoleWorker, ClusterID: "c", Name: "w1", Address: "10.0.0.1",
		APIPort: 0, RPCPort: 0, SerfPort: 7402,
		Managers: []structs.PeerAddrs{{ID: "m", APIAddr: "10.0.0.2:7400", RPCAddr: "10.0.0.2:7401", SerfAddr: "10.0.0.2:7402"}},
	}
	if err := n.Save(dir); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, filepath.Join(dir, NodeFile)); m != 0o600 {
		t.Errorf("node.json mode %v, want 0600", m)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != n.ID || got.Role != n.Role || got.ClusterID != n.ClusterID || got.Name != n.Name ||
		got.Address != n.Address || got.SerfPort != n.SerfPort || len(got.Managers) != 1 || got.Managers[0] != n.Managers[0] {
		t.Errorf("loaded %+v, want %+v", got, n)
	}
	if got.SerfAddr() != "10.0.0.1:7402" || got.APIAddr() != "10.0.0.1:0" {
		t.Errorf("addresses %s %s", got.SerfAddr(), got.APIAddr())
	}

	for name, content := range map[string]string{
		"damaged":      `{"id":`,
		"no id":        `{"role":"worker"}`,
		"unknown role": `{"id":"x","role":"admin"}`,
		"no role":      `{"id":"x"}`,
	} {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, NodeFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(d)
		if err == nil || errors.Is(err, ErrNoIdentity) {
			t.Errorf("%s node.json: %v, want a damaged-identity error", name, err)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "f")
	if err := WriteFileAtomic(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "two" {
		t.Fatalf("content %q, %v", b, err)
	}
	if m := mode(t, path); m != 0o644 {
		t.Errorf("mode %v, want 0644", m)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestCertsSaveLoadUpdate(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	certPEM, keyPEM := issue(t, ca, "n-1", structs.RoleWorker, time.Hour)
	c, err := SaveCerts(dir, certPEM, keyPEM, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, filepath.Join(dir, TLSDir, KeyFile)); m != 0o600 {
		t.Errorf("key file mode %v, want 0600", m)
	}
	if c.CA.Equal(ca.Cert) == false || string(c.CAPEM) != string(ca.CertPEM) {
		t.Error("loaded CA differs")
	}
	if id, role, err := pki.Identity(c.Leaf()); err != nil || id != "n-1" || role != structs.RoleWorker {
		t.Errorf("leaf identity %s/%s %v", id, role, err)
	}
	if c.Expired(time.Now()) || !c.Expired(c.Leaf().NotAfter) || !c.Expired(c.Leaf().NotAfter.Add(time.Second)) {
		t.Error("Expired is wrong around NotAfter")
	}
	got, _ := c.GetCertificate(nil)
	gotClient, _ := c.GetClientCertificate(nil)
	if got != c.Current() || gotClient != c.Current() {
		t.Error("TLS callbacks do not serve the current certificate")
	}

	// Update swaps in memory and on disk.
	newCert, newKey := issue(t, ca, "n-1", structs.RoleWorker, 2*time.Hour)
	old := pki.SerialHex(c.Leaf())
	if err := c.Update(newCert, newKey); err != nil {
		t.Fatal(err)
	}
	if pki.SerialHex(c.Leaf()) == old {
		t.Error("Update kept the old certificate in memory")
	}
	reloaded, err := LoadCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if pki.SerialHex(reloaded.Leaf()) != pki.SerialHex(c.Leaf()) {
		t.Error("Update did not write the new certificate to disk")
	}

	// A certificate that does not match the key is refused and changes
	// nothing.
	otherCert, _ := issue(t, ca, "n-1", structs.RoleWorker, time.Hour)
	cur := pki.SerialHex(c.Leaf())
	if err := c.Update(otherCert, newKey); err == nil {
		t.Fatal("Update accepted a certificate for another key")
	}
	reloaded, err = LoadCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if pki.SerialHex(c.Leaf()) != cur || pki.SerialHex(reloaded.Leaf()) != cur {
		t.Error("a refused Update changed the certificate")
	}

	if _, err := LoadCerts(t.TempDir()); err == nil {
		t.Error("LoadCerts of an empty dir: no error")
	}
}

func TestRenewOnce(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	certPEM, keyPEM := issue(t, ca, "n-1", structs.RoleWorker, time.Hour)
	c, err := SaveCerts(dir, certPEM, keyPEM, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	signWith := func(signer *pki.CA) func(context.Context, []byte) ([]byte, error) {
		return func(_ context.Context, csr []byte) ([]byte, error) {
			out, _, err := signer.SignCSR(csr, "n-1", structs.RoleWorker, nil, time.Hour, time.Now())
			return out, err
		}
	}
	r := &Renewer{Certs: c, Logger: hclog.NewNullLogger(), Renew: signWith(ca)}
	old := pki.SerialHex(c.Leaf())
	if err := r.RenewOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	renewed := pki.SerialHex(c.Leaf())
	if renewed == old {
		t.Fatal("RenewOnce kept the old certificate")
	}

	for name, renew := range map[string]func(context.Context, []byte) ([]byte, error){
		"other CA": signWith(newCA(t)),
		"garbage":  func(context.Context, []byte) ([]byte, error) { return []byte("nope"), nil },
		"error":    func(context.Context, []byte) ([]byte, error) { return nil, errors.New("manager unreachable") },
		// A certificate from the right CA but for another key must not be
		// installed with the new key.
		"foreign key": func(context.Context, []byte) ([]byte, error) {
			out, _ := issue(t, ca, "n-1", structs.RoleWorker, time.Hour)
			return out, nil
		},
	} {
		r.Renew = renew
		if err := r.RenewOnce(context.Background()); err == nil {
			t.Errorf("%s: RenewOnce succeeded", name)
		}
		if pki.SerialHex(c.Leaf()) != renewed {
			t.Errorf("%s: a failed renewal replaced the certificate", name)
		}
	}
}

// fakeManager serves /v1/join/ca and /v1/join like a manager of ca would,
// and records whether a join request reached it.
type fakeManager struct {
	srv    *httptest.Server
	mu     sync.Mutex
	joins  int
	answer func(req *structs.JoinRequest) *structs.JoinResponse
}

func newFakeManager(t *testing.T, ca *pki.CA) *fakeManager {
	t.Helper()
	certPEM, keyPEM := issue(t, ca, "m-1", structs.RoleManager, time.Hour)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	fm := &fakeManager{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/join/ca", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(structs.CAResponse{CACertPEM: string(ca.CertPEM)})
	})
	mux.HandleFunc("POST /v1/join", func(w http.ResponseWriter, r *http.Request) {
		fm.mu.Lock()
		fm.joins++
		fm.mu.Unlock()
		var req structs.JoinRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(fm.answer(&req))
	})
	fm.srv = httptest.NewUnstartedServer(mux)
	fm.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	fm.srv.StartTLS()
	t.Cleanup(fm.srv.Close)
	return fm
}

func (fm *fakeManager) joinCount() int {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return fm.joins
}

func TestJoin(t *testing.T) {
	ca := newCA(t)
	secret, err := pki.NewJoinSecret()
	if err != nil {
		t.Fatal(err)
	}
	fm := newFakeManager(t, ca)
	signAnswer := func(signer *pki.CA, caPEM []byte) func(*structs.JoinRequest) *structs.JoinResponse {
		return func(req *structs.JoinRequest) *structs.JoinResponse {
			certPEM, _, err := signer.SignCSR([]byte(req.CSRPEM), "n-9", structs.RoleWorker, nil, time.Hour, time.Now())
			if err != nil {
				return &structs.JoinResponse{}
			}
			return &structs.JoinResponse{ClusterID: "c", NodeID: "n-9", Role: structs.RoleWorker, CertPEM: string(certPEM), CACertPEM: string(caPEM)}
		}
	}
	fm.answer = signAnswer(ca, ca.CertPEM)
	addr := strings.TrimPrefix(fm.srv.URL, "https://")
	params := func(dir, tok string) JoinParams {
		return JoinParams{DataDir: dir, Addr: addr, Token: tok, Name: "w", Address: "127.0.0.1", SerfPort: 7402}
	}

	t.Run("PinMismatchSendsNothing", func(t *testing.T) {
		dir := t.TempDir()
		other := newCA(t)
		_, _, _, err := Join(context.Background(), params(dir, pki.FormatJoinToken(other.Pin(), secret)))
		if err == nil || !strings.Contains(err.Error(), "pin") {
			t.Fatalf("join under another CA's pin: %v, want a pin mismatch", err)
		}
		if n := fm.joinCount(); n != 0 {
			t.Errorf("the secret was sent %d times to a server failing the pin check", n)
		}
		if _, err := Load(dir); !errors.Is(err, ErrNoIdentity) {
			t.Errorf("a refused join left an identity: %v", err)
		}
	})

	t.Run("MalformedTokenNoNetwork", func(t *testing.T) {
		// The address is unreachable: the token is checked first.
		p := params(t.TempDir(), "HIVE1-short-x")
		p.Addr = "127.0.0.1:1"
		_, _, _, err := Join(context.Background(), p)
		if !errors.Is(err, pki.ErrBadJoinToken) {
			t.Errorf("malformed token: %v, want ErrBadJoinToken", err)
		}
	})

	t.Run("Success", func(t *testing.T) {
		dir := t.TempDir()
		n, certs, resp, err := Join(context.Background(), params(dir, pki.FormatJoinToken(ca.Pin(), secret)))
		if err != nil {
			t.Fatal(err)
		}
		if n.ID != "n-9" || resp.NodeID != "n-9" || n.Role != structs.RoleWorker {
			t.Errorf("joined as %+v", n)
		}
		loaded, err := Load(dir)
		if err != nil || loaded.ID != "n-9" {
			t.Errorf("identity on disk: %+v %v", loaded, err)
		}
		if id, _, err := pki.Identity(certs.Leaf()); err != nil || id != "n-9" {
			t.Errorf("certificate identity %s %v", id, err)
		}
	})

	t.Run("AnswerWithAnotherCARefused", func(t *testing.T) {
		// The manager passes the pin check, then answers with a different CA
		// (and a certificate from it): nothing may be saved.
		other := newCA(t)
		fm.answer = signAnswer(other, other.CertPEM)
		defer func() { fm.answer = signAnswer(ca, ca.CertPEM) }()
		dir := t.TempDir()
		_, _, _, err := Join(context.Background(), params(dir, pki.FormatJoinToken(ca.Pin(), secret)))
		if err == nil {
			t.Fatal("join answered with another CA succeeded")
		}
		if _, err := Load(dir); !errors.Is(err, ErrNoIdentity) {
			t.Errorf("a refused join left an identity: %v", err)
		}
	})
}
