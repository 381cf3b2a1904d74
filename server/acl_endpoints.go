package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hivesec/hive/audit"
	"github.com/hivesec/hive/crypto/passwd"
	"github.com/hivesec/hive/crypto/token"
	"github.com/hivesec/hive/fsm"
	"github.com/hivesec/hive/fsm/state"
	"github.com/hivesec/hive/lockout"
	"github.com/hivesec/hive/structs"
)

// Identity endpoints: login, tokens, users, groups, roles, bindings and
// service accounts. Routes check the permission named in the route table;
// the handlers add what a route cannot say: escalation prevention, and
// that a caller may always see and revoke its own tokens.

// bootstrapTokenName names the admin token `hive init` prints. It works for
// everything until it has created the first user, and then never again.
const bootstrapTokenName = "bootstrap admin"

// verifySlots bounds concurrent argon2id verifications: each holds 64 MiB
// for ~100 ms, and a flood of logins must not exhaust the manager.
var verifySlots = make(chan struct{}, 2)

// dummyHash is verified against when the user does not exist, so a login
// takes as long for an unknown name as for a wrong password. It is made on
// first use: every hive process (the CLI, `hive secret-exec` inside a
// task's memory limit) links this package, and argon2id costs 64 MiB.
var dummyHash = sync.OnceValue(func() string {
	h, err := passwd.Hash("hive-dummy-password-for-timing")
	if err != nil {
		return ""
	}
	return h
})

// newToken makes a token record and its secret.
func newToken(kind, name, subject, createdBy string, ttl time.Duration, now time.Time) (*structs.ACLToken, string, error) {
	secret, err := token.New(kind)
	if err != nil {
		return nil, "", err
	}
	var acc [16]byte
	if _, err := rand.Read(acc[:]); err != nil {
		return nil, "", fmt.Errorf("generate accessor: %w", err)
	}
	t := &structs.ACLToken{
		AccessorID: hex.EncodeToString(acc[:]), Name: name, Kind: kind,
		SecretHash: hex.EncodeToString(token.Hash(secret)), Subject: subject, CreatedBy: createdBy, CreatedAt: now,
	}
	if ttl > 0 {
		t.ExpiresAt = now.Add(ttl)
	}
	return t, secret, nil
}

func tokenInfo(t *structs.ACLToken) structs.TokenInfo {
	return structs.TokenInfo{
		AccessorID: t.AccessorID, Name: t.Name, Kind: t.Kind, Subject: t.Subject, Role: t.Role, Namespace: t.Namespace,
		CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
	}
}

func parseTTL(s string, def, max time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, badRequest("invalid ttl %q: use a positive duration such as 30m, 12h or 720h", s)
	}
	if max > 0 && d > max {
		return 0, badRequest("ttl %s is longer than the limit of %s", d, max)
	}
	return d, nil
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip != nil && ip.To4() == nil {
		// One IPv6 host owns a /64: key it whole, or it could rotate.
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return host
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	var req structs.LoginRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	c.event, c.resource, c.action = audit.EventAuthentication, "user", "login"
	if err := structs.ValidateACLName("user", req.User); err != nil {
		return nil, badRequest("%v", err)
	}
	c.name = req.User
	ttl, err := parseTTL(req.TTL, structs.DefaultSessionTTL, structs.MaxSessionTTL)
	if err != nil {
		return nil, err
	}
	userKey, addrKey := "user:"+req.User, "addr:"+clientIP(r)
	if _, err := s.logins.Check(userKey, addrKey); err != nil {
		s.metrics.authFailures.WithLabelValues("password").Inc()
		var re *lockout.RetryError
		if errors.As(err, &re) {
			w.Header().Set("Retry-After", fmt.Sprint(int(time.Until(re.Until).Seconds())+1))
		}
		c.reason = "refused: " + err.Error()
		if errors.Is(err, lockout.ErrLocked) {
			return nil, errorf(http.StatusForbidden, "locked_out", "too many failed logins for this user or address; try again after %s", re.Until.UTC().Format(time.RFC3339))
		}
		return nil, errorf(http.StatusTooManyRequests, "throttled", "too many failed logins; wait until %s and try again", re.Until.UTC().Format(time.RFC3339))
	}
	u := s.fsm.State().Snapshot().User(nil, req.User)
	hash := dummyHash()
	if u != nil {
		hash = u.PasswordHash
	}
	verifySlots <- struct{}{}
	ok, verr := passwd.Verify(req.Password, hash)
	<-verifySlots
	if verr != nil && u != nil {
		s.logger.Error("stored password hash is unusable", "user", req.User, "error", verr)
	}
	if u == nil || u.Disabled || !ok {
		locked := s.logins.Failure(userKey, addrKey)
		s.metrics.authFailures.WithLabelValues("password").Inc()
		c.reason = fmt.Sprintf("bad user name or password (%d recent failures for the user)", s.logins.Failures(userKey))
		if locked {
			c.reason += "; locked out"
			s.logger.Warn("login locked out after repeated failures", "user", req.User, "remote", r.RemoteAddr)
		}
		return nil, errorf(http.StatusUnauthorized, "unauthenticated", "invalid user name or password")
	}
	// Only the user's count is reset: resetting the address would let one
	// valid account clear an attacker's guesses at others.
	s.logins.Success(userKey)
	s.logins.Release(addrKey)
	now := time.Now().UTC()
	tok, secret, err := newToken(structs.TokenKindSession, "login", structs.UserSubject(u.Name), structs.UserSubject(u.Name), ttl, now)
	if err != nil {
		return nil, err
	}
	if _, err := s.apply(fsm.ACLWriteType, &fsm.ACLWriteRequest{Tokens: []*structs.ACLToken{tok}, Now: now}); err != nil {
		return nil, err
	}
	c.reason = "password accepted; session " + tok.AccessorID
	return &structs.TokenSecret{Secret: secret, Token: tokenInfo(tok)}, nil
}

func (s *Server) handleLogout(_ http.ResponseWriter, _ *http.Request, c *caller) (any, error) {
	if _, err := s.apply(fsm.ACLWriteType, &fsm.ACLWriteRequest{DeleteTokens: []string{c.token.AccessorID}}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *Server) handleWhoAmI(_ http.ResponseWriter, _ *http.Request, c *caller) (any, error) {
	info := tokenInfo(c.token)
	subjects := c.subjects
	if c.management {
		subjects = []string{c.String()}
	}
	return &structs.WhoAmI{Subject: c.String(), Subjects: subjects, Token: &info}, nil
}

// asSubjects resolves ?as= for can-i: checking what someone else may do
// needs user:read cluster-wide.
func (s *Server) asSubjects(r *http.Request, c *caller) (string, []string, error) {
	as := r.URL.Query().Get("as")
	if as == "" || as == c.String() {
		return c.String(), c.subjects, nil
	}
	if !s.decide(c, "user", "read", "", "").Allowed {
		return "", nil, errorf(http.StatusForbidden, "forbidden", "--as needs user:read cluster-wide")
	}
	snap := s.fsm.State().Snapshot()
	if err := structs.ValidateSubject(as); err != nil {
		return "", nil, badRequest("%v", err)
	}
	subjects := []string{as}
	if name, ok := strings.CutPrefix(as, structs.SubjectUserPrefix); ok {
		if snap.User(nil, name) == nil {
			return "", nil, notFound("user %q not found", name)
		}
		for _, g := range s.authzCache.get(snap).groups[name] {
			subjects = append(subjects, structs.GroupSubject(g))
		}
	}
	return as, subjects, nil
}

func (s *Server) handleCanI(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	q := r.URL.Query()
	res, act := q.Get("resource"), q.Get("action")
	if _, ok := structs.ACLResources[res]; !ok {
		return nil, badRequest("unknown resource %q; known: %s", res, strings.Join(structs.ACLResourceNames(), ", "))
	}
	if !structs.ValidACLAction(res, act) {
		return nil, badRequest("action %q does not exist on %s; it has: %s", act, res, strings.Join(structs.ACLResources[res], ", "))
	}
	as, subjects, err := s.asSubjects(r, c)
	if err != nil {
		return nil, err
	}
	probe := &caller{subjects: subjects, management: c.management && as == c.String()}
	d := s.decide(probe, res, act, q.Get("namespace"), q.Get("name"))
	return &structs.CanIResponse{Allowed: d.Allowed, Subject: as, Resource: res, Action: act,
		Namespace: q.Get("namespace"), Name: q.Get("name"), Role: d.Role, Binding: d.Binding, Rule: d.Rule}, nil
}

func (s *Server) handlePermissions(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	as, subjects, err := s.asSubjects(r, c)
	if err != nil {
		return nil, err
	}
	out := &structs.PermissionsResponse{Subject: as, Permissions: []structs.Permission{}}
	if c.management && as == c.String() {
		out.Permissions = append(out.Permissions, structs.Permission{Resource: "*", Actions: []string{"*"}, Scope: "global", Role: "admin", Binding: "bootstrap token"})
		return out, nil
	}
	ca := s.authzCache.get(s.fsm.State().Snapshot())
	if ca.err != nil {
		return nil, ca.err
	}
	for _, p := range ca.authz.List(subjects) {
		out.Permissions = append(out.Permissions, structs.Permission{Resource: p.Resource, Actions: p.Actions, Scope: p.Scope, Role: p.Role, Binding: p.Binding})
	}
	return out, nil
}

// ---- users ------------------------------------------------------------------

func (s *Server) userInfo(snap *state.Snapshot, u *structs.User) structs.UserInfo {
	return structs.UserInfo{Name: u.Name, Groups: append([]string{}, s.authzCache.get(snap).groups[u.Name]...), Disabled: u.Disabled, CreatedAt: u.CreatedAt}
}

func (s *Server) handleUsers(_ http.ResponseWriter, _ *http.Request, _ *caller) (any, error) {
	snap := s.fsm.State().Snapshot()
	out := []structs.UserInfo{}
	for _, u := range snap.Users(nil) {
		out = append(out, s.userInfo(snap, u))
	}
	return out, nil
}

func (s *Server) handleUser(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	snap := s.fsm.State().Snapshot()
	u := snap.User(nil, r.PathValue("name"))
	if u == nil {
		return nil, notFound("user %q not found; list them with `hive user ls`", r.PathValue("name"))
	}
	return s.userInfo(snap, u), nil
}

func hashPassword(pw string) (string, error) {
	if err := passwd.CheckStrength(pw); err != nil {
		return "", badRequest("%v", err)
	}
	verifySlots <- struct{}{}
	defer func() { <-verifySlots }()
	return passwd.Hash(pw)
}

func userBindingName(user, role, ns string) string {
	n := "user-" + user + "-" + role
	if ns != "" {
		n += "-" + ns
	}
	return n
}

func (s *Server) handleUserCreate(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	name := r.PathValue("name")
	var req structs.UserRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	if err := structs.ValidateACLName("user", name); err != nil {
		return nil, badRequest("%v", err)
	}
	snap := s.fsm.State().Snapshot()
	if snap.User(nil, name) != nil {
		return nil, errorf(http.StatusConflict, "conflict", "user %q already exists", name)
	}
	now := time.Now().UTC()
	write := &fsm.ACLWriteRequest{Now: now}
	if req.Role != "" {
		role := s.roleByName(snap, req.Role)
		if role == nil {
			return nil, notFound("role %q not found; list them with `hive role ls`", req.Role)
		}
		if req.Namespace != "" && !s.decide(c, "binding", "create", req.Namespace, "").Allowed ||
			req.Namespace == "" && !s.decide(c, "binding", "create", "", "").Allowed {
			return nil, errorf(http.StatusForbidden, "forbidden", "giving the user a role needs binding:create there")
		}
		if err := s.requireGrant(c, role, req.Namespace); err != nil {
			return nil, err
		}
		write.Bindings = []*structs.ACLBinding{{Name: userBindingName(name, req.Role, req.Namespace), Role: req.Role,
			Subjects: []string{structs.UserSubject(name)}, Namespace: req.Namespace}}
	} else if req.Namespace != "" {
		return nil, badRequest("namespace is for the user's role; give --role too")
	}
	hash, err := hashPassword(req.Password)
	if err != nil {
		return nil, err
	}
	write.Users = []*structs.User{{Name: name, PasswordHash: hash, CreatedAt: now}}
	if c.management && c.token.Name == bootstrapTokenName {
		// The bootstrap token's job is done once a real user exists.
		write.DeleteTokens = []string{c.token.AccessorID}
		c.reason += "; bootstrap token consumed"
	}
	if _, err := s.apply(fsm.ACLWriteType, write); err != nil {
		return nil, err
	}
	snap = s.fsm.State().Snapshot()
	return s.userInfo(snap, snap.User(nil, name)), nil
}

func (s *Server) handleUserDelete(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	name := r.PathValue("name")
	if c.token.Subject == structs.UserSubject(name) {
		return nil, badRequest("you cannot delete your own user; ask another administrator")
	}
	if _, err := s.apply(fsm.ACLWriteType, &fsm.ACLWriteRequest{DeleteUsers: []string{name}}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// handleUserPassword changes a password: your own with the old one, or
// anyone's with user:update. Every session of the user but the caller's
// own ends.
func (s *Server) handleUserPassword(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	name := r.PathValue("name")
	var req structs.PasswordRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	snap := s.fsm.State().Snapshot()
	c.resource, c.action, c.name = "user", "update", name
	self := c.token.Subject == structs.UserSubject(name)
	if !self && !s.decide(c, "user", "update", "", name).Allowed {
		s.metrics.denied.WithLabelValues("user", "update").Inc()
		return nil, errorf(http.StatusForbidden, "forbidden", "%s may not change the password of user %q; that needs user:update", c, name)
	}
	u := snap.User(nil, name)
	if u == nil {
		return nil, notFound("user %q not found", name)
	}
	if self {
		verifySlots <- struct{}{}
		ok, _ := passwd.Verify(req.OldPassword, u.PasswordHash)
		<-verifySlots
		if !ok {
			s.metrics.authFailures.WithLabelValues("password").Inc()
			return nil, errorf(http.StatusForbidden, "forbidden", "the old password is wrong")
		}
	}
	hash, err := hashPassword(req.Password)
	if err != nil {
		return nil, err
	}
	cp := *u
	cp.PasswordHash = hash
	write := &fsm.ACLWriteRequest{Users: []*structs.User{&cp}, Now: time.Now().UTC()}
	for _, t := range snap.ACLTokensBySubject(nil, structs.UserSubject(name)) {
		if t.Kind == structs.TokenKindSession && t.AccessorID != c.token.AccessorID {
			write.DeleteTokens = append(write.DeleteTokens, t.AccessorID)
		}
	}
	if _, err := s.apply(fsm.ACLWriteType, write); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// ---- groups -----------------------------------------------------------------

func (s *Server) handleGroups(_ http.ResponseWriter, _ *http.Request, _ *caller) (any, error) {
	out := []*structs.Group{}
	return append(out, s.fsm.State().Snapshot().Groups(nil)...), nil
}

func (s *Server) handleGroup(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	g := s.fsm.State().Snapshot().Group(nil, r.PathValue("name"))
	if g == nil {
		return nil, notFound("group %q not found; list them with `hive group ls`", r.PathValue("name"))
	}
	return g, nil
}

func checkUsersExist(snap *state.Snapshot, names []string) error {
	for _, m := range names {
		if snap.User(nil, m) == nil {
			return badRequest("user %q does not exist; create it with `hive user create %s`", m, m)
		}
	}
	return nil
}

func (s *Server) handleGroupCreate(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	name := r.PathValue("name")
	var req structs.GroupRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
	}
	snap := s.fsm.State().Snapshot()
	if snap.Group(nil, name) != nil {
		return nil, errorf(http.StatusConflict, "conflict", "group %q already exists", name)
	}
	if err := checkUsersExist(snap, req.Members); err != nil {
		return nil, err
	}
	g := &structs.Group{Name: name, Members: req.Members}
	if _, err := s.apply(fsm.ACLWriteType, &fsm.ACLWriteRequest{Groups: []*structs.Group{g}}); err != nil {
		return nil, err
	}
	return s.fsm.State().Snapshot().Group(nil, name), nil
}

func (s *Server) handleGroupDelete(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	if _, err := s.apply(fsm.ACLWriteType, &fsm.ACLWriteRequest{DeleteGroups: []string{r.PathValue("name")}}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *Server) handleGroupMembers(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	name := r.PathValue("name")
	var req structs.GroupMembersRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	snap := s.fsm.State().Snapshot()
	g := snap.Group(nil, name)
	if g == nil {
		return nil, notFound("group %q not found", name)
	}
	if err := checkUsersExist(snap, req.Add); err != nil {
		return nil, err
	}
	// Adding members passes on what the group holds: the caller must hold
	// it too, wherever it is bound.
	if len(req.Add) > 0 {
		for _, b := range snap.ACLBindings(nil) {
			if slices.Contains(b.Subjects, structs.GroupSubject(name)) {
				if err := s.requireGrant(c, s.roleByName(snap, b.Role), b.Namespace); err != nil {
					return nil, err
				}
			}
		}
	}
	cp := *g
	cp.Members = slices.Clone(g.Members)
	for _, m := range req.Add {
		if !slices.Contains(cp.Members, m) {
			cp.Members = append(cp.Members, m)
		}
	}
	cp.Members = slices.DeleteFunc(cp.Members, func(m string) bool { return slices.Contains(req.Remove, m) })
	if _, err := s.apply(fsm.ACLWriteType, &fsm.ACLWriteRequest{Groups: []*structs.Group{&cp}}); err != nil {
		return nil, err
	}
	return s.fsm.State().Snapshot().Group(nil, name), nil
}

// ---- roles and bindings -----------------------------------------------------

func (s *Server) handleRoles(_ http.ResponseWriter, _ *http.Request, _ *caller) (any, error) {
	return s.allRoles(s.fsm.State().Snapshot()), nil
}

func (s *Server) handleRole(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	role := s.roleByName(s.fsm.State().Snapshot(), r.PathValue("name"))
	if role == nil {
		return nil, notFound("role %q not found; list them with `hive role ls`", r.PathValue("name"))
	}
	return role, nil
}

func (s *Server) handleRolePut(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	name := r.PathValue("name")
	var role structs.ACLRole
	if err := decodeJSON(r, &role); err != nil {
		return nil, err
	}
	if role.Name == "" {
		role.Name = name
	}
	if role.Name != name {
		return nil, badRequest("role name in the body (%q) differs from the path (%q)", role.Name, name)
	}
	role.BuiltIn = false
	if err := role.Validate(); err != nil {
		return nil, badRequest("%v", err)
	}
	snap := s.fsm.State().Snapshot()
	if old := snap.ACLRole(nil, name); old != nil && !s.decide(c, "role", "update", "", name).Allowed {
		return nil, errorf(http.StatusForbidden, "forbidden", "role %q exists; changing it needs role:update", name)
	}
	if err := s.requireGrant(c, &role, ""); err != nil {
		return nil, err
	}
	// A changed role reaches everyone bound to it: the caller must also
	// hold it where it is bound.
	for _, b := range snap.ACLBindingsByRole(nil, name) {
		if err := s.requireGrant(c, &role, b.Namespace); err != nil {
			return nil, err
		}
	}
	if _, err := s.apply(fsm.ACLWriteType, &fsm.ACLWriteRequest{Roles: []*structs.ACLRole{&role}}); err != nil {
		return nil, err
	}
	return s.fsm.State().Snapshot().ACLRole(nil, name), nil
}

func (s *Server) handleRoleDelete(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	if _, err := s.apply(fsm.ACLWriteType, &fsm.ACLWriteRequest{DeleteRoles: []string{r.PathValue("name")}}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *Server) handleBindings(_ http.ResponseWriter, _ *http.Request, _ *caller) (any, error) {
	out := []*structs.ACLBinding{}
	return append(out, s.fsm.State().Snapshot().ACLBindings(nil)...), nil
}

func (s *Server) handleBinding(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	b := s.fsm.State().Snapshot().ACLBinding(nil, r.PathValue("name"))
	if b == nil {
		return nil, notFound("binding %q not found; list them with `hive binding ls`", r.PathValue("name"))
	}
	return b, nil
}

func (s *Server) handleBindingPut(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	name := r.PathValue("name")
	var b structs.ACLBinding
	if err := decodeJSON(r, &b); err != nil {
		return nil, err
	}
	if b.Name == "" {
		b.Name = name
	}
	if b.Name != name {
		return nil, badRequest("binding name in the body (%q) differs from the path (%q)", b.Name, name)
	}
	if err := b.Validate(); err != nil {
		return nil, badRequest("%v", err)
	}
	snap := s.fsm.State().Snapshot()
	role := s.roleByName(snap, b.Role)
	if role == nil {
		return nil, notFound("role %q not found; create it first", b.Role)
	}
	if old := snap.ACLBinding(nil, name); old != nil {
		if !s.decide(c, "binding", "update", old.Namespace, name).Allowed {
			return nil, errorf(http.StatusForbidden, "forbidden", "binding %q exists; changing it needs binding:update", name)
		}
	}
	if err := s.requireGrant(c, role, b.Namespace); err != nil {
		return nil, err
	}
	if _, err := s.apply(fsm.ACLWriteType, &fsm.ACLWriteRequest{Bindings: []*structs.ACLBinding{&b}}); err != nil {
		return nil, err
	}
	return s.fsm.State().Snapshot().ACLBinding(nil, name), nil
}

func (s *Server) handleBindingDelete(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	if _, err := s.apply(fsm.ACLWriteType, &fsm.ACLWriteRequest{DeleteBindings: []string{r.PathValue("name")}}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// ---- tokens -----------------------------------------------------------------

// ownToken reports whether t was made by or for the caller.
func ownToken(c *caller, t *structs.ACLToken) bool {
	me := c.String()
	return t.AccessorID == c.token.AccessorID || (c.token.Subject != "" && t.Subject == c.token.Subject) || t.CreatedBy == me
}

func (s *Server) handleTokens(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	all := s.decide(c, "token", "list", "", "").Allowed
	subject := r.URL.Query().Get("subject")
	out := []structs.TokenInfo{}
	for _, t := range s.fsm.State().Snapshot().ACLTokens(nil) {
		if (all || ownToken(c, t)) && (subject == "" || t.Subject == subject) {
			out = append(out, tokenInfo(t))
		}
	}
	return out, nil
}

// handleTokenCreate issues an API token. Anyone may make a token that acts
// as themselves; a token holding a role needs the role at that scope.
func (s *Server) handleTokenCreate(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	var req structs.TokenCreateRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
	}
	c.resource, c.action = "token", "create"
	ttl, err := parseTTL(req.TTL, 0, 0)
	if err != nil {
		return nil, err
	}
	if len(req.Name) > 128 {
		return nil, badRequest("token name is %d bytes; the limit is 128", len(req.Name))
	}
	if req.Namespace != "" && req.Role == "" {
		return nil, badRequest("namespace confines the token's role; give --role too")
	}
	now := time.Now().UTC()
	tok, secret, err := newToken(structs.TokenKindAPI, req.Name, c.token.Subject, c.String(), ttl, now)
	if err != nil {
		return nil, err
	}
	snap := s.fsm.State().Snapshot()
	switch {
	case req.Role != "":
		role := s.roleByName(snap, req.Role)
		if role == nil {
			return nil, notFound("role %q not found; list them with `hive role ls`", req.Role)
		}
		if req.Namespace != "" && snap.Namespace(nil, req.Namespace) == nil {
			return nil, notFound("namespace %q not found", req.Namespace)
		}
		if err := s.requireGrant(c, role, req.Namespace); err != nil {
			return nil, err
		}
		tok.Subject, tok.Role, tok.Namespace = "", req.Role, req.Namespace
	case c.management:
		tok.Role = "admin"
	case c.token.Role != "":
		// A role token's child holds the same role.
		tok.Subject, tok.Role, tok.Namespace = "", c.token.Role, c.token.Namespace
	}
	// A token never outlives the token that made it.
	if !c.token.ExpiresAt.IsZero() && (tok.ExpiresAt.IsZero() || tok.ExpiresAt.After(c.token.ExpiresAt)) {
		tok.ExpiresAt = c.token.ExpiresAt
	}
	if _, err := s.apply(fsm.ACLWriteType, &fsm.ACLWriteRequest{Tokens: []*structs.ACLToken{tok}, Now: now}); err != nil {
		return nil, err
	}
	return &structs.TokenSecret{Secret: secret, Token: tokenInfo(tok)}, nil
}

func (s *Server) handleTokenRevoke(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	acc := r.PathValue("accessor")
	c.resource, c.action, c.name = "token", "revoke", acc
	t := s.fsm.State().Snapshot().ACLToken(nil, acc)
	allowed := s.decide(c, "token", "revoke", "", "").Allowed
	if t == nil {
		if !allowed {
			return nil, errorf(http.StatusForbidden, "forbidden", "%s may not revoke token %s", c, acc)
		}
		return nil, notFound("token %s not found; list them with `hive token ls`", acc)
	}
	if !allowed && !ownToken(c, t) {
		s.metrics.denied.WithLabelValues("token", "revoke").Inc()
		return nil, errorf(http.StatusForbidden, "forbidden", "%s may revoke only its own tokens; others need token:revoke", c)
	}
	if _, err := s.apply(fsm.ACLWriteType, &fsm.ACLWriteRequest{DeleteTokens: []string{acc}}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// ---- service accounts -------------------------------------------------------

func (s *Server) handleServiceAccounts(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	out := []*structs.ServiceAccount{}
	return append(out, s.fsm.State().Snapshot().ServiceAccounts(nil, r.URL.Query().Get("namespace"))...), nil
}

func (s *Server) handleServiceAccountCreate(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	var req structs.ServiceAccountRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
	}
	snap := s.fsm.State().Snapshot()
	if snap.ServiceAccount(nil, ns, name) != nil {
		return nil, errorf(http.StatusConflict, "conflict", "service account %s/%s already exists", ns, name)
	}
	sa := &structs.ServiceAccount{Namespace: ns, Name: name, Description: req.Description, CreatedAt: time.Now().UTC()}
	if err := sa.Validate(); err != nil {
		return nil, badRequest("%v", err)
	}
	if snap.Namespace(nil, ns) == nil {
		return nil, notFound("namespace %q not found; create it with `hive namespace create %s`", ns, ns)
	}
	if _, err := s.apply(fsm.ACLWriteType, &fsm.ACLWriteRequest{ServiceAccounts: []*structs.ServiceAccount{sa}}); err != nil {
		return nil, err
	}
	return s.fsm.State().Snapshot().ServiceAccount(nil, ns, name), nil
}

func (s *Server) handleServiceAccountDelete(_ http.ResponseWriter, r *http.Request, _ *caller) (any, error) {
	k := [2]string{r.PathValue("ns"), r.PathValue("name")}
	if _, err := s.apply(fsm.ACLWriteType, &fsm.ACLWriteRequest{DeleteServiceAccounts: [][2]string{k}}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// handleServiceAccountToken issues a token for a service account; with a
// rotation grace, its earlier tokens end that long from now.
func (s *Server) handleServiceAccountToken(_ http.ResponseWriter, r *http.Request, c *caller) (any, error) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	var req structs.ServiceAccountTokenRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
	}
	ttl, err := parseTTL(req.TTL, 0, 0)
	if err != nil {
		return nil, err
	}
	snap := s.fsm.State().Snapshot()
	if snap.ServiceAccount(nil, ns, name) == nil {
		return nil, notFound("service account %s/%s not found; create it with `hive sa create %s/%s`", ns, name, ns, name)
	}
	subject := structs.ServiceAccountSubject(ns, name)
	now := time.Now().UTC()
	tok, secret, err := newToken(structs.TokenKindServiceAccount, req.Name, subject, c.String(), ttl, now)
	if err != nil {
		return nil, err
	}
	write := &fsm.ACLWriteRequest{Tokens: []*structs.ACLToken{tok}, Now: now}
	if req.RotateGrace != "" {
		grace, err := time.ParseDuration(req.RotateGrace)
		if err != nil || grace < 0 {
			return nil, badRequest("invalid rotate_grace %q: use a duration such as 0s, 10m or 1h", req.RotateGrace)
		}
		write.ExpireTokens = map[string]time.Time{}
		for _, t := range snap.ACLTokensBySubject(nil, subject) {
			write.ExpireTokens[t.AccessorID] = now.Add(grace)
		}
	}
	if _, err := s.apply(fsm.ACLWriteType, write); err != nil {
		return nil, err
	}
	return &structs.TokenSecret{Secret: secret, Token: tokenInfo(tok)}, nil
}
