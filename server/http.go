package server

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/hivesec/hive/audit"
	"github.com/hivesec/hive/crypto/pki"
	"github.com/hivesec/hive/crypto/token"
	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/structs"
)

// authLevel says who may call a route.
type authLevel int

const (
	// authPublic routes are the join handshake and the password login:
	// the join token or the password in the body authenticates, or the
	// data is the public CA certificate.
	authPublic authLevel = iota
	// authUser routes need an API token and the route's permission.
	authUser
	// authNode routes need a node certificate; the handlers confine a
	// node to its own records (the node authorizer).
	authNode
	// authSelf routes need an API token and no permission: they concern
	// the caller itself (whoami, logout, can-i).
	authSelf
)

// forwardMode says when a request goes to the leader.
type forwardMode int

const (
	forwardNever forwardMode = iota
	forwardAlways
	forwardConsistent // reads: only with ?consistent
)

type handlerFunc func(w http.ResponseWriter, r *http.Request, c *caller) (any, error)

// route is one API endpoint. The list is data so a test can walk every
// route and check it refuses anonymous and wrongly authenticated calls.
type route struct {
	method  string
	path    string
	auth    authLevel
	forward forwardMode
	maxBody int64
	h       handlerFunc
	// perm is what an authUser route needs; nil elsewhere.
	perm *perm
}

// caller is the authenticated identity of a request, and what the
// authorization of it decided (for the audit log).
type caller struct {
	// token is the API token the call was made with.
	token *structs.ACLToken
	// management is the bootstrap admin token: every permission.
	management bool
	// subjects are who the token acts as, for the authorizer.
	subjects []string
	nodeID   string
	nodeRole structs.Role
	remote   string

	resource, action, namespace, name string
	reason                            string
	event                             string
	requestBody                       []byte
}

func (c *caller) String() string {
	switch {
	case c.management:
		return "bootstrap-token:" + c.token.AccessorID
	case c.token != nil && c.token.Role != "":
		return "token:" + c.token.AccessorID
	case c.token != nil:
		return c.token.Subject
	case c.nodeID != "":
		return "node:" + c.nodeID
	}
	return "anonymous"
}

// apiError carries an HTTP status and a stable code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, code, format string, args ...any) error {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) error {
	return errorf(http.StatusBadRequest, "bad_request", format, args...)
}

func notFound(format string, args ...any) error {
	return errorf(http.StatusNotFound, "not_found", format, args...)
}

const (
	headerIndex     = "X-Hive-Index"
	headerForwarded = "X-Hive-Forwarded"
	headerFwdNode   = "X-Hive-Forwarded-Node"
	// headerFwdFor carries the client's address through a forward, so the
	// leader throttles logins and audits by the real source. It is
	// trusted only on the internal port, from managers.
	headerFwdFor   = "X-Hive-Forwarded-For"
	defaultMaxBody = 1 << 20
	maxQueryWait   = 5 * time.Minute
	defaultWait    = time.Minute
)

// routes is the API. Every route that a user calls names the permission
// it needs (resource, action, and where the request reaches); the
// route-coverage test walks this table.
func (s *Server) routes() []route {
	alloc, eval, depl := allocScope, evalScope, deploymentScope
	return []route{
		{"GET", "/v1/join/ca", authPublic, forwardNever, 0, s.handleJoinCA, nil},
		{"POST", "/v1/join", authPublic, forwardAlways, 0, s.handleJoin, nil},
		{"POST", "/v1/login", authPublic, forwardAlways, 0, s.handleLogin, nil},
		{"POST", "/v1/logout", authSelf, forwardAlways, 0, s.handleLogout, nil},
		{"GET", "/v1/whoami", authSelf, forwardNever, 0, s.handleWhoAmI, nil},
		{"GET", "/v1/auth/can-i", authSelf, forwardNever, 0, s.handleCanI, nil},
		{"GET", "/v1/auth/permissions", authSelf, forwardNever, 0, s.handlePermissions, nil},
		{"GET", "/v1/status/leader", authUser, forwardNever, 0, s.handleLeader, p("operator", "read", nil)},
		{"GET", "/v1/metrics", authUser, forwardNever, 0, s.handleMetrics, p("operator", "read", nil)},
		{"GET", "/v1/nodes", authUser, forwardConsistent, 0, s.handleNodes, p("node", "list", nil)},
		{"GET", "/v1/node/self", authNode, forwardConsistent, 0, s.handleNodeSelf, nil},
		{"GET", "/v1/node/{id}", authUser, forwardConsistent, 0, s.handleNode, p("node", "read", named("id"))},
		{"DELETE", "/v1/node/{id}", authUser, forwardAlways, 0, s.handleNodeRemove, p("node", "delete", named("id"))},
		{"POST", "/v1/node/renew", authNode, forwardAlways, 0, s.handleRenew, nil},
		{"GET", "/v1/internal/gossip-keys", authNode, forwardNever, 0, s.handleGossipKeys, nil},
		{"POST", "/v1/internal/reset-admin", authNode, forwardAlways, 0, s.handleResetAdmin, nil},
		{"GET", "/v1/operator/raft/peers", authUser, forwardNever, 0, s.handleRaftPeers, p("operator", "raft", nil)},
		{"POST", "/v1/operator/gossip/rotate", authUser, forwardAlways, 0, s.handleGossipRotate, p("operator", "keyring", nil)},
		{"GET", "/v1/operator/snapshot", authUser, forwardAlways, 0, s.handleSnapshotSave, p("operator", "snapshot", nil)},
		{"PUT", "/v1/operator/snapshot", authUser, forwardAlways, maxSnapshotSize, s.handleSnapshotRestore, p("operator", "snapshot", nil)},
		{"GET", "/v1/namespaces", authUser, forwardConsistent, 0, s.handleNamespaces, p("namespace", "list", nil)},
		{"GET", "/v1/namespace/{name}", authUser, forwardConsistent, 0, s.handleNamespace, p("namespace", "read", pathNamespace)},
		{"PUT", "/v1/namespace/{name}", authUser, forwardAlways, 0, s.handleNamespaceCreate, p("namespace", "create", nil)},
		{"PATCH", "/v1/namespace/{name}", authUser, forwardAlways, 0, s.handleNamespaceUpdate, p("namespace", "update", nil)},
		{"DELETE", "/v1/namespace/{name}", authUser, forwardAlways, 0, s.handleNamespaceDelete, p("namespace", "delete", nil)},
		{"GET", "/v1/join-tokens", authUser, forwardConsistent, 0, s.handleJoinTokens, p("node", "create", nil)},
		{"POST", "/v1/join-tokens", authUser, forwardAlways, 0, s.handleJoinTokenCreate, p("node", "create", nil)},
		{"DELETE", "/v1/join-token/{id}", authUser, forwardAlways, 0, s.handleJoinTokenRevoke, p("node", "create", nil)},
		{"POST", "/v1/join-tokens/rotate/{role}", authUser, forwardAlways, 0, s.handleJoinTokenRotate, p("node", "create", nil)},
		{"GET", "/v1/events", authUser, forwardConsistent, 0, s.handleEvents, p("event", "list", nil)},
		{"POST", "/v1/allocations", authUser, forwardAlways, 0, s.handleAllocCreate, pb("alloc", "create", bodyNamespace("namespace"))},
		{"GET", "/v1/allocations", authUser, forwardConsistent, 0, s.handleAllocs, p("alloc", "list", anyNamespace)},
		{"GET", "/v1/allocation/{id}", authUser, forwardConsistent, 0, s.handleAlloc, p("alloc", "read", alloc)},
		{"POST", "/v1/allocation/{id}/stop", authUser, forwardAlways, 0, s.handleAllocStop, p("alloc", "stop", alloc)},
		{"GET", "/v1/allocation/{id}/logs", authUser, forwardNever, 0, s.handleAllocLogs, p("alloc/logs", "read", alloc)},
		{"POST", "/v1/allocation/{id}/quarantine", authUser, forwardAlways, 0, s.handleAllocQuarantine(true), p("alloc/quarantine", "update", alloc)},
		{"DELETE", "/v1/allocation/{id}/quarantine", authUser, forwardAlways, 0, s.handleAllocQuarantine(false), p("alloc/quarantine", "update", alloc)},
		{"GET", "/v1/node/allocations", authNode, forwardConsistent, 0, s.handleNodeAllocs, nil},
		{"GET", "/v1/node/network", authNode, forwardConsistent, 0, s.handleNodeNetwork, nil},
		{"PUT", "/v1/node/allocations", authNode, forwardAlways, 0, s.handleNodeAllocUpdate, nil},
		{"PUT", "/v1/node/register", authNode, forwardAlways, 0, s.handleNodeRegister, nil},
		{"POST", "/v1/node/heartbeat", authNode, forwardAlways, 0, s.handleHeartbeat, nil},
		{"POST", "/v1/node/{id}/drain", authUser, forwardAlways, 0, s.handleNodeEligibility(true, true), p("node", "drain", named("id"))},
		{"POST", "/v1/node/{id}/cordon", authUser, forwardAlways, 0, s.handleNodeEligibility(true, false), p("node", "update", named("id"))},
		{"POST", "/v1/node/{id}/uncordon", authUser, forwardAlways, 0, s.handleNodeEligibility(false, false), p("node", "update", named("id"))},
		{"GET", "/v1/images", authUser, forwardNever, 0, s.handleImages, p("image", "list", nil)},
		{"GET", "/v1/node/{id}/images", authUser, forwardNever, 0, s.handleNodeImages, p("image", "list", nil)},
		{"GET", "/v1/node/{id}/network", authUser, forwardNever, 0, s.handleNodeNetworkStatus, p("node", "read", named("id"))},
		{"POST", "/v1/node/denied-flows", authNode, forwardAlways, 0, s.handleNodeDenied, nil},
		{"POST", "/v1/node/{id}/images", authUser, forwardNever, maxImageArchive, s.handleImageImport, p("image", "create", nil)},
		{"POST", "/v1/jobs", authUser, forwardAlways, 0, s.handleJobRegister, pb("job", "create", bodyNamespace("job"))},
		{"GET", "/v1/jobs", authUser, forwardConsistent, 0, s.handleJobs, p("job", "list", inNamespace)},
		{"GET", "/v1/job/{id}", authUser, forwardConsistent, 0, s.handleJob, p("job", "read", nsAndName("id"))},
		{"DELETE", "/v1/job/{id}", authUser, forwardAlways, 0, s.handleJobDeregister, p("job", "stop", nsAndName("id"))},
		{"POST", "/v1/job/{id}/plan", authUser, forwardAlways, 0, s.handleJobPlan, pb("job", "read", bodyNamespace("job"))},
		{"GET", "/v1/job/{id}/versions", authUser, forwardConsistent, 0, s.handleJobVersions, p("job", "read", nsAndName("id"))},
		{"POST", "/v1/job/{id}/revert", authUser, forwardAlways, 0, s.handleJobRevert, p("job", "update", nsAndName("id"))},
		{"POST", "/v1/job/{id}/promote", authUser, forwardAlways, 0, s.handleJobPromote, p("job", "update", nsAndName("id"))},
		{"GET", "/v1/job/{id}/allocations", authUser, forwardConsistent, 0, s.handleJobAllocs, p("alloc", "list", nsAndName("id"))},
		{"GET", "/v1/job/{id}/evaluations", authUser, forwardConsistent, 0, s.handleJobEvals, p("evaluation", "list", nsAndName("id"))},
		{"GET", "/v1/job/{id}/deployment", authUser, forwardConsistent, 0, s.handleJobDeployment, p("deployment", "read", nsAndName("id"))},
		{"GET", "/v1/evaluation/{id}", authUser, forwardConsistent, 0, s.handleEval, p("evaluation", "read", eval)},
		{"GET", "/v1/deployment/{id}", authUser, forwardConsistent, 0, s.handleDeployment, p("deployment", "read", depl)},

		{"GET", "/v1/secrets", authUser, forwardConsistent, 0, s.handleSecrets, p("secret", "list", anyNamespace)},
		{"GET", "/v1/secret/{name}", authUser, forwardConsistent, 0, s.handleSecret, p("secret", "read", nsAndName("name"))},
		{"POST", "/v1/secret/{name}", authUser, forwardAlways, 2 * structs.MaxSecretSize, s.handleSecretCreate, p("secret", "create", nsAndName("name"))},
		{"PUT", "/v1/secret/{name}", authUser, forwardAlways, 2 * structs.MaxSecretSize, s.handleSecretUpdate, p("secret", "update", nsAndName("name"))},
		{"DELETE", "/v1/secret/{name}", authUser, forwardAlways, 0, s.handleSecretDelete, p("secret", "delete", nsAndName("name"))},
		{"GET", "/v1/secret/{name}/value", authUser, forwardNever, 0, s.handleSecretValue, p("secret/value", "read", nsAndName("name"))},
		{"POST", "/v1/secret/{name}/rollback", authUser, forwardAlways, 0, s.handleSecretRollback, p("secret", "update", nsAndName("name"))},
		{"GET", "/v1/node/secrets", authNode, forwardNever, 0, s.handleNodeSecrets, nil},
		{"GET", "/v1/operator/keyring", authUser, forwardNever, 0, s.handleKeyringStatus, p("operator", "read", nil)},
		{"POST", "/v1/operator/keyring/rotate-unseal", authUser, forwardAlways, 0, s.handleRotateUnseal, p("operator", "keyring", nil)},
		{"PUT", "/v1/internal/unseal-key/next", authNode, forwardNever, 0, s.handleUnsealNext, nil},
		{"POST", "/v1/operator/unlock", authUser, forwardNever, 0, s.handleUnlock, p("operator", "keyring", nil)},
		{"POST", "/v1/operator/keyring/rotate", authUser, forwardAlways, 0, s.handleKeyringRotate, p("operator", "keyring", nil)},

		{"GET", "/v1/netpols", authUser, forwardConsistent, 0, s.handleNetpols, p("netpol", "list", anyNamespace)},
		{"PUT", "/v1/netpols", authUser, forwardAlways, 0, s.handleNetpolPut, pb("netpol", "create", netpolBodyScope)},
		{"GET", "/v1/netpol/{ns}/{name}", authUser, forwardConsistent, 0, s.handleNetpol, p("netpol", "read", pathNSName)},
		{"DELETE", "/v1/netpol/{ns}/{name}", authUser, forwardAlways, 0, s.handleNetpolDelete, p("netpol", "delete", pathNSName)},
		{"GET", "/v1/admin-netpols", authUser, forwardConsistent, 0, s.handleAdminNetpols, p("netpol/admin", "list", nil)},
		{"PUT", "/v1/admin-netpols", authUser, forwardAlways, 0, s.handleAdminNetpolPut, p("netpol/admin", "create", nil)},
		{"GET", "/v1/admin-netpol/{name}", authUser, forwardConsistent, 0, s.handleAdminNetpol, p("netpol/admin", "read", named("name"))},
		{"DELETE", "/v1/admin-netpol/{name}", authUser, forwardAlways, 0, s.handleAdminNetpolDelete, p("netpol/admin", "delete", named("name"))},

		{"GET", "/v1/users", authUser, forwardConsistent, 0, s.handleUsers, p("user", "list", nil)},
		{"GET", "/v1/user/{name}", authUser, forwardConsistent, 0, s.handleUser, p("user", "read", named("name"))},
		{"PUT", "/v1/user/{name}", authUser, forwardAlways, 0, s.handleUserCreate, p("user", "create", named("name"))},
		{"DELETE", "/v1/user/{name}", authUser, forwardAlways, 0, s.handleUserDelete, p("user", "delete", named("name"))},
		{"PUT", "/v1/user/{name}/password", authSelf, forwardAlways, 0, s.handleUserPassword, nil},
		{"GET", "/v1/groups", authUser, forwardConsistent, 0, s.handleGroups, p("group", "list", nil)},
		{"GET", "/v1/group/{name}", authUser, forwardConsistent, 0, s.handleGroup, p("group", "read", named("name"))},
		{"PUT", "/v1/group/{name}", authUser, forwardAlways, 0, s.handleGroupCreate, p("group", "create", named("name"))},
		{"DELETE", "/v1/group/{name}", authUser, forwardAlways, 0, s.handleGroupDelete, p("group", "delete", named("name"))},
		{"POST", "/v1/group/{name}/members", authUser, forwardAlways, 0, s.handleGroupMembers, p("group", "update", named("name"))},
		{"GET", "/v1/roles", authUser, forwardConsistent, 0, s.handleRoles, p("role", "list", nil)},
		{"GET", "/v1/role/{name}", authUser, forwardConsistent, 0, s.handleRole, p("role", "read", named("name"))},
		{"PUT", "/v1/role/{name}", authUser, forwardAlways, 0, s.handleRolePut, p("role", "create", named("name"))},
		{"DELETE", "/v1/role/{name}", authUser, forwardAlways, 0, s.handleRoleDelete, p("role", "delete", named("name"))},
		{"GET", "/v1/bindings", authUser, forwardConsistent, 0, s.handleBindings, p("binding", "list", nil)},
		{"GET", "/v1/binding/{name}", authUser, forwardConsistent, 0, s.handleBinding, p("binding", "read", bindingScope)},
		{"PUT", "/v1/binding/{name}", authUser, forwardAlways, 0, s.handleBindingPut, pb("binding", "create", bindingScope)},
		{"DELETE", "/v1/binding/{name}", authUser, forwardAlways, 0, s.handleBindingDelete, p("binding", "delete", bindingScope)},
		{"GET", "/v1/tokens", authSelf, forwardConsistent, 0, s.handleTokens, nil},
		{"POST", "/v1/tokens", authSelf, forwardAlways, 0, s.handleTokenCreate, nil},
		{"DELETE", "/v1/token/{accessor}", authSelf, forwardAlways, 0, s.handleTokenRevoke, nil},
		{"GET", "/v1/serviceaccounts", authUser, forwardConsistent, 0, s.handleServiceAccounts, p("serviceaccount", "list", anyNamespace)},
		{"PUT", "/v1/serviceaccount/{ns}/{name}", authUser, forwardAlways, 0, s.handleServiceAccountCreate, p("serviceaccount", "create", pathNSName)},
		{"DELETE", "/v1/serviceaccount/{ns}/{name}", authUser, forwardAlways, 0, s.handleServiceAccountDelete, p("serviceaccount", "delete", pathNSName)},
		{"POST", "/v1/serviceaccount/{ns}/{name}/token", authUser, forwardAlways, 0, s.handleServiceAccountToken, p("serviceaccount", "update", pathNSName)},
	}
}

// handler builds the router. internal is true for the node-to-node port,
// where a calling manager may vouch for the node it forwards for.
func (s *Server) handler(internal bool) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.HandleFunc(rt.method+" "+rt.path, s.wrap(rt, internal))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Unknown paths get 404 only after authentication, so the API's
		// shape is not discoverable anonymously.
		// authenticate lets anonymous callers through (public routes need
		// that), so an unknown path also demands some credential.
		c, err := s.authenticate(r, internal)
		if err == nil && c.token == nil && c.nodeID == "" {
			err = authorize(authUser, c)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		writeError(w, notFound("no such API endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Server) wrap(rt route, internal bool) http.HandlerFunc {
	return func(w0 http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w := &recorder{ResponseWriter: w0}
		c := &caller{remote: r.RemoteAddr}
		defer func() { s.auditRequest(rt, r, c, w, start) }()
		limit := rt.maxBody
		if limit == 0 {
			limit = defaultMaxBody
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		ac, err := s.authenticate(r, internal)
		if err == nil && internal {
			// A manager forwarding a request vouches for its source.
			if src := r.Header.Get(headerFwdFor); src != "" {
				r.RemoteAddr, ac.remote = src, src
			}
		}
		if err != nil {
			c.event, c.reason = audit.EventAuthentication, err.Error()
			s.metrics.authFailures.WithLabelValues(authMethod(r)).Inc()
		} else {
			c = ac
			err = authorize(rt.auth, c)
			if err == nil && rt.auth == authUser {
				err = s.authorizeRoute(rt, r, c)
			}
		}
		if err != nil {
			s.logger.Debug("request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "error", err)
			writeError(w, err)
			return
		}
		s.captureRequest(rt, r, c, w)
		if s.mustForward(rt, r) {
			if r.Header.Get(headerForwarded) != "" {
				// Leadership moved while the request was in flight; one hop
				// only, so a split-brain view can never loop a request.
				writeError(w, errorf(http.StatusServiceUnavailable, "no_leader", "%s", ErrNoLeader))
				return
			}
			c.reason += " (forwarded to the leader)"
			s.forward(w, r, c)
			return
		}
		body, err := rt.h(w, r, c)
		if err != nil {
			writeError(w, err)
			return
		}
		if body == nil {
			return // the handler wrote the response itself
		}
		writeJSON(w, http.StatusOK, body)
	}
}

// authenticate finds out who is calling. A bad credential is an error even
// on public routes: it is never silently downgraded to anonymous.
func (s *Server) authenticate(r *http.Request, internal bool) (*caller, error) {
	c := &caller{remote: r.RemoteAddr}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		// The TLS layer verified the chain and the deny list at the
		// handshake, but a kept-alive connection outlives a revocation:
		// check the deny list again on every request.
		leaf := r.TLS.PeerCertificates[0]
		if err := s.verifyPeer(leaf); err != nil {
			return nil, errorf(http.StatusUnauthorized, "unauthenticated", "%v", err)
		}
		id, role, err := pki.Identity(leaf)
		if err != nil {
			return nil, errorf(http.StatusUnauthorized, "unauthenticated", "client certificate has no node identity: %v", err)
		}
		c.nodeID, c.nodeRole = id, role
	}
	if internal {
		// Only managers speak on the internal port with forwarded calls;
		// they vouch for the node whose call they pass on.
		if c.nodeRole != structs.RoleManager {
			return nil, errorf(http.StatusForbidden, "forbidden", "only managers may call the internal API")
		}
		c.nodeID, c.nodeRole = "", ""
		if fwd := r.Header.Get(headerFwdNode); fwd != "" {
			id, role, ok := strings.Cut(fwd, "/")
			if !ok || !structs.Role(role).Valid() {
				return nil, badRequest("malformed %s header", headerFwdNode)
			}
			c.nodeID, c.nodeRole = id, structs.Role(role)
		}
	}
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return c, nil
	}
	secret, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok {
		return nil, errorf(http.StatusUnauthorized, "unauthenticated", "Authorization header must be \"Bearer <token>\"")
	}
	if _, err := token.Parse(strings.TrimSpace(secret)); err != nil {
		return nil, errorf(http.StatusUnauthorized, "unauthenticated", "%v", err)
	}
	hash := token.Hash(strings.TrimSpace(secret))
	tok := s.fsm.State().Snapshot().ACLTokenBySecretHash(nil, hex.EncodeToString(hash))
	if tok == nil {
		return nil, errorf(http.StatusUnauthorized, "unauthenticated", "unknown or revoked API token")
	}
	// The lookup was by hash; compare again in constant time so the answer
	// never depends on how much of the hash matched.
	want, _ := hex.DecodeString(tok.SecretHash)
	if subtle.ConstantTimeCompare(want, hash) != 1 {
		return nil, errorf(http.StatusUnauthorized, "unauthenticated", "unknown or revoked API token")
	}
	if !tok.ExpiresAt.IsZero() && time.Now().After(tok.ExpiresAt) {
		return nil, errorf(http.StatusUnauthorized, "unauthenticated", "API token %s expired at %s", tok.AccessorID, tok.ExpiresAt.UTC().Format(time.RFC3339))
	}
	snap := s.fsm.State().Snapshot()
	subjects, err := s.subjects(snap, s.authzCache.get(snap), tok)
	if err != nil {
		return nil, errorf(http.StatusUnauthorized, "unauthenticated", "API token %s: %v", tok.AccessorID, err)
	}
	c.token, c.subjects = tok, subjects
	c.management = tok.Kind == structs.ACLTokenKindManagement
	return c, nil
}

func authorize(level authLevel, c *caller) error {
	switch level {
	case authPublic:
		return nil
	case authUser, authSelf:
		if c.token != nil {
			return nil
		}
		if c.nodeID != "" {
			return errorf(http.StatusForbidden, "forbidden", "node certificates may not call this endpoint; use an API token")
		}
	case authNode:
		if c.nodeID != "" {
			return nil
		}
		if c.token != nil {
			return errorf(http.StatusForbidden, "forbidden", "this endpoint is for nodes and needs a node certificate")
		}
	}
	return errorf(http.StatusUnauthorized, "unauthenticated", "authentication required: log in with `hive login`, or send \"Authorization: Bearer <token>\" (HIVE_TOKEN)")
}

func (s *Server) mustForward(rt route, r *http.Request) bool {
	switch rt.forward {
	case forwardAlways:
		return !s.IsLeader()
	case forwardConsistent:
		_, consistent := r.URL.Query()["consistent"]
		return consistent && !s.IsLeader()
	}
	return false
}

// forward proxies a request to the leader's internal port over mTLS.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, c *caller) {
	addr, _ := s.raft.LeaderWithID()
	if addr == "" {
		writeError(w, errorf(http.StatusServiceUnavailable, "no_leader", "%s", ErrNoLeader))
		return
	}
	target := &url.URL{Scheme: "https", Host: string(addr)}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set(headerForwarded, s.node.ID)
			pr.Out.Header.Set(headerFwdFor, r.RemoteAddr)
			pr.Out.Header.Del(headerFwdNode)
			if c.nodeID != "" {
				pr.Out.Header.Set(headerFwdNode, c.nodeID+"/"+string(c.nodeRole))
			}
		},
		Transport: s.forwarder.Transport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			writeError(w, errorf(http.StatusServiceUnavailable, "no_leader", "cannot reach the leader at %s: %v; retry shortly", addr, err))
		},
	}
	proxy.ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &mbe):
		ae = &apiError{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body exceeds %d bytes", mbe.Limit)}
	case errors.Is(err, ErrNoLeader):
		ae = &apiError{http.StatusServiceUnavailable, "no_leader", err.Error()}
	case errors.Is(err, fsm.ErrConflict):
		ae = &apiError{http.StatusConflict, "conflict", err.Error()}
	case errors.Is(err, fsm.ErrForbidden):
		ae = &apiError{http.StatusForbidden, "forbidden", err.Error()}
	case errors.Is(err, fsm.ErrInvalid):
		ae = &apiError{http.StatusBadRequest, "bad_request", err.Error()}
	case errors.Is(err, state.ErrNotFound):
		ae = &apiError{http.StatusNotFound, "not_found", err.Error()}
	default:
		ae = &apiError{http.StatusInternalServerError, "internal", err.Error()}
	}
	if ae.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hive"`)
	}
	writeJSON(w, ae.status, structs.ErrorResponse{Error: ae.msg, Code: ae.code})
}

// decodeJSON reads a JSON body strictly: unknown fields are errors, so a
// typo in a request is reported instead of ignored.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return badRequest("request body is empty; send a JSON object")
		}
		return badRequest("invalid JSON body: %v", err)
	}
	// Only whitespace may follow the value. (dec.More would report a stray
	// '}' or ']' as "no more" and let it through.)
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("invalid JSON body: unexpected data after the JSON value")
	}
	return nil
}

// queryFn reads state for a blocking query and returns the body and the
// index it reflects.
type queryFn func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error)

// blockingQuery answers a read; with ?index=N it waits until the state
// index passes N or ?wait= elapses (Nomad's blocking queries).
func (s *Server) blockingQuery(w http.ResponseWriter, r *http.Request, fn queryFn) (any, error) {
	q := r.URL.Query()
	var minIndex uint64
	if v := q.Get("index"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, badRequest("invalid index %q: use a non-negative integer from X-Hive-Index", v)
		}
		minIndex = n
	}
	wait := defaultWait
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return nil, badRequest("invalid wait %q: use a duration such as 30s", v)
		}
		wait = min(d, maxQueryWait)
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	for {
		store := s.fsm.State()
		ws := memdb.NewWatchSet()
		ws.Add(store.AbandonCh())
		body, idx, err := fn(ws, store.Snapshot())
		if err != nil {
			return nil, err
		}
		if idx == 0 {
			idx = 1 // clients must always see progress to avoid busy loops
		}
		if minIndex == 0 || idx > minIndex || ctx.Err() != nil {
			w.Header().Set(headerIndex, strconv.FormatUint(idx, 10))
			return body, nil
		}
		if err := ws.WatchCtx(ctx); err != nil && r.Context().Err() != nil {
			return nil, r.Context().Err()
		}
	}
}

func (s *Server) setupAPI() error {
	addr := net.JoinHostPort(s.cfg.BindAddr, strconv.Itoa(s.cfg.APIPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for the API on %s: %w", addr, err)
	}
	s.apiLn = ln
	tc := pki.APIServerTLS(s.certs.Pool, s.certs.GetCertificate, s.verifyPeer)
	s.apiSrv = &http.Server{
		Handler: s.handler(false), TLSConfig: tc,
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: s.logger.Named("http").StandardLogger(nil),
	}
	s.internalSrv = &http.Server{
		Handler: s.handler(true), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: s.logger.Named("rpc-http").StandardLogger(nil),
	}
	s.forwarder = &http.Client{Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dialRPC(ctx, addr, 10*time.Second, s.internalTLS, rpcHTTP)
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Minute,
	}}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.apiSrv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("API server stopped", "error", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		if err := s.internalSrv.Serve(s.mux.http); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.logger.Error("internal API server stopped", "error", err)
		}
	}()
	return nil
}
