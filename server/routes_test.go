package server

import (
	"crypto/tls"
	"net"
	"net/http"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/crypto/token"
	"github.com/hivesec/hive/structs"
)

// publicRoutes are the only endpoints reachable without credentials. A new
// public route fails TestRoutesAuthenticated until it is reviewed and added
// here.
var publicRoutes = []string{
	"GET /v1/join/ca",
	"POST /v1/join",
	"POST /v1/login",
}

var pathParam = regexp.MustCompile(`\{[a-z]+\}`)

// probePath fills a route pattern's wildcards with a plausible value; the
// requests are refused before any handler looks at it.
func probePath(pattern string) string {
	return pathParam.ReplaceAllString(pattern, "probe-"+uuid.NewString()[:8])
}

// TestRoutesAuthenticated walks the route table and checks that every
// non-public route refuses anonymous and wrongly authenticated callers.
func TestRoutesAuthenticated(t *testing.T) {
	tc := startCluster(t, 1)
	s := tc.leader(t)
	ca := tc.boot.CACertPEM
	w := joinWorker(t, s.APIAddr(), tc.boot.WorkerToken, "")

	anon := newRawCaller(t, s.APIAddr(), ca, nil, false)
	worker := newRawCaller(t, s.APIAddr(), ca, w.certs.Current(), false)
	admin := bearer(tc.boot.AdminToken)
	unknown, err := token.New("admin")
	if err != nil {
		t.Fatal(err)
	}
	// Well-formed in shape but the checksum is wrong.
	badCRC := unknown[:len(unknown)-8] + "00000000"
	if badCRC == unknown {
		badCRC = unknown[:len(unknown)-8] + "11111111"
	}
	malformed := []string{
		"Bearer",
		"Bearer ",
		"Bearer nope",
		"Bearer " + badCRC,
		"Basic YWRtaW46YWRtaW4=",
		tc.boot.AdminToken, // no scheme
	}

	var public []string
	for _, rt := range s.routes() {
		key := rt.method + " " + rt.path
		if rt.auth == authPublic {
			public = append(public, key)
			// A bad credential is refused even where none is needed.
			r := anon.call(t, rt.method, probePath(rt.path), "Bearer nope", nil)
			wantError(t, key+" with a malformed token", r, http.StatusUnauthorized, "unauthenticated")
			continue
		}
		t.Run(key, func(t *testing.T) {
			path := probePath(rt.path)
			r := anon.call(t, rt.method, path, "", nil)
			wantError(t, "anonymous", r, http.StatusUnauthorized, "unauthenticated")
			for _, authz := range malformed {
				r := anon.call(t, rt.method, path, authz, nil)
				wantError(t, "Authorization: "+authz, r, http.StatusUnauthorized, "unauthenticated")
			}
			r = anon.call(t, rt.method, path, bearer(unknown), nil)
			wantError(t, "unknown token", r, http.StatusUnauthorized, "unauthenticated")
			switch rt.auth {
			case authUser, authSelf:
				r = worker.call(t, rt.method, path, "", nil)
				wantError(t, "worker certificate on an admin route", r, http.StatusForbidden, "forbidden")
				// A valid node certificate plus a bad token is still a bad
				// credential, not a node call.
				r = worker.call(t, rt.method, path, bearer(unknown), nil)
				wantError(t, "worker certificate with an unknown token", r, http.StatusUnauthorized, "unauthenticated")
			case authNode:
				r = anon.call(t, rt.method, path, admin, nil)
				wantError(t, "admin token on a node route", r, http.StatusForbidden, "forbidden")
			default:
				t.Fatalf("route has unknown auth level %d", rt.auth)
			}
		})
	}
	slices.Sort(public)
	want := slices.Sorted(slices.Values(publicRoutes))
	if !slices.Equal(public, want) {
		t.Errorf("public routes are %q, want exactly %q; review any new unauthenticated endpoint before adding it to publicRoutes", public, want)
	}

	t.Run("UnknownPaths", func(t *testing.T) {
		for _, p := range []struct{ method, path string }{
			{"GET", "/v1/nope"},
			{"GET", "/"},
			{"GET", "/v1/nodes/"},
			{"PATCH", "/v1/nodes"}, // known path, unknown method
			{"POST", "/v1/node/self"},
			{"GET", "/v2/nodes"},
		} {
			r := anon.call(t, p.method, p.path, "", nil)
			wantError(t, "anonymous "+p.method+" "+p.path, r, http.StatusUnauthorized, "unauthenticated")
			r = anon.call(t, p.method, p.path, admin, nil)
			wantError(t, "admin "+p.method+" "+p.path, r, http.StatusNotFound, "not_found")
		}
	})

	t.Run("PublicRoutesWork", func(t *testing.T) {
		r := anon.call(t, "GET", "/v1/join/ca", "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET /v1/join/ca anonymously: %s", r)
		}
		// Joining anonymously with a bad token is a 401 from the handler,
		// not from authentication: the token in the body is the credential.
		r = anon.call(t, "POST", "/v1/join", "", mustJSON(t, structs.JoinRequest{
			Token: "HIVE1-x-y", CSRPEM: "x", Name: "n", Address: "127.0.0.1", SerfPort: 17402,
		}))
		wantError(t, "join with a malformed token", r, http.StatusUnauthorized, "invalid_token")
	})

	t.Run("AuthenticatedCallsWork", func(t *testing.T) {
		// The positive control: the same callers reach what they may.
		r := anon.call(t, "GET", "/v1/nodes", admin, nil)
		if r.status != http.StatusOK {
			t.Fatalf("admin GET /v1/nodes: %s", r)
		}
		r = worker.call(t, "GET", "/v1/node/self", "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("worker GET /v1/node/self: %s", r)
		}
	})

	t.Run("ForeignCertificateRefused", func(t *testing.T) {
		// A certificate for the same node ID from another CA must fail the
		// handshake.
		other, err := pki.NewCA(uuid.NewString(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		key, err := pki.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		csr, err := pki.NewCSR(key, "intruder")
		if err != nil {
			t.Fatal(err)
		}
		certPEM, _, err := other.SignCSR(csr, w.node.ID, structs.RoleManager, []net.IP{net.ParseIP("127.0.0.1")}, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, err := pki.EncodeKeyPEM(key)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		c := newRawCaller(t, s.APIAddr(), ca, nil, false)
		// Go's client offers a certificate only if its issuer is one the
		// server asks for; present it regardless, as an attacker would.
		c.tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
		if r, err := c.try("GET", "/v1/node/self", "", nil); err == nil {
			t.Fatalf("a certificate from another CA was accepted: %s", r)
		}
	})

}

// selfRoutes need a token but no permission: they concern the caller
// itself, and their handlers check what a route cannot say (own tokens,
// own password). A new one fails TestRoutesDeclarePermissions until it is
// reviewed and added here.
var selfRoutes = []string{
	"POST /v1/logout",
	"GET /v1/whoami",
	"GET /v1/auth/can-i",
	"GET /v1/auth/permissions",
	"PUT /v1/user/{name}/password",
	"GET /v1/tokens",
	"POST /v1/tokens",
	"DELETE /v1/token/{accessor}",
}

// TestRoutesDeclarePermissions walks the route table: every route a user
// calls names a resource and an action the authorizer knows, node routes
// and public routes name none, and self routes are exactly the reviewed
// list.
func TestRoutesDeclarePermissions(t *testing.T) {
	s := &Server{}
	var self []string
	seen := map[string]bool{}
	for _, rt := range s.routes() {
		key := rt.method + " " + rt.path
		if seen[key] {
			t.Errorf("%s is declared twice", key)
		}
		seen[key] = true
		switch rt.auth {
		case authUser:
			if rt.perm == nil {
				t.Errorf("%s: user route without a permission", key)
				continue
			}
			if !structs.ValidACLAction(rt.perm.resource, rt.perm.action) {
				t.Errorf("%s: permission %s:%s is not a resource and action the authorizer knows", key, rt.perm.resource, rt.perm.action)
			}
		case authSelf:
			self = append(self, key)
			fallthrough
		case authNode, authPublic:
			if rt.perm != nil {
				t.Errorf("%s: a permission on a route that does not check one", key)
			}
		default:
			t.Errorf("%s: unknown auth level %d", key, rt.auth)
		}
	}
	slices.Sort(self)
	if want := slices.Sorted(slices.Values(selfRoutes)); !slices.Equal(self, want) {
		t.Errorf("self routes are %q, want exactly %q; review a new one before adding it to selfRoutes", self, want)
	}
}
