package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/identity"
	"github.com/hivesec/hive/structs"
)

// Helpers shared by the server tests: raw HTTPS callers that show status
// codes and bodies as they are on the wire, and workers that exist only as
// an identity on disk (no agent), enough to hold a node certificate.

// Two test processes of this package (a benchmark run beside a test run)
// would otherwise both start at 127.0.1.2 and fail with "address already in
// use". Each process starts at its own offset instead; one run uses far
// fewer than addrStride addresses.
const addrStride = 128

func init() { nextHost.Add(int32(os.Getpid()%100) * addrStride) }

// rawCaller sends raw requests to one manager's API.
type rawCaller struct {
	base string
	tr   *http.Transport
	hc   *http.Client
	// reused says whether the last request went over a connection opened
	// for an earlier one (no new handshake).
	reused bool
}

// newRawCaller trusts caPEM and presents cert when not nil. With keepAlive
// false every request opens a new TLS connection, so each one goes through
// a full handshake (and the deny list check in it).
func newRawCaller(t testing.TB, addr string, caPEM []byte, cert *tls.Certificate, keepAlive bool) *rawCaller {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in PEM")
	}
	tr := &http.Transport{TLSClientConfig: pki.APIClientTLS(pool, cert), DisableKeepAlives: !keepAlive}
	t.Cleanup(tr.CloseIdleConnections)
	return &rawCaller{base: "https://" + addr, tr: tr, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// reply is a response read to the end.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r *reply) String() string {
	return http.StatusText(r.status) + ": " + strings.TrimSpace(string(r.body))
}

// try sends a request; authz is the whole Authorization header (empty for
// none). A transport error (refused handshake, closed connection) is
// returned, not fatal.
func (c *rawCaller) try(method, path, authz string, body []byte, hdr ...string) (*reply, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { c.reused = i.Reused }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// call is try that fails the test on a transport error.
func (c *rawCaller) call(t testing.TB, method, path, authz string, body []byte, hdr ...string) *reply {
	t.Helper()
	r, err := c.try(method, path, authz, body, hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func bearer(tok string) string { return "Bearer " + tok }

// wantError checks that r is an API error with the given status, in the
// documented shape: a JSON object with exactly "error" and "code", both set.
// code may be empty to accept any.
func wantError(t testing.TB, what string, r *reply, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d (%s)", what, r.status, status, r)
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	var fields map[string]any
	if err := json.Unmarshal(r.body, &fields); err != nil {
		t.Errorf("%s: error body is not a JSON object: %v (%q)", what, err, r.body)
		return
	}
	msg, _ := fields["error"].(string)
	got, _ := fields["code"].(string)
	if len(fields) != 2 || msg == "" || got == "" {
		t.Errorf("%s: error body %s, want {\"error\": \"...\", \"code\": \"...\"}", what, r.body)
	}
	if code != "" && got != code {
		t.Errorf("%s: code %q, want %q (%s)", what, got, code, msg)
	}
	if status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("%s: 401 without a WWW-Authenticate header", what)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stateIndex is the highest table index in s's state store: any committed
// change to any table moves it.
func stateIndex(s *Server) uint64 { return s.fsm.State().Snapshot().LatestIndex() }

// testWorker is a joined worker without an agent: a node ID, a role and a
// certificate on disk.
type testWorker struct {
	dir   string
	node  *identity.Node
	certs *identity.Certs
	resp  *structs.JoinResponse
}

// joinWorker joins a worker through the manager at addr with tok. nodeID is
// empty for a new node or the ID of a node that rejoins.
func joinWorker(t testing.TB, addr, tok, nodeID string) *testWorker {
	t.Helper()
	w, err := tryJoinWorker(t, addr, tok, nodeID)
	if err != nil {
		t.Fatalf("join worker: %v", err)
	}
	return w
}

func tryJoinWorker(t testing.TB, addr, tok, nodeID string) (*testWorker, error) {
	t.Helper()
	dir := t.TempDir()
	node, certs, resp, err := identity.Join(context.Background(), identity.JoinParams{
		DataDir: dir, Addr: addr, Token: tok, Name: "worker", NodeID: nodeID,
		Address: nextIP(), SerfPort: 17402,
	})
	if err != nil {
		return nil, err
	}
	// LoadCerts proves what is on disk is usable on its own, as a restarted
	// worker would read it.
	loaded, err := identity.LoadCerts(dir)
	if err != nil {
		t.Fatalf("load joined worker's certificates: %v", err)
	}
	if pki.SerialHex(loaded.Leaf()) != pki.SerialHex(certs.Leaf()) {
		t.Fatalf("certificate on disk differs from the one Join returned")
	}
	return &testWorker{dir: dir, node: node, certs: loaded, resp: resp}, nil
}

// client is an api.Client for s authenticated by the worker's certificate.
func (w *testWorker) client(t testing.TB, s *Server) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: s.APIAddr(), CACertPEM: w.certs.CAPEM, ClientCert: w.certs.Current(), Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// renewer renews the worker's certificate through s, as the agent does.
func (w *testWorker) renewer(t testing.TB, s *Server) *identity.Renewer {
	return &identity.Renewer{
		Certs:  w.certs,
		Logger: s.logger.Named("test-renew"),
		Renew: func(_ context.Context, csr []byte) ([]byte, error) {
			resp, err := w.client(t, s).Nodes().Renew(csr)
			if err != nil {
				return nil, err
			}
			return []byte(resp.CertPEM), nil
		},
	}
}

// apiStatus returns the HTTP status of an *api.Error in err's chain, or 0.
func apiStatus(err error) int {
	var e *api.Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

func mustUnmarshal(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}

// newInternalCaller talks HTTP over the RPC port at addr, with tc as the
// TLS client configuration (its certificate identifies the caller), the way
// a manager forwards a request to the leader.
func newInternalCaller(t testing.TB, addr string, tc *tls.Config, keepAlive bool) *rawCaller {
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialRPC(ctx, addr, 5*time.Second, tc, rpcHTTP)
		},
		DisableKeepAlives: !keepAlive,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &rawCaller{base: "https://" + addr, tr: tr, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// internalCall sends one request on a new connection over the RPC port.
func internalCall(t testing.TB, addr string, tc *tls.Config, method, path, authz string, hdr ...string) (*reply, error) {
	return newInternalCaller(t, addr, tc, false).try(method, path, authz, nil, hdr...)
}
