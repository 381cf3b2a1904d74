package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hivesec/hive/structs"
)

// testCert makes a self-signed CA certificate that is also the server's
// certificate, valid for dnsName.
func testCert(t *testing.T, dnsName string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "hive test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:              []string{dnsName},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// testServer starts a TLS server for h with a certificate for
// manager.hive.internal and returns it with its CA PEM.
func testServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, []byte) {
	t.Helper()
	cert, caPEM := testCert(t, ManagerServerName)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, caPEM
}

func testClient(t *testing.T, srv *httptest.Server, caPEM []byte, token string) *Client {
	t.Helper()
	c, err := NewClient(&Config{Address: srv.URL, Token: token, CACertPEM: caPEM, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func TestDefaultConfigEnv(t *testing.T) {
	cases := []struct{ env, want string }{
		{"", DefaultAddress},
		{"https://10.0.0.1:7400", "https://10.0.0.1:7400"},
		{"https://10.0.0.1", "https://10.0.0.1:7400"},
		{"https://manager.example/", "https://manager.example:7400"},
		{"10.0.0.2:8400", "https://10.0.0.2:8400"},
		{"10.0.0.3", "https://10.0.0.3:7400"},
		{"hive-1", "https://hive-1:7400"},
		{"[::1]:9000", "https://[::1]:9000"},
		{"::1", "https://[::1]:7400"},
		{"[fd00::1]", "https://[fd00::1]:7400"},
		{"http://10.0.0.1:7400", "http://10.0.0.1:7400"}, // kept; NewClient refuses it
	}
	for _, tc := range cases {
		t.Setenv(EnvAddress, tc.env)
		t.Setenv(EnvToken, " hive_mgmt_x ")
		t.Setenv(EnvCACert, "/etc/hive/ca.pem")
		c := DefaultConfig()
		if c.Address != tc.want {
			t.Errorf("HIVE_ADDR=%q: Address = %q, want %q", tc.env, c.Address, tc.want)
		}
		if c.Token != "hive_mgmt_x" || c.CACertFile != "/etc/hive/ca.pem" {
			t.Errorf("Token, CACertFile = %q, %q", c.Token, c.CACertFile)
		}
		if c.Timeout != DefaultTimeout {
			t.Errorf("Timeout = %v", c.Timeout)
		}
	}
}

func TestNormalizeAddressErrors(t *testing.T) {
	for _, in := range []string{"", "http://10.0.0.1:7400", "https://", "10.0.0.1:0", "10.0.0.1:http", "https://h:99999", "https://h:7400/v1", "a/b", "ftp://x"} {
		if got, err := NormalizeAddress(in); err == nil {
			t.Errorf("NormalizeAddress(%q) = %q, want error", in, got)
		}
	}
	_, err := NormalizeAddress("http://10.0.0.1:7400")
	if err == nil || !strings.Contains(err.Error(), "https://10.0.0.1:7400") {
		t.Errorf("http error should suggest https: %v", err)
	}
}

func TestNewClientNeedsCA(t *testing.T) {
	_, err := NewClient(&Config{Address: "10.0.0.1"})
	if err == nil || !strings.Contains(err.Error(), "HIVE_CACERT") || !strings.Contains(err.Error(), "bootstrap/ca.pem") {
		t.Fatalf("want an error naming HIVE_CACERT and bootstrap/ca.pem, got %v", err)
	}
	_, err = NewClient(&Config{Address: "10.0.0.1", CACertFile: filepath.Join(t.TempDir(), "missing.pem")})
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = NewClient(&Config{Address: "10.0.0.1", CACertFile: bad}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("bad file: %v", err)
	}
	if _, err = NewClient(&Config{Address: "http://10.0.0.1", CACertFile: bad}); err == nil || !strings.Contains(err.Error(), "HTTPS") {
		t.Fatalf("http address: %v", err)
	}
}

func TestAuthHeaderAndIndex(t *testing.T) {
	srv, ca := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/nodes" {
			t.Errorf("got %s %s", r.Method, r.URL.Path)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer hive_mgmt_secret" {
			writeJSON(w, 401, structs.ErrorResponse{Error: "missing or invalid token", Code: "unauthenticated"})
			return
		}
		w.Header().Set(IndexHeader, "42")
		writeJSON(w, 200, []structs.NodePublic{{ID: "n1", Name: "a", Role: structs.RoleManager}})
	})
	nodes, meta, err := testClient(t, srv, ca, "hive_mgmt_secret").Nodes().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	if meta.LastIndex != 42 || len(nodes) != 1 || nodes[0].ID != "n1" {
		t.Fatalf("got %+v %+v", nodes, meta)
	}

	_, _, err = testClient(t, srv, ca, "").Nodes().List(nil)
	var ae *Error
	if !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Code != "unauthenticated" {
		t.Fatalf("no token: %v", err)
	}
}

func TestNoTokenNoHeader(t *testing.T) {
	srv, ca := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Authorization"]; ok {
			t.Errorf("Authorization sent without a token")
		}
		writeJSON(w, 200, structs.LeaderResponse{LeaderID: "m1", LeaderAddr: "10.0.0.1:7401"})
	})
	l, err := testClient(t, srv, ca, "").Status().Leader()
	if err != nil || l.LeaderID != "m1" {
		t.Fatalf("%+v %v", l, err)
	}
}

func TestBlockingQueryParams(t *testing.T) {
	var got string
	srv, ca := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.RawQuery
		q := r.URL.Query()
		if q.Get("index") != "7" || q.Get("wait") != "30s" || !q.Has("consistent") {
			t.Errorf("query = %q", r.URL.RawQuery)
		}
		if _, err := time.ParseDuration(q.Get("wait")); err != nil {
			t.Errorf("wait not a Go duration: %v", err)
		}
		w.Header().Set(IndexHeader, "8")
		writeJSON(w, 200, []structs.Namespace{{Name: "default"}})
	})
	c := testClient(t, srv, ca, "t")
	_, meta, err := c.Namespaces().List(&QueryOptions{WaitIndex: 7, WaitTime: 30 * time.Second, Consistent: true})
	if err != nil || meta.LastIndex != 8 {
		t.Fatalf("%+v %v", meta, err)
	}
	if got != "index=7&wait=30s&consistent" {
		t.Errorf("raw query = %q", got)
	}
	if got := (&QueryOptions{WaitIndex: 3}).encode(); got != "index=3&wait=5m0s" {
		t.Errorf("default wait: %q", got)
	}
	if (&QueryOptions{}).encode() != "" || (*QueryOptions)(nil).encode() != "" {
		t.Error("empty options should add no query")
	}
}

func TestIndexHeader(t *testing.T) {
	hdr := ""
	srv, ca := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		if hdr != "" {
			w.Header().Set(IndexHeader, hdr)
		}
		writeJSON(w, 200, []structs.Event{})
	})
	c := testClient(t, srv, ca, "t")
	_, meta, err := c.Events().List(nil)
	if err != nil || meta.LastIndex != 0 {
		t.Fatalf("missing header: %+v %v", meta, err)
	}
	hdr = "18446744073709551615"
	if _, meta, err = c.Events().List(nil); err != nil || meta.LastIndex != 1<<64-1 {
		t.Fatalf("max: %+v %v", meta, err)
	}
	hdr = "abc"
	if _, _, err = c.Events().List(nil); err == nil || !strings.Contains(err.Error(), IndexHeader) {
		t.Fatalf("bad header: %v", err)
	}
}

func TestErrorDecoding(t *testing.T) {
	srv, ca := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/node/nope":
			writeJSON(w, 404, structs.ErrorResponse{Error: `node "nope" not found`, Code: "not_found"})
		case "/v1/node/proxy":
			w.WriteHeader(502)
			_, _ = io.WriteString(w, "bad gateway from proxy\n")
		case "/v1/node/empty":
			w.WriteHeader(503)
		case "/v1/node/garbage":
			writeJSON(w, 200, "not an object")
		}
	})
	c := testClient(t, srv, ca, "t")

	_, _, err := c.Nodes().Info("nope", nil)
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("want *Error, got %T %v", err, err)
	}
	if ae.StatusCode != 404 || ae.Code != "not_found" || ae.Message != `node "nope" not found` {
		t.Fatalf("%+v", ae)
	}
	if err.Error() != `node "nope" not found (HTTP 404)` {
		t.Fatalf("Error() = %q", err.Error())
	}

	_, _, err = c.Nodes().Info("proxy", nil)
	if !errors.As(err, &ae) || ae.StatusCode != 502 || ae.Message != "bad gateway from proxy" || ae.Code != "" {
		t.Fatalf("text body: %v", err)
	}
	_, _, err = c.Nodes().Info("empty", nil)
	if !errors.As(err, &ae) || err.Error() != "service unavailable (HTTP 503)" {
		t.Fatalf("empty body: %v", err)
	}
	_, _, err = c.Nodes().Info("garbage", nil)
	if err == nil || errors.As(err, &ae) || !strings.Contains(err.Error(), "decoding") {
		t.Fatalf("bad JSON: %v", err)
	}
	if _, _, err = c.Nodes().Info("", nil); err == nil {
		t.Fatal("empty ID accepted")
	}
}

func TestWrites(t *testing.T) {
	type call struct{ method, path, body string }
	var calls []call
	srv, ca := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		calls = append(calls, call{r.Method, r.URL.EscapedPath(), strings.TrimSpace(string(b))})
		switch r.URL.Path {
		case "/v1/join-tokens", "/v1/join-tokens/rotate/worker":
			writeJSON(w, 200, structs.JoinTokenCreateResponse{Token: "HIVE1-x", Info: structs.JoinTokenPublic{ID: "t1", Role: structs.RoleWorker}})
		case "/v1/node/renew":
			writeJSON(w, 200, structs.RenewResponse{CertPEM: "CERT"})
		default:
			writeJSON(w, 200, struct{}{})
		}
	})
	c := testClient(t, srv, ca, "t")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Namespaces().Create(structs.NamespaceRequest{Name: "web", Description: "front"}))
	must(c.Namespaces().Delete("web"))
	must(c.Nodes().Remove("a/b"))
	must(c.JoinTokens().Revoke("t1"))
	must(c.Operator().GossipRotate())
	tok, err := c.JoinTokens().Create(structs.JoinTokenCreateRequest{Role: structs.RoleWorker, TTL: "1h", MaxUses: 2})
	must(err)
	if tok.Token != "HIVE1-x" {
		t.Fatalf("%+v", tok)
	}
	_, err = c.JoinTokens().Rotate(structs.RoleWorker)
	must(err)
	rr, err := c.Nodes().Renew([]byte("CSR"))
	must(err)
	if rr.CertPEM != "CERT" {
		t.Fatalf("%+v", rr)
	}
	want := []call{
		{"PUT", "/v1/namespace/web", `{"name":"web","description":"front"}`},
		{"DELETE", "/v1/namespace/web", ""},
		{"DELETE", "/v1/node/a%2Fb", ""},
		{"DELETE", "/v1/join-token/t1", ""},
		{"POST", "/v1/operator/gossip/rotate", ""},
		{"POST", "/v1/join-tokens", `{"role":"worker","ttl":"1h","max_uses":2}`},
		{"POST", "/v1/join-tokens/rotate/worker", ""},
		{"POST", "/v1/node/renew", `{"csr_pem":"CSR"}`},
	}
	if len(calls) != len(want) {
		t.Fatalf("calls = %+v", calls)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Errorf("call %d = %+v, want %+v", i, calls[i], want[i])
		}
	}
	if _, err := c.JoinTokens().Rotate("admin"); err == nil || !strings.Contains(err.Error(), `invalid role "admin"`) {
		t.Errorf("bad role: %v", err)
	}
}

func TestSnapshot(t *testing.T) {
	archive := bytes.Repeat([]byte("hive-snapshot"), 100000)
	var restored []byte
	srv, ca := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(archive)
		case http.MethodPut:
			if ct := r.Header.Get("Content-Type"); ct != "application/octet-stream" {
				t.Errorf("content type %q", ct)
			}
			restored, _ = io.ReadAll(r.Body)
			writeJSON(w, 200, struct{}{})
		}
	})
	c := testClient(t, srv, ca, "t")
	var buf bytes.Buffer
	if err := c.Operator().SnapshotSave(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), archive) {
		t.Fatal("saved archive differs")
	}
	if err := c.Operator().SnapshotRestore(bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(restored, archive) {
		t.Fatal("restored archive differs")
	}
}

func TestTLSFailures(t *testing.T) {
	srv, _ := testServer(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, []structs.RaftPeer{}) })
	_, otherCA := testCert(t, ManagerServerName)
	_, err := testClient(t, srv, otherCA, "t").Operator().RaftPeers(nil)
	if err == nil || !strings.Contains(err.Error(), "HIVE_CACERT") {
		t.Fatalf("wrong CA: %v", err)
	}

	cert, ca := testCert(t, "other.example")
	srv2 := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv2.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv2.StartTLS()
	defer srv2.Close()
	_, err = testClient(t, srv2, ca, "t").Operator().RaftPeers(nil)
	if err == nil || !strings.Contains(err.Error(), "not a Hive manager") {
		t.Fatalf("wrong name: %v", err)
	}

	c, err := NewClient(&Config{Address: "127.0.0.1:1", CACertPEM: ca})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status().Leader(); err == nil || !strings.Contains(err.Error(), "HIVE_ADDR") {
		t.Fatalf("unreachable: %v", err)
	}
}

func TestClientCertificate(t *testing.T) {
	nodeCert, _ := testCert(t, "node")
	srv, ca := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) != 1 || !r.TLS.PeerCertificates[0].Equal(nodeCert.Leaf) {
			writeJSON(w, 403, structs.ErrorResponse{Error: "node certificate required", Code: "forbidden"})
			return
		}
		writeJSON(w, 200, structs.GossipKeysResponse{Keys: [][]byte{[]byte("k1")}})
	})
	srv.TLS.ClientAuth = tls.RequestClientCert
	c, err := NewClient(&Config{Address: srv.URL, CACertPEM: ca, ClientCert: &nodeCert})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := c.Nodes().GossipKeys()
	if err != nil || len(keys.Keys) != 1 || string(keys.Keys[0]) != "k1" {
		t.Fatalf("%+v %v", keys, err)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv, ca := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c, err := NewClient(&Config{Address: srv.URL, CACertPEM: ca, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.Status().Leader(); err == nil || !strings.Contains(err.Error(), "in time") {
		t.Fatalf("want timeout, got %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("timeout not applied")
	}
}

func TestFetchCAAndJoin(t *testing.T) {
	var caPEM []byte
	srv, caPEM0 := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Authorization"]; ok {
			t.Errorf("join helpers must not send a bearer token")
		}
		switch r.URL.Path {
		case "/v1/join/ca":
			writeJSON(w, 200, structs.CAResponse{CACertPEM: string(caPEM)})
		case "/v1/join":
			var req structs.JoinRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Token != "HIVE1-pin-secret" {
				writeJSON(w, 403, structs.ErrorResponse{Error: "invalid join token", Code: "forbidden"})
				return
			}
			writeJSON(w, 200, structs.JoinResponse{NodeID: "n9", Role: structs.RoleWorker, CACertPEM: string(caPEM)})
		}
	})
	caPEM = caPEM0
	ctx := context.Background()
	addr := strings.TrimPrefix(srv.URL, "https://") // host:port form

	got, err := FetchCA(ctx, addr)
	if err != nil || !bytes.Equal(got, caPEM) {
		t.Fatalf("FetchCA: %v", err)
	}
	resp, err := Join(ctx, srv.URL, got, &structs.JoinRequest{Token: "HIVE1-pin-secret", Name: "w1"})
	if err != nil || resp.NodeID != "n9" {
		t.Fatalf("Join: %+v %v", resp, err)
	}
	_, err = Join(ctx, srv.URL, got, &structs.JoinRequest{Token: "wrong"})
	var ae *Error
	if !errors.As(err, &ae) || ae.StatusCode != 403 {
		t.Fatalf("bad token: %v", err)
	}

	// Join trusts only the CA it is given.
	_, otherCA := testCert(t, ManagerServerName)
	if _, err := Join(ctx, srv.URL, otherCA, &structs.JoinRequest{Token: "HIVE1-pin-secret"}); err == nil {
		t.Fatal("Join accepted a server its CA did not sign")
	}
	// A server that serves a CA which did not sign its own certificate is refused.
	caPEM = otherCA
	if _, err := FetchCA(ctx, srv.URL); err == nil || !strings.Contains(err.Error(), "not a manager") {
		t.Fatalf("mismatched CA: %v", err)
	}
	caPEM = []byte("junk")
	if _, err := FetchCA(ctx, srv.URL); err == nil {
		t.Fatal("junk CA accepted")
	}
}

func TestACLEndpoints(t *testing.T) {
	type call struct{ method, path, query, auth, body string }
	var calls []call
	srv, ca := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		calls = append(calls, call{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), strings.TrimSpace(string(b))})
		switch r.Method + " " + r.URL.Path {
		case "POST /v1/login", "POST /v1/tokens", "POST /v1/serviceaccount/web/ci/token":
			writeJSON(w, 200, structs.TokenSecret{Secret: "s3cret", Token: structs.TokenInfo{AccessorID: "acc"}})
		case "GET /v1/whoami":
			writeJSON(w, 200, structs.WhoAmI{Subject: "user:alice"})
		case "GET /v1/auth/can-i":
			writeJSON(w, 200, structs.CanIResponse{Allowed: true, Role: "viewer"})
		case "GET /v1/auth/permissions":
			writeJSON(w, 200, structs.PermissionsResponse{Subject: "user:bob"})
		case "GET /v1/users", "GET /v1/groups", "GET /v1/roles", "GET /v1/bindings", "GET /v1/tokens", "GET /v1/serviceaccounts":
			writeJSON(w, 200, []struct{}{})
		default:
			writeJSON(w, 200, struct{}{})
		}
	})
	c := testClient(t, srv, ca, "tok")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	a := c.ACL()
	sec, err := a.Login(structs.LoginRequest{User: "alice", Password: "pw", TTL: "1h"})
	must(err)
	if sec.Secret != "s3cret" {
		t.Errorf("login answer %+v", sec)
	}
	must(a.Logout())
	who, err := a.WhoAmI()
	must(err)
	if who.Subject != "user:alice" {
		t.Errorf("whoami %+v", who)
	}
	can, err := a.CanI(CanIRequest{Resource: "secret/value", Action: "read", Namespace: "web", Name: "db", As: "sa:web/ci"})
	must(err)
	if !can.Allowed || can.Role != "viewer" {
		t.Errorf("can-i %+v", can)
	}
	_, err = a.CanI(CanIRequest{Resource: "job", Action: "list"})
	must(err)
	_, err = a.Permissions("user:bob")
	must(err)
	_, err = a.Permissions("")
	must(err)

	_, _, err = a.Users().List(nil)
	must(err)
	_, err = a.Users().Create("bob", structs.UserRequest{Password: "pw"})
	must(err)
	must(a.Users().SetPassword("bob", structs.PasswordRequest{OldPassword: "a", Password: "b"}))
	must(a.Users().Delete("bob"))
	_, _, err = a.Groups().List(nil)
	must(err)
	_, err = a.Groups().Create("ops", structs.GroupRequest{Members: []string{"bob"}})
	must(err)
	_, err = a.Groups().UpdateMembers("ops", structs.GroupMembersRequest{Remove: []string{"bob"}})
	must(err)
	must(a.Groups().Delete("ops"))
	_, _, err = a.Roles().List(nil)
	must(err)
	must(a.Roles().Put(&structs.ACLRole{Name: "r", Rules: []structs.ACLRule{{Resources: []string{"job"}, Actions: []string{"read"}}}}))
	must(a.Roles().Delete("r"))
	_, _, err = a.Bindings().List(nil)
	must(err)
	must(a.Bindings().Put(&structs.ACLBinding{Name: "b", Role: "r", Subjects: []string{"user:bob"}, Namespace: "web"}))
	must(a.Bindings().Delete("b"))
	_, _, err = a.Tokens().List("user:bob", nil)
	must(err)
	_, err = a.Tokens().Create(structs.TokenCreateRequest{Role: "r"})
	must(err)
	must(a.Tokens().Revoke("acc"))
	_, _, err = a.ServiceAccounts().List("web", nil)
	must(err)
	_, err = a.ServiceAccounts().Create("web", "ci", structs.ServiceAccountRequest{Description: "d"})
	must(err)
	_, err = a.ServiceAccounts().Token("web", "ci", structs.ServiceAccountTokenRequest{RotateGrace: "1h0m0s"})
	must(err)
	must(a.ServiceAccounts().Delete("web", "ci"))

	want := []call{
		{"POST", "/v1/login", "", "", `{"user":"alice","password":"pw","ttl":"1h"}`},
		{"POST", "/v1/logout", "", "Bearer tok", ""},
		{"GET", "/v1/whoami", "", "Bearer tok", ""},
		{"GET", "/v1/auth/can-i", "action=read&as=sa%3Aweb%2Fci&name=db&namespace=web&resource=secret%2Fvalue", "Bearer tok", ""},
		{"GET", "/v1/auth/can-i", "action=list&resource=job", "Bearer tok", ""},
		{"GET", "/v1/auth/permissions", "as=user%3Abob", "Bearer tok", ""},
		{"GET", "/v1/auth/permissions", "", "Bearer tok", ""},
		{"GET", "/v1/users", "", "Bearer tok", ""},
		{"PUT", "/v1/user/bob", "", "Bearer tok", `{"password":"pw"}`},
		{"PUT", "/v1/user/bob/password", "", "Bearer tok", `{"old_password":"a","password":"b"}`},
		{"DELETE", "/v1/user/bob", "", "Bearer tok", ""},
		{"GET", "/v1/groups", "", "Bearer tok", ""},
		{"PUT", "/v1/group/ops", "", "Bearer tok", `{"members":["bob"]}`},
		{"POST", "/v1/group/ops/members", "", "Bearer tok", `{"remove":["bob"]}`},
		{"DELETE", "/v1/group/ops", "", "Bearer tok", ""},
		{"GET", "/v1/roles", "", "Bearer tok", ""},
		{"PUT", "/v1/role/r", "", "Bearer tok", `{"Name":"r","Description":"","Rules":[{"Resources":["job"],"Actions":["read"],"Scope":""}],"BuiltIn":false,"CreateIndex":0,"ModifyIndex":0}`},
		{"DELETE", "/v1/role/r", "", "Bearer tok", ""},
		{"GET", "/v1/bindings", "", "Bearer tok", ""},
		{"PUT", "/v1/binding/b", "", "Bearer tok", `{"Name":"b","Role":"r","Subjects":["user:bob"],"Namespace":"web","CreateIndex":0,"ModifyIndex":0}`},
		{"DELETE", "/v1/binding/b", "", "Bearer tok", ""},
		{"GET", "/v1/tokens", "subject=user%3Abob", "Bearer tok", ""},
		{"POST", "/v1/tokens", "", "Bearer tok", `{"role":"r"}`},
		{"DELETE", "/v1/token/acc", "", "Bearer tok", ""},
		{"GET", "/v1/serviceaccounts", "namespace=web", "Bearer tok", ""},
		{"PUT", "/v1/serviceaccount/web/ci", "", "Bearer tok", `{"description":"d"}`},
		{"POST", "/v1/serviceaccount/web/ci/token", "", "Bearer tok", `{"rotate_grace":"1h0m0s"}`},
		{"DELETE", "/v1/serviceaccount/web/ci", "", "Bearer tok", ""},
	}
	if len(calls) != len(want) {
		t.Fatalf("%d calls, want %d: %+v", len(calls), len(want), calls)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Errorf("call %d = %+v\nwant %+v", i, calls[i], want[i])
		}
	}

	// Empty identifiers never turn into calls on a collection.
	n := len(calls)
	for name, err := range map[string]error{
		"login":       func() error { _, err := a.Login(structs.LoginRequest{}); return err }(),
		"user":        a.Users().Delete(""),
		"group":       a.Groups().Delete(" "),
		"role":        a.Roles().Put(&structs.ACLRole{}),
		"binding":     a.Bindings().Delete(""),
		"token":       a.Tokens().Revoke(""),
		"sa ns":       a.ServiceAccounts().Delete("", "ci"),
		"sa name":     a.ServiceAccounts().Delete("web", ""),
		"can-i":       func() error { _, err := a.CanI(CanIRequest{Action: "read"}); return err }(),
		"can-i (act)": func() error { _, err := a.CanI(CanIRequest{Resource: "job"}); return err }(),
	} {
		if err == nil || !strings.Contains(err.Error(), "empty") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if len(calls) != n {
		t.Errorf("empty identifiers made %d calls", len(calls)-n)
	}
}

func TestLoginWithoutToken(t *testing.T) {
	srv, ca := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			writeJSON(w, 401, structs.ErrorResponse{Error: "token revoked", Code: "unauthenticated"})
			return
		}
		writeJSON(w, 200, structs.TokenSecret{Secret: "new"})
	})
	// A stale token configured on the client must not get in the way.
	c := testClient(t, srv, ca, "stale")
	sec, err := c.ACL().Login(structs.LoginRequest{User: "alice", Password: "pw"})
	if err != nil || sec.Secret != "new" {
		t.Fatalf("login with a stale token configured: %+v %v", sec, err)
	}
	// The client itself keeps its token.
	if err := c.ACL().Logout(); err == nil || !strings.Contains(err.Error(), "token revoked") {
		t.Errorf("logout = %v, want the server's 401", err)
	}
	// And none at all works too.
	c = testClient(t, srv, ca, "")
	if _, err := c.ACL().Login(structs.LoginRequest{User: "alice", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
}
