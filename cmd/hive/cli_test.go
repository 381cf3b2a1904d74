package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

var (
	t0      = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	fxNodes = []structs.NodePublic{
		{ID: "n-2", Name: "worker-1", Role: structs.RoleWorker, Address: "10.0.0.2", Status: "alive", CertExpiry: t0, JoinedAt: t0},
		{ID: "n-1", Name: "manager-1", Role: structs.RoleManager, Address: "10.0.0.1", Status: "alive", Leader: true, CertExpiry: t0, JoinedAt: t0, Labels: map[string]string{"zone": "a"}},
	}
	fxPeers = []structs.RaftPeer{
		{ID: "n-1", Address: "10.0.0.1:7401", Voter: true, Leader: true},
		{ID: "n-3", Address: "10.0.0.3:7401", Voter: false},
	}
	fxTokens = []structs.JoinTokenPublic{
		{ID: "tok1", Role: structs.RoleWorker, Default: true, CreatedAt: t0, Uses: 3},
		{ID: "tok2", Role: structs.RoleManager, CreatedAt: t0, ExpiresAt: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), MaxUses: 5, Uses: 1},
		{ID: "tok3", Role: structs.RoleWorker, CreatedAt: t0, Revoked: true},
		{ID: "tok4", Role: structs.RoleWorker, CreatedAt: t0, MaxUses: 2, Uses: 2},
	}
	fxNamespaces = []structs.Namespace{{Name: "default", CreatedAt: t0}, {Name: "web", Description: "front end", CreatedAt: t0}}
	fxEvents     = []structs.Event{{Index: 12, Time: t0, Type: structs.EventNodeJoined, Subject: "n-2", Message: "node worker-1 joined"}}
	fxCreated    = structs.JoinTokenCreateResponse{Token: "HIVE1-PIN-SECRET", Info: structs.JoinTokenPublic{ID: "tok9", Role: structs.RoleWorker, CreatedAt: t0, MaxUses: 1}}
	fxArchive    = []byte("HIVESNAP\x00binary archive bytes")
)

// fakeAPI records requests and answers them from the fixtures above.
type fakeAPI struct {
	mu       sync.Mutex
	requests []string // "METHOD /path"
	queries  []string // raw query of each request
	auth     []string
	bodies   []string
	failSnap bool
	nodes    []structs.NodePublic // answers GET /v1/nodes when set
	calls    map[string]int       // per "METHOD /path", for answers that change
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.EscapedPath())
	f.queries = append(f.queries, r.URL.RawQuery)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.bodies = append(f.bodies, string(body))
	failSnap := f.failSnap
	f.mu.Unlock()

	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(api.IndexHeader, "99")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	if r.Header.Get("Authorization") == "Bearer bad" {
		reply(401, structs.ErrorResponse{Error: "invalid API token", Code: "unauthenticated"})
		return
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /v1/nodes":
		f.mu.Lock()
		nodes := f.nodes
		f.mu.Unlock()
		if nodes == nil {
			nodes = fxNodes
		}
		reply(200, nodes)
	case "GET /v1/node/n-1":
		reply(200, fxNodes[1])
	case "GET /v1/node/nope":
		reply(404, structs.ErrorResponse{Error: `node "nope" not found`, Code: "not_found"})
	case "DELETE /v1/node/n-2", "POST /v1/operator/gossip/rotate", "PUT /v1/namespace/team-a",
		"DELETE /v1/namespace/web", "DELETE /v1/join-token/tok1":
		reply(200, struct{}{})
	case "GET /v1/operator/raft/peers":
		reply(200, fxPeers)
	case "GET /v1/status/leader":
		reply(200, structs.LeaderResponse{LeaderID: "n-1", LeaderAddr: "10.0.0.1:7401"})
	case "GET /v1/namespaces":
		reply(200, fxNamespaces)
	case "GET /v1/namespace/web":
		reply(200, fxNamespaces[1])
	case "GET /v1/join-tokens":
		reply(200, fxTokens)
	case "POST /v1/join-tokens":
		reply(200, fxCreated)
	case "POST /v1/join-tokens/rotate/manager":
		old := fxTokens[1]
		old.Revoked = true
		reply(200, structs.JoinTokenCreateResponse{Token: "HIVE1-NEW", Info: structs.JoinTokenPublic{ID: "tok10", Role: structs.RoleManager, Default: true}, Old: &old})
	case "GET /v1/events":
		reply(200, fxEvents)
	case "GET /v1/operator/snapshot":
		if failSnap {
			reply(500, structs.ErrorResponse{Error: "snapshot failed: no leader", Code: "internal"})
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(fxArchive)
	case "PUT /v1/operator/snapshot":
		reply(200, struct{}{})
	default:
		if f.serveNetwork(r, body, reply) || f.serveWorker(w, r, body, reply) || f.serveJobs(r, body, reply) || f.serveACL(r, body, reply) || f.serveSecrets(r, body, reply) {
			return
		}
		reply(404, structs.ErrorResponse{Error: "no route " + r.Method + " " + r.URL.Path, Code: "not_found"})
	}
}

func (f *fakeAPI) last() (req, auth, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		return "", "", ""
	}
	i := len(f.requests) - 1
	return f.requests[i], f.auth[i], f.bodies[i]
}

func (f *fakeAPI) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// env starts the fake API with a certificate for manager.hive.internal,
// writes its CA to a file and points HIVE_ADDR and HIVE_CACERT at them.
func env(t *testing.T) *fakeAPI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hive test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{api.ManagerServerName},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &fakeAPI{}
	fakeCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	t.Setenv(api.EnvAddress, startFake(t, f))
	t.Setenv(api.EnvCACert, caFile)
	t.Setenv(api.EnvToken, "")
	// Never the real ~/.hive/config: a `hive dev` on this machine must not
	// change what the tests see.
	t.Setenv(envConfig, filepath.Join(t.TempDir(), "no-config"))
	return f
}

// fakeCert is the certificate of the last env's fake API; the CA file
// env wrote trusts it.
var fakeCert tls.Certificate

// startFake serves h over TLS with fakeCert and returns its URL.
func startFake(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{fakeCert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// hive runs the CLI and returns its output and exit code.
func hive(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return out.String(), errb.String(), code
}

func mustRun(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	out, errs, code := hive(t, args...)
	if code != 0 {
		t.Fatalf("hive %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out, errs
}

// lines splits output into lines, without the final newline.
func lines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }

// checkAligned checks that every row starts its cells at the header's
// column offsets: what text/tabwriter guarantees.
func checkAligned(t *testing.T, out string, header []string) {
	t.Helper()
	ls := lines(out)
	var cols []int
	for _, h := range header {
		i := strings.Index(ls[0], h)
		if i < 0 {
			t.Fatalf("header %q missing in %q", h, ls[0])
		}
		cols = append(cols, i)
	}
	for _, l := range ls[1:] {
		for _, c := range cols[1:] {
			if c >= len(l) || l[c-1] != ' ' || l[c] == ' ' {
				t.Errorf("row %q not aligned at column %d", l, c)
			}
		}
	}
}

func TestNodeList(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "node", "ls")
	header := []string{"ID", "NAME", "ROLE", "ADDRESS", "STATUS", "LEADER", "CERT EXPIRES"}
	checkAligned(t, out, header)
	ls := lines(out)
	if len(ls) != 3 {
		t.Fatalf("want header and 2 rows:\n%s", out)
	}
	// Sorted by name: manager-1 first.
	if got := strings.Fields(ls[1]); !reflect.DeepEqual(got, []string{"n-1", "manager-1", "manager", "10.0.0.1", "alive", "true", "2030-01-02T03:04:05Z"}) {
		t.Errorf("row 1 = %q", got)
	}
	if got := strings.Fields(ls[2]); !reflect.DeepEqual(got, []string{"n-2", "worker-1", "worker", "10.0.0.2", "alive", "false", "2030-01-02T03:04:05Z"}) {
		t.Errorf("row 2 = %q", got)
	}
	if req, _, _ := f.last(); req != "GET /v1/nodes" {
		t.Errorf("request %q", req)
	}

	out, _ = mustRun(t, "node", "ls", "-o", "json")
	var got []structs.NodePublic
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(got, fxNodes) {
		t.Errorf("JSON = %+v, want the API objects %+v", got, fxNodes)
	}
	if !strings.Contains(out, "\n  {\n    \"id\": \"n-2\"") {
		t.Errorf("JSON not indented:\n%s", out)
	}
}

func TestNodeStatusAndRemove(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "node", "status", "n-1")
	for _, want := range []string{"ID             n-1", "Role           manager", "Leader         true", "Labels         zone=a", "Cert Expires   2030-01-02T03:04:05Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	out, _ = mustRun(t, "node", "status", "n-1", "-o", "json")
	var n structs.NodePublic
	if err := json.Unmarshal([]byte(out), &n); err != nil || !reflect.DeepEqual(n, fxNodes[1]) {
		t.Errorf("JSON = %+v (%v)", n, err)
	}

	_, errs, code := hive(t, "node", "status", "nope")
	if code != 1 || errs != "Error: reading node nope: node \"nope\" not found (HTTP 404)\n" {
		t.Errorf("exit %d, stderr %q", code, errs)
	}

	out, _ = mustRun(t, "node", "remove", "n-2")
	if req, _, _ := f.last(); req != "DELETE /v1/node/n-2" || !strings.Contains(out, "Removed node n-2") {
		t.Errorf("request %q, out %q", req, out)
	}
}

func TestTokenFlagAndEnv(t *testing.T) {
	f := env(t)
	mustRun(t, "--token", "hive_mgmt_flag", "node", "ls")
	if _, auth, _ := f.last(); auth != "Bearer hive_mgmt_flag" {
		t.Errorf("Authorization = %q", auth)
	}
	t.Setenv(api.EnvToken, "hive_mgmt_env")
	mustRun(t, "node", "ls")
	if _, auth, _ := f.last(); auth != "Bearer hive_mgmt_env" {
		t.Errorf("env token: Authorization = %q", auth)
	}
	mustRun(t, "node", "ls", "--token", "hive_mgmt_flag2")
	if _, auth, _ := f.last(); auth != "Bearer hive_mgmt_flag2" {
		t.Errorf("flag must override env: Authorization = %q", auth)
	}

	_, errs, code := hive(t, "--token", "bad", "node", "ls")
	if code != 1 || !strings.HasPrefix(errs, "Error: listing nodes: invalid API token (HTTP 401)\n") || !strings.Contains(errs, "HIVE_TOKEN") {
		t.Errorf("401: exit %d, stderr %q", code, errs)
	}
	if strings.Count(errs, "Error:") != 1 {
		t.Errorf("error printed more than once: %q", errs)
	}
}

func TestGlobalFlagsOverrideEnv(t *testing.T) {
	env(t)
	addr, ca := os.Getenv(api.EnvAddress), os.Getenv(api.EnvCACert)
	t.Setenv(api.EnvAddress, "127.0.0.1:1")
	t.Setenv(api.EnvCACert, filepath.Join(t.TempDir(), "missing.pem"))
	if _, _, code := hive(t, "node", "ls"); code != 1 {
		t.Fatal("bad env should fail")
	}
	mustRun(t, "--address", strings.TrimPrefix(addr, "https://"), "--ca-cert", ca, "node", "ls")

	t.Setenv(api.EnvCACert, "")
	_, errs, _ := hive(t, "--address", addr, "node", "ls")
	if !strings.Contains(errs, "HIVE_CACERT") || !strings.Contains(errs, "bootstrap/ca.pem") {
		t.Errorf("missing CA: %q", errs)
	}
}

func TestArgValidation(t *testing.T) {
	f := env(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"join-token", "create", "--role", "x"}, `invalid role "x": use worker or manager`},
		{[]string{"join-token", "create"}, "missing --role"},
		{[]string{"join-token", "create", "--role", "worker", "--ttl", "soon"}, `invalid --ttl "soon"`},
		{[]string{"join-token", "create", "--role", "worker", "--ttl", "-1h"}, `invalid --ttl "-1h"`},
		{[]string{"join-token", "create", "--role", "worker", "--uses", "-1"}, "invalid --uses -1"},
		{[]string{"join-token", "rotate", "admin"}, `invalid role "admin": use worker or manager`},
		{[]string{"join-token", "rotate"}, "hive join-token rotate takes ROLE, got 0 argument(s)"},
		{[]string{"node", "status"}, "hive node status takes ID, got 0"},
		{[]string{"node", "status", "a", "b"}, "got 2 argument(s)"},
		{[]string{"node", "remove", ""}, "ID must not be empty"},
		{[]string{"node", "ls", "extra"}, "hive node ls takes no arguments"},
		{[]string{"node", "ls", "-o", "yaml"}, `invalid output format "yaml": use table or json`},
		{[]string{"ns", "create", "Bad_Name"}, `invalid namespace name "Bad_Name"`},
		{[]string{"namespace", "delete", "default"}, `the "default" namespace cannot be deleted`},
		{[]string{"operator", "snapshot", "restore", filepath.Join(t.TempDir(), "none")}, "opening snapshot"},
	}
	for _, tc := range cases {
		out, errs, code := hive(t, tc.args...)
		if code != 1 || !strings.HasPrefix(errs, "Error: ") || !strings.Contains(errs, tc.want) {
			t.Errorf("hive %s: exit %d, stderr %q, want %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
		if out != "" {
			t.Errorf("hive %s: stdout %q, want none", strings.Join(tc.args, " "), out)
		}
	}
	if n := f.count(); n != 0 {
		t.Errorf("invalid commands made %d API calls", n)
	}
}

func TestJoinTokens(t *testing.T) {
	f := env(t)
	out, errs := mustRun(t, "join-token", "create", "--role", "worker", "--ttl", "90m", "--uses", "1", "--description", "rack 4")
	if out != "HIVE1-PIN-SECRET\n" {
		t.Errorf("stdout = %q, want only the token", out)
	}
	if !strings.Contains(errs, "shown only this once") || !strings.Contains(errs, "tok9") {
		t.Errorf("stderr = %q", errs)
	}
	req, _, body := f.last()
	var sent structs.JoinTokenCreateRequest
	if err := json.Unmarshal([]byte(body), &sent); err != nil || req != "POST /v1/join-tokens" {
		t.Fatalf("%s %q %v", req, body, err)
	}
	if want := (structs.JoinTokenCreateRequest{Role: "worker", TTL: "1h30m0s", MaxUses: 1, Description: "rack 4"}); sent != want {
		t.Errorf("sent %+v, want %+v", sent, want)
	}

	out, _ = mustRun(t, "join-token", "create", "--role", "worker", "-o", "json")
	var created structs.JoinTokenCreateResponse
	if err := json.Unmarshal([]byte(out), &created); err != nil || !reflect.DeepEqual(created, fxCreated) {
		t.Errorf("JSON %+v %v", created, err)
	}

	out, _ = mustRun(t, "join-token", "ls")
	checkAligned(t, out, []string{"ID", "ROLE", "DEFAULT", "USES", "EXPIRES", "STATUS"})
	want := [][]string{
		{"tok1", "worker", "true", "3/unlimited", "never", "active"},
		{"tok2", "manager", "false", "1/5", "2001-01-01T00:00:00Z", "expired"},
		{"tok3", "worker", "false", "0/unlimited", "never", "revoked"},
		{"tok4", "worker", "false", "2/2", "never", "used", "up"},
	}
	for i, l := range lines(out)[1:] {
		if got := strings.Fields(l); !reflect.DeepEqual(got, want[i]) {
			t.Errorf("row %d = %q, want %q", i, got, want[i])
		}
	}
	out, _ = mustRun(t, "join-token", "ls", "-o", "json")
	var list []structs.JoinTokenPublic
	if err := json.Unmarshal([]byte(out), &list); err != nil || !reflect.DeepEqual(list, fxTokens) {
		t.Errorf("JSON %+v %v", list, err)
	}

	mustRun(t, "join-token", "revoke", "tok1")
	if req, _, _ := f.last(); req != "DELETE /v1/join-token/tok1" {
		t.Errorf("revoke: %q", req)
	}
	out, errs = mustRun(t, "join-token", "rotate", "manager")
	if out != "HIVE1-NEW\n" || !strings.Contains(errs, "Old default token tok2 is revoked") {
		t.Errorf("rotate: %q %q", out, errs)
	}
	out, _ = mustRun(t, "join-token", "rotate", "manager", "-o", "json")
	if !strings.Contains(out, `"rotated": {`) {
		t.Errorf("rotate JSON lacks rotated: %s", out)
	}
}

func TestNamespaces(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "ns", "create", "team-a", "--description", "Team A")
	req, _, body := f.last()
	if req != "PUT /v1/namespace/team-a" || body != `{"name":"team-a","description":"Team A"}` || out != "Created namespace team-a\n" {
		t.Errorf("%q %q %q", req, body, out)
	}
	out, _ = mustRun(t, "namespace", "ls")
	checkAligned(t, out, []string{"NAME", "DESCRIPTION", "CREATED"})
	if ls := lines(out); len(ls) != 3 || !strings.HasPrefix(ls[2], "web") || !strings.Contains(ls[2], "front end") || !strings.Contains(ls[1], " - ") {
		t.Errorf("table:\n%s", out)
	}
	out, _ = mustRun(t, "namespace", "ls", "-o", "json")
	var list []structs.Namespace
	if err := json.Unmarshal([]byte(out), &list); err != nil || !reflect.DeepEqual(list, fxNamespaces) {
		t.Errorf("JSON %+v %v", list, err)
	}
	out, _ = mustRun(t, "ns", "status", "web")
	if !strings.Contains(out, "Description    front end") {
		t.Errorf("status:\n%s", out)
	}
	mustRun(t, "ns", "delete", "web")
	if req, _, _ := f.last(); req != "DELETE /v1/namespace/web" {
		t.Errorf("delete: %q", req)
	}
}

func TestOperator(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "operator", "raft", "peers")
	checkAligned(t, out, []string{"ID", "ADDRESS", "VOTER", "LEADER"})
	if ls := lines(out); len(ls) != 3 || !reflect.DeepEqual(strings.Fields(ls[1]), []string{"n-1", "10.0.0.1:7401", "true", "true"}) {
		t.Errorf("peers:\n%s", out)
	}
	out, _ = mustRun(t, "operator", "raft", "peers", "-o", "json")
	var peers []structs.RaftPeer
	if err := json.Unmarshal([]byte(out), &peers); err != nil || !reflect.DeepEqual(peers, fxPeers) {
		t.Errorf("JSON %+v %v", peers, err)
	}
	mustRun(t, "operator", "gossip", "rotate")
	if req, _, _ := f.last(); req != "POST /v1/operator/gossip/rotate" {
		t.Errorf("gossip: %q", req)
	}
	out, _ = mustRun(t, "status")
	if !strings.Contains(out, "Leader:   n-1 (10.0.0.1:7401)") || !strings.Contains(out, "Managers: 2 (1 voters, quorum 1)") {
		t.Errorf("status:\n%s", out)
	}
}

func TestSnapshotSaveRestore(t *testing.T) {
	f := env(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "backup.snap")
	// A stale temporary file with loose permissions must not leak its mode.
	if err := os.WriteFile(path+".tmp", []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := mustRun(t, "operator", "snapshot", "save", path)
	if !strings.Contains(out, "Saved snapshot to "+path) {
		t.Errorf("out %q", out)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, fxArchive) {
		t.Fatalf("saved %q %v", got, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}

	mustRun(t, "operator", "snapshot", "restore", path)
	if req, _, body := f.last(); req != "PUT /v1/operator/snapshot" || body != string(fxArchive) {
		t.Errorf("restore: %q %q", req, body)
	}

	// A failed save leaves neither the file nor its temporary.
	f.mu.Lock()
	f.failSnap = true
	f.mu.Unlock()
	bad := filepath.Join(dir, "bad.snap")
	_, errs, code := hive(t, "operator", "snapshot", "save", bad)
	if code != 1 || !strings.Contains(errs, "snapshot failed: no leader (HTTP 500)") {
		t.Errorf("exit %d, %q", code, errs)
	}
	for _, p := range []string{bad, bad + ".tmp"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a failed save", p)
		}
	}
}

func TestSnapshotInspectMissingFile(t *testing.T) {
	_, errs, code := hive(t, "operator", "snapshot", "inspect", filepath.Join(t.TempDir(), "none.snap"))
	if code != 1 || !strings.HasPrefix(errs, "Error: inspecting snapshot ") {
		t.Errorf("exit %d, %q", code, errs)
	}
	_, errs, _ = hive(t, "operator", "snapshot", "inspect", "x", "-o", "xml")
	if !strings.Contains(errs, `invalid output format "xml"`) {
		t.Errorf("%q", errs)
	}
}

func TestEvents(t *testing.T) {
	env(t)
	out, _ := mustRun(t, "event", "ls")
	checkAligned(t, out, []string{"INDEX", "TIME", "TYPE", "SUBJECT", "MESSAGE"})
	if !strings.Contains(out, "node-joined") || !strings.Contains(out, "node worker-1 joined") {
		t.Errorf("table:\n%s", out)
	}
	out, _ = mustRun(t, "event", "ls", "-o", "json")
	var ev []structs.Event
	if err := json.Unmarshal([]byte(out), &ev); err != nil || !reflect.DeepEqual(ev, fxEvents) {
		t.Errorf("JSON %+v %v", ev, err)
	}
}

func TestDaemonCommandsRegistered(t *testing.T) {
	root := newRootCmd()
	for _, name := range []string{"init", "join"} {
		if c, _, err := root.Find([]string{name}); err != nil || c.Name() != name {
			t.Errorf("%s not registered: %v", name, err)
		}
	}
}
