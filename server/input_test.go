package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/structs"
)

// badCase is one request that must be refused with a 4xx and leave the
// state store untouched.
type badCase struct {
	name   string
	method string
	path   string
	authz  string // Authorization header; empty for none
	node   bool   // send as the worker (client certificate)
	body   []byte
	status int
	code   string
}

// TestBadInputChangesNothing sends malformed requests to every writing
// endpoint and checks each gets a clear 4xx and commits nothing.
func TestBadInputChangesNothing(t *testing.T) {
	tc := startCluster(t, 1)
	s := tc.leader(t)
	ca := tc.boot.CACertPEM
	admin := bearer(tc.boot.AdminToken)
	w := joinWorker(t, s.APIAddr(), tc.boot.WorkerToken, "")
	anon := newRawCaller(t, s.APIAddr(), ca, nil, false)
	worker := newRawCaller(t, s.APIAddr(), ca, w.certs.Current(), false)

	// Setup writes happen before the baseline index is taken.
	if r := anon.call(t, "PUT", "/v1/namespace/taken", admin, nil); r.status != http.StatusOK {
		t.Fatalf("create namespace: %s", r)
	}
	revoked := createJoinToken(t, anon, admin, structs.JoinTokenCreateRequest{Role: structs.RoleWorker})
	if r := anon.call(t, "DELETE", "/v1/join-token/"+revoked.Info.ID, admin, nil); r.status != http.StatusOK {
		t.Fatalf("revoke join token: %s", r)
	}
	expired := createJoinToken(t, anon, admin, structs.JoinTokenCreateRequest{Role: structs.RoleWorker, TTL: "1ms"})
	usedUp := createJoinToken(t, anon, admin, structs.JoinTokenCreateRequest{Role: structs.RoleWorker, MaxUses: 1})
	joinWorker(t, s.APIAddr(), usedUp.Token, "")
	time.Sleep(5 * time.Millisecond) // let the 1ms token expire

	csr := newCSR(t)
	wtok, err := pki.ParseJoinToken(tc.boot.WorkerToken)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := pki.NewCA(uuid.NewString(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	unknownSecret, err := pki.NewJoinSecret()
	if err != nil {
		t.Fatal(err)
	}
	join := func(mod func(*structs.JoinRequest)) []byte {
		req := structs.JoinRequest{
			Token: tc.boot.WorkerToken, CSRPEM: string(csr), Name: "bad-input",
			Address: "127.0.200.1", SerfPort: 17402,
		}
		mod(&req)
		return mustJSON(t, req)
	}
	long := strings.Repeat("x", 1025)

	var cases []badCase
	ns := func(name, path string, body []byte, status int, code string) {
		cases = append(cases, badCase{name: "namespace " + name, method: "PUT", path: path, authz: admin, body: body, status: status, code: code})
	}
	for _, name := range []string{"UPPER", "-lead", "trail-", "a_b", "a.b", "sp%20ace", "a%2Fb", strings.Repeat("a", 64), "%C3%A9"} {
		ns("bad name "+name, "/v1/namespace/"+name, nil, http.StatusBadRequest, "bad_request")
	}
	ns("duplicate", "/v1/namespace/taken", nil, http.StatusConflict, "conflict")
	ns("duplicate default", "/v1/namespace/default", nil, http.StatusConflict, "conflict")
	ns("oversize description", "/v1/namespace/okname", mustJSON(t, structs.NamespaceRequest{Description: long}), http.StatusBadRequest, "bad_request")
	ns("unknown field", "/v1/namespace/okname", []byte(`{"description":"d","color":"red"}`), http.StatusBadRequest, "bad_request")
	ns("trailing garbage", "/v1/namespace/okname", []byte(`{"description":"d"} x`), http.StatusBadRequest, "bad_request")
	ns("trailing object", "/v1/namespace/okname", []byte(`{"description":"d"}{}`), http.StatusBadRequest, "bad_request")
	ns("trailing brace", "/v1/namespace/okname", []byte(`{"description":"d"}}`), http.StatusBadRequest, "bad_request")
	ns("trailing bracket", "/v1/namespace/okname", []byte(`{"description":"d"}]`), http.StatusBadRequest, "bad_request")
	ns("not JSON", "/v1/namespace/okname", []byte(`description=d`), http.StatusBadRequest, "bad_request")
	ns("array body", "/v1/namespace/okname", []byte(`[]`), http.StatusBadRequest, "bad_request")
	ns("name mismatch", "/v1/namespace/okname", mustJSON(t, structs.NamespaceRequest{Name: "other"}), http.StatusBadRequest, "bad_request")
	ns("oversize body", "/v1/namespace/okname", []byte(`{"description":"`+strings.Repeat("x", defaultMaxBody)+`"}`), http.StatusRequestEntityTooLarge, "too_large")

	cases = append(cases,
		badCase{name: "delete default namespace", method: "DELETE", path: "/v1/namespace/default", authz: admin, status: http.StatusBadRequest, code: "bad_request"},
		badCase{name: "delete missing namespace", method: "DELETE", path: "/v1/namespace/missing", authz: admin, status: http.StatusNotFound, code: "not_found"},
	)

	jt := func(name, body string) {
		cases = append(cases, badCase{name: "join token " + name, method: "POST", path: "/v1/join-tokens", authz: admin, body: []byte(body), status: http.StatusBadRequest, code: "bad_request"})
	}
	jt("no role", `{}`)
	jt("bad role", `{"role":"admin"}`)
	jt("role case", `{"role":"Worker"}`)
	jt("bad ttl", `{"role":"worker","ttl":"soon"}`)
	jt("negative ttl", `{"role":"worker","ttl":"-1h"}`)
	jt("zero ttl", `{"role":"worker","ttl":"0s"}`)
	jt("ttl number", `{"role":"worker","ttl":3600}`)
	jt("negative uses", `{"role":"worker","max_uses":-1}`)
	jt("fractional uses", `{"role":"worker","max_uses":1.5}`)
	jt("oversize description", `{"role":"worker","description":"`+long+`"}`)
	jt("unknown field", `{"role":"worker","uses":3}`)
	jt("trailing garbage", `{"role":"worker"} {"role":"manager"}`)
	jt("empty body", ``)
	cases = append(cases,
		badCase{name: "rotate bad role", method: "POST", path: "/v1/join-tokens/rotate/admin", authz: admin, status: http.StatusBadRequest, code: "bad_request"},
		badCase{name: "revoke missing token", method: "DELETE", path: "/v1/join-token/nope", authz: admin, status: http.StatusNotFound, code: "not_found"},
		badCase{name: "remove missing node", method: "DELETE", path: "/v1/node/" + uuid.NewString(), authz: admin, status: http.StatusNotFound, code: "not_found"},
	)

	jn := func(name string, status int, code string, mod func(*structs.JoinRequest)) {
		cases = append(cases, badCase{name: "join " + name, method: "POST", path: "/v1/join", body: join(mod), status: status, code: code})
	}
	unauth := http.StatusUnauthorized
	jn("malformed token", unauth, "invalid_token", func(r *structs.JoinRequest) { r.Token = "HIVE1-nope" })
	jn("empty token", unauth, "invalid_token", func(r *structs.JoinRequest) { r.Token = "" })
	jn("wrong pin", unauth, "invalid_token", func(r *structs.JoinRequest) { r.Token = pki.FormatJoinToken(otherCA.Pin(), wtok.Secret) })
	jn("unknown secret", unauth, "invalid_token", func(r *structs.JoinRequest) { r.Token = pki.FormatJoinToken(wtok.Pin, unknownSecret) })
	jn("revoked token", unauth, "invalid_token", func(r *structs.JoinRequest) { r.Token = revoked.Token })
	jn("expired token", unauth, "invalid_token", func(r *structs.JoinRequest) { r.Token = expired.Token })
	jn("used-up token", unauth, "invalid_token", func(r *structs.JoinRequest) { r.Token = usedUp.Token })
	bad := http.StatusBadRequest
	for _, a := range []string{"", "0.0.0.0", "::", "nope", "10.0.0.1:80", "300.1.1.1"} {
		jn("address "+a, bad, "bad_request", func(r *structs.JoinRequest) { r.Address = a })
	}
	jn("negative api port", bad, "bad_request", func(r *structs.JoinRequest) { r.APIPort = -1 })
	jn("huge rpc port", bad, "bad_request", func(r *structs.JoinRequest) { r.RPCPort = 65536 })
	jn("no serf port", bad, "bad_request", func(r *structs.JoinRequest) { r.SerfPort = 0 })
	jn("huge serf port", bad, "bad_request", func(r *structs.JoinRequest) { r.SerfPort = 1 << 20 })
	jn("manager without api port", bad, "bad_request", func(r *structs.JoinRequest) {
		r.Token, r.RPCPort = tc.boot.ManagerToken, 17401
	})
	jn("no name", bad, "bad_request", func(r *structs.JoinRequest) { r.Name = "" })
	jn("long name", bad, "bad_request", func(r *structs.JoinRequest) { r.Name = strings.Repeat("n", 254) })
	jn("node ID not a UUID", bad, "bad_request", func(r *structs.JoinRequest) { r.NodeID = "../../etc" })
	jn("garbage CSR", bad, "bad_request", func(r *structs.JoinRequest) { r.CSRPEM = "not a csr" })
	jn("empty CSR", bad, "bad_request", func(r *structs.JoinRequest) { r.CSRPEM = "" })
	jn("certificate instead of CSR", bad, "bad_request", func(r *structs.JoinRequest) { r.CSRPEM = string(ca) })
	jn("CSR with a broken signature", bad, "bad_request", func(r *structs.JoinRequest) { r.CSRPEM = string(tamperCSR(t, csr)) })
	jn("CSR with a P-384 key", bad, "bad_request", func(r *structs.JoinRequest) { r.CSRPEM = string(p384CSR(t)) })
	cases = append(cases,
		badCase{name: "join unknown field", method: "POST", path: "/v1/join", body: []byte(`{"token":"x","role":"manager"}`), status: bad, code: "bad_request"},
		badCase{name: "join empty body", method: "POST", path: "/v1/join", status: bad, code: "bad_request"},
		badCase{name: "renew garbage CSR", method: "POST", path: "/v1/node/renew", node: true, body: mustJSON(t, structs.RenewRequest{CSRPEM: "garbage"}), status: bad, code: "bad_request"},
		badCase{name: "renew broken CSR signature", method: "POST", path: "/v1/node/renew", node: true, body: mustJSON(t, structs.RenewRequest{CSRPEM: string(tamperCSR(t, csr))}), status: bad, code: "bad_request"},
		badCase{name: "renew empty body", method: "POST", path: "/v1/node/renew", node: true, status: bad, code: "bad_request"},
		badCase{name: "renew unknown field", method: "POST", path: "/v1/node/renew", node: true, body: []byte(`{"csr_pem":"x","node_id":"other"}`), status: bad, code: "bad_request"},
	)
	flow := func(mod func(*structs.DeniedFlow)) []byte {
		f := structs.DeniedFlow{Direction: "ingress", Policies: []string{"x/p"}, Src: "198.19.0.2", Dst: "198.19.1.3", Protocol: 6, Port: 80, Packets: 1}
		mod(&f)
		return mustJSON(t, structs.DeniedFlowReport{Flows: []structs.DeniedFlow{f}})
	}
	for name, mod := range map[string]func(*structs.DeniedFlow){
		"bad source":     func(f *structs.DeniedFlow) { f.Src = "not-an-ip" },
		"bad direction":  func(f *structs.DeniedFlow) { f.Direction = "sideways" },
		"no policies":    func(f *structs.DeniedFlow) { f.Policies = nil },
		"empty policy":   func(f *structs.DeniedFlow) { f.Policies = []string{""} },
		"zero packets":   func(f *structs.DeniedFlow) { f.Packets = 0 },
		"negative count": func(f *structs.DeniedFlow) { f.Packets = -3 },
	} {
		cases = append(cases, badCase{name: "denied flow " + name, method: "POST", path: "/v1/node/denied-flows", node: true, body: flow(mod), status: bad, code: "bad_request"})
	}
	cases = append(cases,
		badCase{name: "denied flows empty", method: "POST", path: "/v1/node/denied-flows", node: true, body: []byte(`{"flows":[]}`), status: bad, code: "bad_request"},
		badCase{name: "denied flows unknown field", method: "POST", path: "/v1/node/denied-flows", node: true, body: []byte(`{"flows":[],"node":"x"}`), status: bad, code: "bad_request"},
		badCase{name: "denied flows as a user", method: "POST", path: "/v1/node/denied-flows", authz: admin, body: flow(func(*structs.DeniedFlow) {}), status: http.StatusForbidden, code: "forbidden"},
	)

	before := stateIndex(s)
	nsBefore := len(s.fsm.State().Snapshot().Namespaces(nil))
	for _, c := range cases {
		cl := anon
		if c.node {
			cl = worker
		}
		r := cl.call(t, c.method, c.path, c.authz, c.body)
		wantError(t, c.name, r, c.status, c.code)
		if got := stateIndex(s); got != before {
			t.Fatalf("%s: state index moved from %d to %d; a refused request changed state", c.name, before, got)
		}
	}
	if got := len(s.fsm.State().Snapshot().Namespaces(nil)); got != nsBefore {
		t.Errorf("%d namespaces after the bad requests, want %d", got, nsBefore)
	}
	if tok := s.fsm.State().Snapshot().JoinToken(nil, usedUp.Info.ID); tok.Uses != 1 {
		t.Errorf("used-up token shows %d uses, want 1", tok.Uses)
	}

	// The good form of the same requests still works: the refusals above
	// were about the input, not a broken endpoint.
	if r := anon.call(t, "PUT", "/v1/namespace/okname", admin, []byte(`{"description":"d"}`)); r.status != http.StatusOK {
		t.Errorf("valid namespace create: %s", r)
	}
	if r := anon.call(t, "POST", "/v1/join", "", join(func(*structs.JoinRequest) {})); r.status != http.StatusOK {
		t.Errorf("valid join: %s", r)
	}
}

func createJoinToken(t testing.TB, c *rawCaller, admin string, req structs.JoinTokenCreateRequest) *structs.JoinTokenCreateResponse {
	t.Helper()
	r := c.call(t, "POST", "/v1/join-tokens", admin, mustJSON(t, req))
	if r.status != http.StatusOK {
		t.Fatalf("create join token: %s", r)
	}
	var out structs.JoinTokenCreateResponse
	mustUnmarshal(t, r.body, &out)
	return &out
}

func newCSR(t testing.TB) []byte {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "bad-input")
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// tamperCSR flips a bit in the CSR's signature, so it still parses but no
// longer proves possession of the key.
func tamperCSR(t testing.TB, csrPEM []byte) []byte {
	t.Helper()
	block, _ := pem.Decode(csrPEM)
	der := append([]byte(nil), block.Bytes...)
	der[len(der)-2] ^= 0x01
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func p384CSR(t testing.TB) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "p384")
	if err != nil {
		t.Fatal(err)
	}
	return csr
}
