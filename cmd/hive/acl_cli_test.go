package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hivesec/hive/acl"
	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/audit"
	"github.com/hivesec/hive/structs"
)

// Fixtures for the identity and authorization commands. The fake API knows
// one password and two sessions: sess-alice is alice's own, any other
// token is an administrator's.
const (
	fxPassword      = "correct horse battery staple"
	fxNewPassword   = "a much longer new password"
	fxSessionSecret = "hive_session_S3CRET"
	fxAPISecret     = "hive_api_S3CRET"
	fxSASecret      = "hive_sa_S3CRET"
)

var (
	fxSession  = structs.TokenInfo{AccessorID: "acc-sess", Kind: structs.TokenKindSession, Subject: "user:alice", CreatedAt: t0, ExpiresAt: t0}
	fxWhoAlice = structs.WhoAmI{Subject: "user:alice", Subjects: []string{"user:alice", "group:ops"}, Token: &fxSession}
	fxWhoAdmin = structs.WhoAmI{Subject: "user:root", Subjects: []string{"user:root"}}
	fxUsers    = []structs.UserInfo{
		{Name: "alice", Groups: []string{"ops", "web"}, CreatedAt: t0},
		{Name: "bob", Disabled: true, CreatedAt: t0},
	}
	fxGroups = []structs.Group{{Name: "ops", Members: []string{"alice", "bob"}}, {Name: "empty"}}
	fxRoles  = func() []structs.ACLRole {
		var out []structs.ACLRole
		for _, r := range acl.BuiltinRoles() {
			out = append(out, *r)
		}
		return append(out, structs.ACLRole{Name: "deployer", Description: "deploys web", Rules: []structs.ACLRule{
			{Resources: []string{"job", "alloc"}, Actions: []string{"read", "create"}, Scope: "namespace:web"},
			{Resources: []string{"alloc/logs"}, Actions: []string{"read"}},
		}})
	}()
	fxBindings = []structs.ACLBinding{
		{Name: "ops-admin", Role: "admin", Subjects: []string{"group:ops"}},
		{Name: "web-devs", Role: "developer", Subjects: []string{"user:alice", "sa:web/ci"}, Namespace: "web"},
	}
	fxAPITokens = []structs.TokenInfo{
		fxSession,
		// A token limited to a role has no subject, as the server makes it.
		{AccessorID: "acc-api", Name: "ci", Kind: structs.TokenKindAPI, Role: "deployer", Namespace: "web", CreatedBy: "user:alice", CreatedAt: t0},
	}
	fxSAs  = []structs.ServiceAccount{{Namespace: "web", Name: "ci", Description: "deploys from CI", CreatedAt: t0}}
	fxCanI = structs.CanIResponse{Allowed: true, Subject: "user:alice", Resource: "job", Action: "read", Namespace: "web",
		Role: "viewer", Binding: "all-view", Rule: "job:read,list @ global"}
	fxPerms = structs.PermissionsResponse{Subject: "user:alice", Permissions: []structs.Permission{
		{Resource: "job", Actions: []string{"create", "read"}, Scope: "namespace:web", Role: "deployer", Binding: "web-devs"},
		{Resource: "node", Actions: []string{"list", "read"}, Scope: "global", Role: "viewer", Binding: "all-view"},
	}}
)

// serveACL answers the identity and authorization routes.
func (f *fakeAPI) serveACL(r *http.Request, body []byte, reply func(int, any)) bool {
	ok := func() { reply(200, struct{}{}) }
	fail := func(status int, msg, code string) { reply(status, structs.ErrorResponse{Error: msg, Code: code}) }
	auth := r.Header.Get("Authorization")
	p := r.URL.Path
	switch key := r.Method + " " + p; {
	case key == "POST /v1/login":
		var req structs.LoginRequest
		_ = json.Unmarshal(body, &req)
		if req.User != "alice" || req.Password != fxPassword {
			fail(401, "invalid user name or password", "unauthenticated")
			return true
		}
		reply(200, structs.TokenSecret{Secret: fxSessionSecret, Token: fxSession})
	case auth == "Bearer expired":
		fail(401, "token expired", "unauthenticated")
	case key == "POST /v1/logout":
		ok()
	case key == "GET /v1/whoami":
		switch {
		case strings.HasPrefix(auth, "Bearer sess-") || auth == "Bearer "+fxSessionSecret:
			reply(200, fxWhoAlice)
		case auth == "Bearer api-token":
			reply(200, structs.WhoAmI{Subject: "user:alice", Subjects: []string{"user:alice"}, Token: &fxAPITokens[1]})
		default:
			reply(200, fxWhoAdmin)
		}
	case key == "GET /v1/auth/can-i":
		q := r.URL.Query()
		if q.Get("action") != "read" {
			reply(200, structs.CanIResponse{Subject: "user:alice", Resource: q.Get("resource"), Action: q.Get("action"), Namespace: q.Get("namespace")})
			return true
		}
		reply(200, fxCanI)
	case key == "GET /v1/auth/permissions":
		reply(200, fxPerms)

	case key == "GET /v1/users":
		reply(200, fxUsers)
	case key == "GET /v1/user/alice":
		reply(200, fxUsers[0])
	case r.Method == "PUT" && strings.HasPrefix(p, "/v1/user/") && strings.HasSuffix(p, "/password"):
		ok()
	case r.Method == "PUT" && strings.HasPrefix(p, "/v1/user/"):
		reply(200, structs.UserInfo{Name: strings.TrimPrefix(p, "/v1/user/"), CreatedAt: t0})
	case key == "DELETE /v1/user/bob":
		ok()

	case key == "GET /v1/groups":
		reply(200, fxGroups)
	case key == "GET /v1/group/ops":
		reply(200, fxGroups[0])
	case key == "POST /v1/group/ops/members":
		var req structs.GroupMembersRequest
		_ = json.Unmarshal(body, &req)
		g := structs.Group{Name: "ops", Members: append(append([]string{}, fxGroups[0].Members...), req.Add...)}
		reply(200, g)
	case r.Method == "PUT" && strings.HasPrefix(p, "/v1/group/"):
		var req structs.GroupRequest
		_ = json.Unmarshal(body, &req)
		reply(200, structs.Group{Name: strings.TrimPrefix(p, "/v1/group/"), Members: req.Members})
	case key == "DELETE /v1/group/ops":
		ok()

	case key == "GET /v1/roles":
		reply(200, fxRoles)
	case key == "GET /v1/role/deployer":
		reply(200, fxRoles[len(fxRoles)-1])
	case key == "PUT /v1/role/refused":
		fail(403, "granting job:delete exceeds what you hold", "forbidden")
	case r.Method == "PUT" && strings.HasPrefix(p, "/v1/role/"), key == "DELETE /v1/role/deployer":
		ok()

	case key == "GET /v1/bindings":
		reply(200, fxBindings)
	case key == "GET /v1/binding/web-devs":
		reply(200, fxBindings[1])
	case key == "PUT /v1/binding/refused":
		fail(403, "you cannot give out role admin", "forbidden")
	case r.Method == "PUT" && strings.HasPrefix(p, "/v1/binding/"), key == "DELETE /v1/binding/web-devs":
		ok()

	case key == "GET /v1/tokens":
		reply(200, fxAPITokens)
	case key == "POST /v1/tokens":
		var req structs.TokenCreateRequest
		_ = json.Unmarshal(body, &req)
		if req.Role == "worker" {
			fail(404, `role "worker" not found`, "not_found")
			return true
		}
		reply(200, structs.TokenSecret{Secret: fxAPISecret, Token: fxAPITokens[1]})
	case key == "DELETE /v1/token/acc-api":
		ok()

	case key == "GET /v1/serviceaccounts":
		reply(200, fxSAs)
	case key == "PUT /v1/serviceaccount/web/ci":
		reply(200, fxSAs[0])
	case key == "DELETE /v1/serviceaccount/web/ci":
		ok()
	case key == "POST /v1/serviceaccount/web/ci/token":
		reply(200, structs.TokenSecret{Secret: fxSASecret, Token: structs.TokenInfo{AccessorID: "acc-sa", Kind: structs.TokenKindServiceAccount, Subject: "sa:web/ci", ExpiresAt: t0}})
	default:
		return false
	}
	return true
}

// hiveIn runs the CLI with stdin as its standard input.
func hiveIn(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runWithInput(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func mustRunIn(t *testing.T, stdin string, args ...string) (stdout, stderr string) {
	t.Helper()
	out, errs, code := hiveIn(t, stdin, args...)
	if code != 0 {
		t.Fatalf("hive %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out, errs
}

// fakeTTY stands in for a terminal: ReadPassword returns the next answer.
type fakeTTY struct{ answers []string }

func (f *fakeTTY) ReadPassword() ([]byte, error) {
	if len(f.answers) == 0 {
		return nil, io.EOF
	}
	a := f.answers[0]
	f.answers = f.answers[1:]
	return []byte(a), nil
}

// withTTY makes standard input a terminal that types answers at password
// prompts (user names still come from standard input).
func withTTY(t *testing.T, answers ...string) *fakeTTY {
	t.Helper()
	tty := &fakeTTY{answers: answers}
	old := openTerminal
	openTerminal = func(io.Reader) terminal { return tty }
	t.Cleanup(func() { openTerminal = old })
	return tty
}

// noSecrets fails if any of the secrets shows in the outputs.
func noSecrets(t *testing.T, outputs ...string) {
	t.Helper()
	for _, o := range outputs {
		for _, s := range []string{fxPassword, fxNewPassword, fxSessionSecret} {
			if strings.Contains(o, s) {
				t.Errorf("output shows the secret %q:\n%s", s, o)
			}
		}
	}
}

// useConfig points HIVE_CONFIG at path, writing kv there unless it is nil.
func useConfig(t *testing.T, path string, kv map[string]string) {
	t.Helper()
	t.Setenv(envConfig, path)
	if kv != nil {
		if err := writeCLIConfig(path, kv); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fakeAPI) reqAt(i int) (req, query, auth, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i < 0 {
		i += len(f.requests)
	}
	return f.requests[i], f.queries[i], f.auth[i], f.bodies[i]
}

func TestLoginWritesConfig(t *testing.T) {
	f := env(t)
	path := filepath.Join(t.TempDir(), "home", ".hive", "config")
	useConfig(t, path, nil)
	out, errs := mustRunIn(t, fxPassword+"\n", "login", "--user", "alice", "--password-stdin")
	if out != "Logged in as alice; session expires at 2030-01-02T03:04:05Z.\n" {
		t.Errorf("stdout = %q", out)
	}
	noSecrets(t, out, errs)
	req, _, auth, body := f.reqAt(-1)
	if req != "POST /v1/login" || auth != "" {
		t.Errorf("request %q with Authorization %q", req, auth)
	}
	var sent structs.LoginRequest
	if err := json.Unmarshal([]byte(body), &sent); err != nil || sent != (structs.LoginRequest{User: "alice", Password: fxPassword, TTL: "12h0m0s"}) {
		t.Errorf("sent %+v (%v)", sent, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	if dst, _ := os.Stat(filepath.Dir(path)); dst.Mode().Perm() != 0o700 {
		t.Errorf("config dir mode %v, want 0700", dst.Mode().Perm())
	}
	kv, err := readCLIConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	// A fresh file also gets the address and CA the login used.
	want := map[string]string{configToken: fxSessionSecret, configAddress: os.Getenv(api.EnvAddress), configCACert: os.Getenv(api.EnvCACert)}
	if !reflect.DeepEqual(kv, want) {
		t.Errorf("config = %v, want %v", kv, want)
	}

	// Later commands use the session.
	out, _ = mustRun(t, "whoami")
	if _, _, auth, _ := f.reqAt(-1); auth != "Bearer "+fxSessionSecret {
		t.Errorf("whoami Authorization = %q", auth)
	}
	if !strings.Contains(out, "Subject      user:alice") || !strings.Contains(out, "Groups       group:ops") || !strings.Contains(out, "Token        acc-sess") {
		t.Errorf("whoami:\n%s", out)
	}
	out, _ = mustRun(t, "whoami", "-o", "json")
	var who structs.WhoAmI
	if err := json.Unmarshal([]byte(out), &who); err != nil || !reflect.DeepEqual(who, fxWhoAlice) {
		t.Errorf("whoami JSON %+v %v", who, err)
	}
}

func TestLoginKeepsOtherKeys(t *testing.T) {
	f := env(t)
	path := filepath.Join(t.TempDir(), "config")
	useConfig(t, path, map[string]string{configAddress: "https://10.9.9.9:7400", configCACert: "/etc/hive/ca.pem", configToken: "old-token"})
	// Loose permissions on the old file must not survive.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, errs := mustRunIn(t, fxPassword, "login", "--user", "alice", "--password-stdin", "--ttl", "90m")
	if _, _, auth, body := f.reqAt(-1); auth != "" || !strings.Contains(body, `"ttl":"1h30m0s"`) {
		t.Errorf("login sent Authorization %q, body %s", auth, body)
	}
	noSecrets(t, errs)
	kv, err := readCLIConfig(path)
	want := map[string]string{configAddress: "https://10.9.9.9:7400", configCACert: "/etc/hive/ca.pem", configToken: fxSessionSecret}
	if err != nil || !reflect.DeepEqual(kv, want) {
		t.Errorf("config = %v (%v), want %v", kv, err, want)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}

	// A token in the environment wins over the session: say so.
	t.Setenv(api.EnvToken, "env-token")
	_, errs = mustRunIn(t, fxPassword+"\n", "login", "--user", "alice", "--password-stdin")
	if !strings.Contains(errs, "HIVE_TOKEN is set and takes precedence") {
		t.Errorf("no warning about HIVE_TOKEN: %q", errs)
	}
	if _, _, auth, _ := f.reqAt(-1); auth != "" {
		t.Errorf("login sent the environment's token: %q", auth)
	}
}

func TestLoginPrompts(t *testing.T) {
	f := env(t)
	path := filepath.Join(t.TempDir(), "config")
	useConfig(t, path, nil)
	withTTY(t, fxPassword)
	out, errs := mustRunIn(t, "alice\n", "login")
	if !strings.HasPrefix(errs, "User: Password: \n") {
		t.Errorf("prompts: %q", errs)
	}
	noSecrets(t, out, errs)
	if _, _, _, body := f.reqAt(-1); !strings.Contains(body, `"user":"alice"`) {
		t.Errorf("body %s", body)
	}
	if kv, _ := readCLIConfig(path); kv[configToken] != fxSessionSecret {
		t.Errorf("config %v", kv)
	}
}

func TestLoginErrors(t *testing.T) {
	f := env(t)
	path := filepath.Join(t.TempDir(), "config")
	useConfig(t, path, nil)

	_, errs, code := hiveIn(t, "wrong password here\n", "login", "--user", "alice", "--password-stdin")
	if code != 1 || errs != "Error: logging in as alice: invalid user name or password (HTTP 401)\n" {
		t.Errorf("wrong password: exit %d, stderr %q", code, errs)
	}
	if strings.Contains(errs, "wrong password here") {
		t.Error("stderr shows the password")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("failed login wrote the config: %v", err)
	}
	n := f.count()
	cases := []struct {
		stdin string
		args  []string
		want  string
	}{
		{fxPassword, []string{"login", "--user", "alice"}, "standard input is not a terminal"},
		{fxPassword, []string{"login", "--password-stdin"}, "--password-stdin needs --user"},
		{"", []string{"login", "--user", "alice", "--password-stdin"}, "standard input ended before the password"},
		{"\n", []string{"login", "--user", "alice", "--password-stdin"}, "empty password"},
		{fxPassword, []string{"login", "--user", "alice", "--password-stdin", "--ttl", "200h"}, `invalid --ttl "200h": use a positive duration of at most 168h`},
		{fxPassword, []string{"login", "--user", "Alice!", "--password-stdin"}, `invalid user name "Alice!"`},
	}
	for _, tc := range cases {
		out, errs, code := hiveIn(t, tc.stdin, tc.args...)
		if code != 1 || !strings.Contains(errs, tc.want) || out != "" {
			t.Errorf("hive %s: exit %d, stdout %q, stderr %q; want %q", strings.Join(tc.args, " "), code, out, errs, tc.want)
		}
	}
	if f.count() != n {
		t.Errorf("invalid logins made %d API calls", f.count()-n)
	}
}

func TestLogout(t *testing.T) {
	f := env(t)
	path := filepath.Join(t.TempDir(), "config")
	useConfig(t, path, map[string]string{configAddress: "https://10.9.9.9:7400", configToken: "sess-alice"})

	out, _ := mustRun(t, "logout")
	if req, _, auth, _ := f.reqAt(-1); req != "POST /v1/logout" || auth != "Bearer sess-alice" {
		t.Errorf("%q with %q", req, auth)
	}
	if req, _, _, _ := f.reqAt(-2); req != "GET /v1/whoami" {
		t.Errorf("logout did not check the token's kind first: %q", req)
	}
	if !strings.Contains(out, "removed the session token from "+path) {
		t.Errorf("stdout %q", out)
	}
	kv, err := readCLIConfig(path)
	if err != nil || !reflect.DeepEqual(kv, map[string]string{configAddress: "https://10.9.9.9:7400"}) {
		t.Errorf("config after logout = %v (%v)", kv, err)
	}

	_, errs, code := hive(t, "logout")
	if code != 1 || !strings.Contains(errs, "not logged in") {
		t.Errorf("second logout: exit %d, %q", code, errs)
	}

	// A session that already ended is removed all the same.
	useConfig(t, path, map[string]string{configToken: "expired"})
	_, errs = mustRun(t, "logout")
	if !strings.Contains(errs, "already ended") {
		t.Errorf("stderr %q", errs)
	}
	if kv, _ := readCLIConfig(path); kv[configToken] != "" {
		t.Errorf("token left: %v", kv)
	}

	// A session from the environment is ended, the file's is left alone.
	useConfig(t, path, map[string]string{configToken: "sess-file"})
	t.Setenv(api.EnvToken, "sess-env")
	out, _ = mustRun(t, "logout")
	if req, _, auth, _ := f.reqAt(-1); req != "POST /v1/logout" || auth != "Bearer sess-env" || !strings.Contains(out, "left as it is") {
		t.Errorf("env logout: %q %q %q", req, auth, out)
	}
	if kv, _ := readCLIConfig(path); kv[configToken] != "sess-file" {
		t.Errorf("file token removed: %v", kv)
	}

	// Tokens that are not sessions (an API token, the admin token `hive
	// dev` saves) are not revoked by accident.
	for _, tok := range []string{"api-token", "hive_admin_x"} {
		useConfig(t, path, map[string]string{configToken: tok})
		t.Setenv(api.EnvToken, "")
		n := f.count()
		_, errs, code := hive(t, "logout")
		if code != 1 || !strings.Contains(errs, "not a login session, so logout leaves it alone") || !strings.Contains(errs, "hive token revoke") {
			t.Errorf("%s: exit %d, %q", tok, code, errs)
		}
		if req, _, _, _ := f.reqAt(-1); f.count() != n+1 || req != "GET /v1/whoami" {
			t.Errorf("%s: logout sent %q", tok, req)
		}
		if kv, _ := readCLIConfig(path); kv[configToken] != tok {
			t.Errorf("%s: removed from the config: %v", tok, kv)
		}
	}
}

func TestUsers(t *testing.T) {
	f := env(t)
	out, errs := mustRunIn(t, fxPassword+"\n", "user", "create", "carol", "--password-stdin", "--role", "developer", "-n", "web")
	noSecrets(t, out, errs)
	if out != "Created user carol\nGave role developer to user:carol in namespace web (binding user-carol-developer-web)\n" {
		t.Errorf("stdout %q", out)
	}
	// One request: the server makes the user and its binding together.
	var sent structs.UserRequest
	if req, _, _, body := f.reqAt(-1); req != "PUT /v1/user/carol" || json.Unmarshal([]byte(body), &sent) != nil ||
		sent != (structs.UserRequest{Password: fxPassword, Role: "developer", Namespace: "web"}) {
		t.Errorf("create: %q %+v", req, sent)
	}

	// Global role; at a terminal the password is asked twice.
	tty := withTTY(t, fxPassword, fxPassword)
	out, errs = mustRun(t, "user", "create", "dave", "--role", "viewer")
	noSecrets(t, out, errs)
	if len(tty.answers) != 0 || strings.Count(errs, "assword: ") != 2 {
		t.Errorf("prompts %q, %d answers left", errs, len(tty.answers))
	}
	if req, _, _, body := f.reqAt(-1); req != "PUT /v1/user/dave" || body != `{"password":"`+fxPassword+`","role":"viewer"}` || !strings.Contains(out, "user:dave globally (binding user-dave-viewer)") {
		t.Errorf("%q %s %q", req, body, out)
	}
	n := f.count()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "create", "erin", "-n", "web"}, "-n web needs --role"},
		{[]string{"user", "create", "erin", "--role", "Admin"}, `--role: invalid role name "Admin"`},
		{[]string{"user", "create", "erin", "--role", strings.Repeat("r", 60)}, "invalid binding name"},
	} {
		if _, errs, code := hive(t, tc.args...); code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("hive %s: exit %d, %q; want %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
	withTTY(t, fxPassword, fxNewPassword)
	_, errs, code := hive(t, "user", "create", "erin")
	if code != 1 || !strings.Contains(errs, "the two passwords do not match") || f.count() != n {
		t.Errorf("mismatch: exit %d, %q, %d calls", code, errs, f.count()-n)
	}
	noSecrets(t, errs)

	out, _ = mustRun(t, "user", "ls")
	checkAligned(t, out, []string{"NAME", "GROUPS", "STATUS", "CREATED"})
	if ls := lines(out); len(ls) != 3 || !reflect.DeepEqual(strings.Fields(ls[1]), []string{"alice", "ops,web", "active", "2030-01-02T03:04:05Z"}) ||
		!reflect.DeepEqual(strings.Fields(ls[2]), []string{"bob", "-", "disabled", "2030-01-02T03:04:05Z"}) {
		t.Errorf("table:\n%s", out)
	}
	out, _ = mustRun(t, "user", "ls", "-o", "json")
	var users []structs.UserInfo
	if err := json.Unmarshal([]byte(out), &users); err != nil || !reflect.DeepEqual(users, fxUsers) {
		t.Errorf("JSON %+v %v", users, err)
	}
	out, _ = mustRun(t, "user", "get", "alice", "-o", "json")
	var u structs.UserInfo
	if err := json.Unmarshal([]byte(out), &u); err != nil || !reflect.DeepEqual(u, fxUsers[0]) {
		t.Errorf("get JSON %+v %v", u, err)
	}
	mustRun(t, "user", "delete", "bob")
	if req, _, _, _ := f.reqAt(-1); req != "DELETE /v1/user/bob" {
		t.Errorf("delete: %q", req)
	}
}

func TestUserPasswd(t *testing.T) {
	f := env(t)
	// An administrator sets someone else's password: one line, no old one.
	out, errs := mustRunIn(t, fxNewPassword+"\n", "user", "passwd", "bob", "--password-stdin")
	noSecrets(t, out, errs)
	if req, _, _, body := f.reqAt(-1); req != "PUT /v1/user/bob/password" || body != `{"password":"`+fxNewPassword+`"}` {
		t.Errorf("admin passwd: %q %s", req, body)
	}
	if req, _, _, _ := f.reqAt(-2); req != "GET /v1/whoami" {
		t.Errorf("passwd did not ask whoami first: %q", req)
	}

	// Alice changes her own: the old password first, then the new one.
	t.Setenv(api.EnvToken, "sess-alice")
	out, errs = mustRunIn(t, fxPassword+"\n"+fxNewPassword+"\n", "user", "passwd", "alice", "--password-stdin")
	noSecrets(t, out, errs)
	var sent structs.PasswordRequest
	if _, _, _, body := f.reqAt(-1); json.Unmarshal([]byte(body), &sent) != nil || sent != (structs.PasswordRequest{OldPassword: fxPassword, Password: fxNewPassword}) {
		t.Errorf("self passwd sent %+v", sent)
	}
	_, errs, code := hiveIn(t, fxPassword+"\n", "user", "passwd", "alice", "--password-stdin")
	if code != 1 || !strings.Contains(errs, "standard input ended before the new password") {
		t.Errorf("one line for self: exit %d, %q", code, errs)
	}

	// At a terminal: current, new, new again.
	withTTY(t, fxPassword, fxNewPassword, fxNewPassword)
	_, errs = mustRun(t, "user", "passwd", "alice")
	if !strings.Contains(errs, "Current password: \nNew password: \nRetype new password: \n") {
		t.Errorf("prompts %q", errs)
	}
	noSecrets(t, errs)
}

func TestGroups(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "group", "create", "devs", "--member", "alice", "--member", "bob,carol")
	if req, _, _, body := f.reqAt(-1); req != "PUT /v1/group/devs" || body != `{"members":["alice","bob","carol"]}` || out != "Created group devs (3 members)\n" {
		t.Errorf("create: %q %s %q", req, body, out)
	}
	out, _ = mustRun(t, "group", "add-member", "ops", "carol", "dave")
	if req, _, _, body := f.reqAt(-1); req != "POST /v1/group/ops/members" || body != `{"add":["carol","dave"]}` {
		t.Errorf("add-member: %q %s", req, body)
	}
	if out != "Added carol, dave; group ops has 4 members: alice, bob, carol, dave\n" {
		t.Errorf("add-member out %q", out)
	}
	mustRun(t, "group", "remove-member", "ops", "bob")
	if req, _, _, body := f.reqAt(-1); req != "POST /v1/group/ops/members" || body != `{"remove":["bob"]}` {
		t.Errorf("remove-member: %q %s", req, body)
	}
	out, _ = mustRun(t, "group", "ls")
	checkAligned(t, out, []string{"NAME", "MEMBERS"})
	if ls := lines(out); len(ls) != 3 || strings.Fields(ls[1])[1] != "alice,bob" || strings.Fields(ls[2])[1] != "-" {
		t.Errorf("table:\n%s", out)
	}
	out, _ = mustRun(t, "group", "ls", "-o", "json")
	var groups []structs.Group
	if err := json.Unmarshal([]byte(out), &groups); err != nil || !reflect.DeepEqual(groups, fxGroups) {
		t.Errorf("JSON %+v %v", groups, err)
	}
	mustRun(t, "group", "delete", "ops")
	if req, _, _, _ := f.reqAt(-1); req != "DELETE /v1/group/ops" {
		t.Errorf("delete %q", req)
	}
	_, errs, _ := hive(t, "group", "add-member", "ops")
	if !strings.Contains(errs, "hive group add-member takes GROUP USER..., got 1 argument(s)") {
		t.Errorf("%q", errs)
	}
}

func TestRoles(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "role", "create", "deployer", "--description", "deploys web",
		"--rule", "job,alloc:read,list@namespace:web", "--rule", " alloc/logs : read ", "--rule", "job:read@job:web/api")
	if out != "Saved role deployer (3 rules)\n" {
		t.Errorf("stdout %q", out)
	}
	req, _, _, body := f.reqAt(-1)
	var role structs.ACLRole
	if err := json.Unmarshal([]byte(body), &role); err != nil || req != "PUT /v1/role/deployer" {
		t.Fatalf("%q %s %v", req, body, err)
	}
	want := structs.ACLRole{Name: "deployer", Description: "deploys web", Rules: []structs.ACLRule{
		{Resources: []string{"job", "alloc"}, Actions: []string{"read", "list"}, Scope: "namespace:web"},
		{Resources: []string{"alloc/logs"}, Actions: []string{"read"}, Scope: "global"},
		{Resources: []string{"job"}, Actions: []string{"read"}, Scope: "job:web/api"},
	}}
	if !reflect.DeepEqual(role, want) {
		t.Errorf("sent %+v\nwant %+v", role, want)
	}

	n := f.count()
	cases := []struct {
		rule, want string
	}{
		{"job", `invalid --rule "job": no ':' between the resources and the actions; use RESOURCES:ACTIONS[@SCOPE]`},
		{"job:read@", "no scope after '@'"},
		{"job:read@global@x", "more than one '@'"},
		{"job:read:namespace:web", "more than one ':' before the scope (a scope goes after '@')"},
		{"job,:read", `resources: an empty name in "job,"`},
		{":read", "resources: none given"},
		{"job:", "actions: none given"},
		{"jobs:read", `invalid --rule "jobs:read": resources: unknown resource "jobs"`},
		{"job:drain", `actions: action "drain" exists on none of job`},
		{"job:read@nowhere", `invalid scope "nowhere"`},
		{"node:read@job:web/api", `resource "node" is not reachable in scope "job:web/api"`},
	}
	for _, tc := range cases {
		_, errs, code := hive(t, "role", "create", "x", "--rule", tc.rule)
		if code != 1 || !strings.HasPrefix(errs, "Error: ") || !strings.Contains(errs, tc.want) {
			t.Errorf("--rule %q: exit %d, %q; want %q", tc.rule, code, errs, tc.want)
		}
	}
	for _, args := range [][]string{
		{"role", "create", "x"},
		{"role", "create", "admin", "--rule", "job:read"},
		{"role", "delete", "viewer"},
	} {
		if _, errs, code := hive(t, args...); code != 1 || !(strings.Contains(errs, "missing --rule") || strings.Contains(errs, "is built in")) {
			t.Errorf("hive %s: exit %d, %q", strings.Join(args, " "), code, errs)
		}
	}
	if f.count() != n {
		t.Errorf("invalid roles made %d API calls", f.count()-n)
	}

	out, _ = mustRun(t, "role", "ls")
	checkAligned(t, out, []string{"NAME", "BUILT-IN", "RULES", "DESCRIPTION"})
	if ls := lines(out); len(ls) != 5 || !strings.HasPrefix(ls[1], "admin") || !reflect.DeepEqual(strings.Fields(ls[4])[:4], []string{"deployer", "false", "2", "deploys"}) {
		t.Errorf("table:\n%s", out)
	}
	out, _ = mustRun(t, "role", "ls", "-o", "json")
	var roles []structs.ACLRole
	if err := json.Unmarshal([]byte(out), &roles); err != nil || !reflect.DeepEqual(roles, fxRoles) {
		t.Errorf("JSON %+v %v", roles, err)
	}
	out, _ = mustRun(t, "role", "get", "deployer")
	for _, w := range []string{"Description   deploys web", "RESOURCES    ACTIONS       SCOPE", "job,alloc    read,create   namespace:web", "alloc/logs   read          global"} {
		if !strings.Contains(out, w) {
			t.Errorf("get: missing %q in\n%s", w, out)
		}
	}
	out, _ = mustRun(t, "role", "get", "deployer", "-o", "json")
	var r structs.ACLRole
	if err := json.Unmarshal([]byte(out), &r); err != nil || !reflect.DeepEqual(r, fxRoles[len(fxRoles)-1]) {
		t.Errorf("get JSON %+v %v", r, err)
	}
	mustRun(t, "role", "delete", "deployer")
	if req, _, _, _ := f.reqAt(-1); req != "DELETE /v1/role/deployer" {
		t.Errorf("delete %q", req)
	}
}

func TestBindings(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "binding", "create", "web-devs", "--role", "developer", "--subject", "user:alice", "--subject", "sa:web/ci", "-n", "web")
	req, _, _, body := f.reqAt(-1)
	var b structs.ACLBinding
	if err := json.Unmarshal([]byte(body), &b); err != nil || req != "PUT /v1/binding/web-devs" || !reflect.DeepEqual(b, fxBindings[1]) {
		t.Errorf("%q %+v %v", req, b, err)
	}
	if out != "Saved binding web-devs: role developer for user:alice, sa:web/ci in namespace web\n" {
		t.Errorf("stdout %q", out)
	}
	n := f.count()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"binding", "create", "b", "--subject", "user:alice"}, "missing --role"},
		{[]string{"binding", "create", "b", "--role", "viewer"}, "missing --subject"},
		{[]string{"binding", "create", "b", "--role", "viewer", "--subject", "alice"}, `invalid subject "alice": use "user:<name>"`},
		{[]string{"binding", "create", "b", "--role", "viewer", "--subject", "user:a", "-n", "Bad"}, `invalid namespace name "Bad"`},
	} {
		if _, errs, code := hive(t, tc.args...); code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("hive %s: exit %d, %q; want %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
	if f.count() != n {
		t.Errorf("invalid bindings made %d API calls", f.count()-n)
	}
	out, _ = mustRun(t, "binding", "ls")
	checkAligned(t, out, []string{"NAME", "ROLE", "NAMESPACE", "SUBJECTS"})
	if ls := lines(out); len(ls) != 3 || !reflect.DeepEqual(strings.Fields(ls[1]), []string{"ops-admin", "admin", "(global)", "group:ops"}) ||
		!reflect.DeepEqual(strings.Fields(ls[2]), []string{"web-devs", "developer", "web", "user:alice,sa:web/ci"}) {
		t.Errorf("table:\n%s", out)
	}
	out, _ = mustRun(t, "binding", "ls", "-o", "json")
	var list []structs.ACLBinding
	if err := json.Unmarshal([]byte(out), &list); err != nil || !reflect.DeepEqual(list, fxBindings) {
		t.Errorf("JSON %+v %v", list, err)
	}
	out, _ = mustRun(t, "binding", "get", "web-devs", "-o", "json")
	if err := json.Unmarshal([]byte(out), &b); err != nil || !reflect.DeepEqual(b, fxBindings[1]) {
		t.Errorf("get JSON %+v %v", b, err)
	}
	mustRun(t, "binding", "delete", "web-devs")
	if req, _, _, _ := f.reqAt(-1); req != "DELETE /v1/binding/web-devs" {
		t.Errorf("delete %q", req)
	}
}

func TestApply(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "apply", "-f", filepath.Join("testdata", "rbac.hcl"))
	if out != "role/deployer applied\nrole/auditor applied\nbinding/alice-deploys applied\nbinding/sec-audits applied\n" {
		t.Errorf("stdout %q", out)
	}
	var reqs []string
	for i := 0; i < 4; i++ {
		req, _, _, _ := f.reqAt(i)
		reqs = append(reqs, req)
	}
	if want := []string{"PUT /v1/role/deployer", "PUT /v1/role/auditor", "PUT /v1/binding/alice-deploys", "PUT /v1/binding/sec-audits"}; !reflect.DeepEqual(reqs, want) {
		t.Errorf("requests %q, want %q", reqs, want)
	}
	var role structs.ACLRole
	if _, _, _, body := f.reqAt(0); json.Unmarshal([]byte(body), &role) != nil || len(role.Rules) != 2 || role.Rules[0].Scope != "namespace:web" || role.Description != "deploys web" {
		t.Errorf("role sent %+v", role)
	}
	var b structs.ACLBinding
	if _, _, _, body := f.reqAt(2); json.Unmarshal([]byte(body), &b) != nil ||
		!reflect.DeepEqual(b, structs.ACLBinding{Name: "alice-deploys", Role: "deployer", Subjects: []string{"user:alice", "group:ops"}, Namespace: "web"}) {
		t.Errorf("binding sent %+v", b)
	}

	// From standard input; the first refusal stops it and is named.
	src := `role "ok" {
  rule {
    resources = ["job"]
    actions   = ["read"]
  }
}
binding "refused" {
  role     = "admin"
  subjects = ["user:mallory"]
}
binding "never-sent" {
  role     = "ok"
  subjects = ["user:bob"]
}
`
	n := f.count()
	out, errs, code := hiveIn(t, src, "apply", "-f", "-")
	if code != 1 || out != "role/ok applied\n" ||
		!strings.Contains(errs, "Error: applying binding/refused: you cannot give out role admin (HTTP 403) (1 of 3 objects were applied before it") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if f.count() != n+2 {
		t.Errorf("%d requests after the refusal's", f.count()-n-2)
	}

	// A bad file sends nothing and points at the problem.
	_, errs, code = hiveIn(t, "role \"x\" {\n  rule {\n    resources = [\"jobz\"]\n    actions = [\"read\"]\n  }\n}\n", "apply", "-f", "-")
	if code != 1 || !strings.Contains(errs, "nothing was applied") || !strings.Contains(errs, `<stdin>:3:`) || !strings.Contains(errs, `unknown resource "jobz"`) {
		t.Errorf("bad file: exit %d, %q", code, errs)
	}
	for _, args := range [][]string{{"apply"}, {"apply", "-f", filepath.Join(t.TempDir(), "none.hcl")}} {
		if _, errs, code := hive(t, args...); code != 1 || !strings.Contains(errs, "Error: ") {
			t.Errorf("hive %s: exit %d %q", strings.Join(args, " "), code, errs)
		}
	}
	if f.count() != n+2 {
		t.Errorf("bad files made %d API calls", f.count()-n-2)
	}
}

func TestServiceAccounts(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "sa", "create", "web/ci", "--description", "deploys from CI")
	if req, _, _, body := f.reqAt(-1); req != "PUT /v1/serviceaccount/web/ci" || body != `{"description":"deploys from CI"}` || out != "Created service account web/ci (subject sa:web/ci)\n" {
		t.Errorf("create: %q %s %q", req, body, out)
	}
	out, _ = mustRun(t, "sa", "ls", "-n", "web")
	if req, q, _, _ := f.reqAt(-1); req != "GET /v1/serviceaccounts" || q != "namespace=web" {
		t.Errorf("ls: %q %q", req, q)
	}
	checkAligned(t, out, []string{"NAMESPACE", "CREATED", "DESCRIPTION"}) // "NAME" is inside "NAMESPACE"
	out, _ = mustRun(t, "serviceaccount", "ls", "-o", "json")
	var sas []structs.ServiceAccount
	if err := json.Unmarshal([]byte(out), &sas); err != nil || !reflect.DeepEqual(sas, fxSAs) {
		t.Errorf("JSON %+v %v", sas, err)
	}
	if _, q, _, _ := f.reqAt(-1); q != "" {
		t.Errorf("ls without -n sent %q", q)
	}

	out, errs := mustRun(t, "sa", "token", "web/ci", "--name", "deploy", "--rotate", "--grace", "1h")
	if out != fxSASecret+"\n" {
		t.Errorf("stdout %q, want the secret alone", out)
	}
	if !strings.Contains(errs, "acc-sa") || !strings.Contains(errs, "shown only this once") || !strings.Contains(errs, "Earlier tokens of sa:web/ci stop working in 1h0m0s") {
		t.Errorf("stderr %q", errs)
	}
	if req, _, _, body := f.reqAt(-1); req != "POST /v1/serviceaccount/web/ci/token" || body != `{"name":"deploy","ttl":"24h0m0s","rotate_grace":"1h0m0s"}` {
		t.Errorf("token: %q %s", req, body)
	}
	mustRun(t, "sa", "token", "web/ci", "--ttl", "0")
	if _, _, _, body := f.reqAt(-1); body != `{}` {
		t.Errorf("no-expiry token sent %s", body)
	}
	out, _ = mustRun(t, "sa", "token", "web/ci", "-o", "json")
	var ts structs.TokenSecret
	if err := json.Unmarshal([]byte(out), &ts); err != nil || ts.Secret != fxSASecret {
		t.Errorf("JSON %+v %v", ts, err)
	}
	mustRun(t, "sa", "delete", "web/ci")
	if req, _, _, _ := f.reqAt(-1); req != "DELETE /v1/serviceaccount/web/ci" {
		t.Errorf("delete %q", req)
	}
	n := f.count()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sa", "create", "ci"}, `invalid service account "ci": use NAMESPACE/NAME`},
		{[]string{"sa", "create", "web/CI"}, `invalid service account name "CI"`},
		{[]string{"sa", "token", "web/ci", "--grace", "1h"}, "--grace needs --rotate"},
		{[]string{"sa", "token", "web/ci", "--ttl", "soon"}, `invalid --ttl "soon"`},
	} {
		if _, errs, code := hive(t, tc.args...); code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("hive %s: exit %d, %q; want %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
	if f.count() != n {
		t.Errorf("invalid commands made %d API calls", f.count()-n)
	}
}

func TestAPITokens(t *testing.T) {
	f := env(t)
	out, errs := mustRun(t, "token", "create", "--name", "ci", "--role", "deployer", "-n", "web", "--ttl", "48h")
	if out != fxAPISecret+"\n" {
		t.Errorf("stdout %q, want the secret alone", out)
	}
	if !strings.Contains(errs, "Created API token acc-api holding role deployer in web (expires: never)") || !strings.Contains(errs, "Anyone who has it can do what role deployer in web allows") {
		t.Errorf("stderr %q", errs)
	}
	req, _, _, body := f.reqAt(-1)
	var sent structs.TokenCreateRequest
	if err := json.Unmarshal([]byte(body), &sent); err != nil || req != "POST /v1/tokens" ||
		sent != (structs.TokenCreateRequest{Name: "ci", TTL: "48h0m0s", Role: "deployer", Namespace: "web"}) {
		t.Errorf("%q %+v %v", req, sent, err)
	}
	mustRun(t, "token", "create")
	if _, _, _, body := f.reqAt(-1); body != `{"ttl":"24h0m0s"}` {
		t.Errorf("default token sent %s", body)
	}
	out, _ = mustRun(t, "token", "create", "-o", "json")
	var ts structs.TokenSecret
	if err := json.Unmarshal([]byte(out), &ts); err != nil || ts.Secret != fxAPISecret || ts.Token.AccessorID != "acc-api" {
		t.Errorf("JSON %+v %v", ts, err)
	}

	out, _ = mustRun(t, "token", "ls", "--subject", "user:alice")
	if req, q, _, _ := f.reqAt(-1); req != "GET /v1/tokens" || q != "subject=user%3Aalice" {
		t.Errorf("ls: %q %q", req, q)
	}
	checkAligned(t, out, []string{"ACCESSOR", "NAME", "KIND", "SUBJECT", "ROLE", "NAMESPACE", "CREATED", "EXPIRES"})
	if ls := lines(out); len(ls) != 3 || !reflect.DeepEqual(strings.Fields(ls[2]), []string{"acc-api", "ci", "api", "-", "deployer", "web", "2030-01-02T03:04:05Z", "never"}) {
		t.Errorf("table:\n%s", out)
	}
	out, _ = mustRun(t, "token", "ls", "-o", "json")
	var list []structs.TokenInfo
	if err := json.Unmarshal([]byte(out), &list); err != nil || !reflect.DeepEqual(list, fxAPITokens) {
		t.Errorf("JSON %+v %v", list, err)
	}
	mustRun(t, "token", "revoke", "acc-api")
	if req, _, _, _ := f.reqAt(-1); req != "DELETE /v1/token/acc-api" {
		t.Errorf("revoke %q", req)
	}

	// The old join-token habit gets pointed at the new command.
	_, errs, code := hive(t, "token", "create", "--role", "worker")
	if code != 1 || !strings.Contains(errs, "hive join-token create --role worker") {
		t.Errorf("exit %d, %q", code, errs)
	}
	_, errs, code = hive(t, "token", "create", "-n", "web")
	if code != 1 || !strings.Contains(errs, "-n web needs --role") {
		t.Errorf("exit %d, %q", code, errs)
	}
}

func TestCanI(t *testing.T) {
	f := env(t)
	out, errs, code := hive(t, "auth", "can-i", "read", "job", "-n", "web", "--name", "api", "--as", "user:alice")
	if code != 0 || out != "yes\n" || !strings.Contains(errs, "Allowed by role viewer through binding all-view (rule job:read,list @ global)") {
		t.Errorf("yes: exit %d, %q, %q", code, out, errs)
	}
	if req, q, _, _ := f.reqAt(-1); req != "GET /v1/auth/can-i" || q != "action=read&as=user%3Aalice&name=api&namespace=web&resource=job" {
		t.Errorf("%q %q", req, q)
	}
	out, errs, code = hive(t, "auth", "can-i", "delete", "job", "-n", "web")
	if code != 1 || out != "no\n" || strings.Contains(errs, "Error") || !strings.Contains(errs, "No role bound to user:alice allows delete on job in namespace web") {
		t.Errorf("no: exit %d, %q, %q", code, out, errs)
	}
	out, _, code = hive(t, "auth", "can-i", "delete", "job", "-o", "json")
	var resp structs.CanIResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil || code != 1 || resp.Allowed {
		t.Errorf("JSON no: exit %d %+v %v", code, resp, err)
	}
	out, _ = mustRun(t, "auth", "can-i", "read", "job", "-o", "json")
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp != fxCanI {
		t.Errorf("JSON yes: %+v %v", resp, err)
	}

	out, _ = mustRun(t, "auth", "can-i", "--list", "--as", "user:alice")
	if req, q, _, _ := f.reqAt(-1); req != "GET /v1/auth/permissions" || q != "as=user%3Aalice" {
		t.Errorf("%q %q", req, q)
	}
	checkAligned(t, out, []string{"RESOURCE", "ACTIONS", "SCOPE", "ROLE", "BINDING"})
	if ls := lines(out); len(ls) != 3 || !reflect.DeepEqual(strings.Fields(ls[1]), []string{"job", "create,read", "namespace:web", "deployer", "web-devs"}) {
		t.Errorf("table:\n%s", out)
	}
	out, _ = mustRun(t, "auth", "can-i", "--list", "-o", "json")
	var perms structs.PermissionsResponse
	if err := json.Unmarshal([]byte(out), &perms); err != nil || !reflect.DeepEqual(perms, fxPerms) {
		t.Errorf("JSON %+v %v", perms, err)
	}

	n := f.count()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"auth", "can-i", "drain", "job"}, `"drain" is not an action on job: use one of read, list`},
		{[]string{"auth", "can-i", "job", "read"}, "the action comes first, as in `hive auth can-i read job`"},
		{[]string{"auth", "can-i", "read", "jobz"}, `unknown resource "jobz"`},
		{[]string{"auth", "can-i", "read"}, "takes ACTION RESOURCE, got 1"},
		{[]string{"auth", "can-i", "--list", "read", "job"}, "takes no arguments"},
		{[]string{"auth", "can-i", "read", "job", "--as", "alice"}, `--as: invalid subject "alice"`},
	} {
		if _, errs, code := hive(t, tc.args...); code != 1 || !strings.HasPrefix(errs, "Error: ") || !strings.Contains(errs, tc.want) {
			t.Errorf("hive %s: exit %d, %q; want %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
	if f.count() != n {
		t.Errorf("invalid questions made %d API calls", f.count()-n)
	}
}

// writeAuditLog writes entries to a new audit log in dir/audit and returns
// that directory.
func writeAuditLog(t *testing.T, dir string, entries ...audit.Entry) string {
	t.Helper()
	adir := filepath.Join(dir, "audit")
	w, err := audit.Open(adir, audit.WriterOptions{SyncEveryWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range entries {
		if err := w.Write(&entries[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return adir
}

func TestAuditVerifyAndTail(t *testing.T) {
	dataDir := t.TempDir()
	adir := writeAuditLog(t, dataDir,
		audit.Entry{Time: t0, Subject: "user:alice", Method: "POST", Path: "/v1/jobs", Action: "create", Resource: "job", Namespace: "web", Name: "api", Decision: audit.DecisionAllow, Status: 200, Event: audit.EventRequest, Reason: "role developer"},
		audit.Entry{Time: t0, Subject: "user:bob", Method: "GET", Path: "/v1/secret/web/db", Action: "read", Resource: "secret/value", Namespace: "web", Name: "db", Decision: audit.DecisionDeny, Status: 403, Event: audit.EventRequest},
		audit.Entry{Time: t0, Subject: "user:alice", Method: "GET", Path: "/v1/nodes", Action: "list", Resource: "node", Decision: audit.DecisionAllow, Status: 200, Event: audit.EventRequest},
	)
	out, errs := mustRun(t, "audit", "verify", "--data-dir", dataDir)
	if out != "OK: 4 entries in 1 files\n" || !strings.Contains(errs, "Chain head: ") {
		t.Errorf("verify: %q %q", out, errs)
	}
	out, _ = mustRun(t, "audit", "verify", filepath.Join(adir, "audit.log"))
	if out != "OK: 4 entries in 1 files\n" {
		t.Errorf("verify FILE: %q", out)
	}

	out, _ = mustRun(t, "audit", "tail", "--dir", adir, "--user", "alice")
	if ls := lines(out); len(ls) != 2 ||
		ls[0] != "2030-01-02T03:04:05Z user:alice allow POST /v1/jobs 200 create job web/api (role developer)" ||
		ls[1] != "2030-01-02T03:04:05Z user:alice allow GET /v1/nodes 200 list node" {
		t.Errorf("tail --user:\n%s", out)
	}
	out, _ = mustRun(t, "audit", "tail", "--data-dir", dataDir, "--decision", "deny", "--resource", "secret*", "-o", "json")
	var e audit.Entry
	if ls := lines(out); len(ls) != 1 || json.Unmarshal([]byte(ls[0]), &e) != nil || e.Subject != "user:bob" || e.Hash == "" {
		t.Errorf("tail JSON:\n%s", out)
	}
	if _, errs, code := hive(t, "audit", "tail", "--dir", adir, "--decision", "maybe"); code != 1 || !strings.Contains(errs, `invalid --decision "maybe": use allow, deny or error`) {
		t.Errorf("bad decision: %d %q", code, errs)
	}

	// Edit one entry: verify names the line and exits 1 without "Error:".
	path := filepath.Join(adir, "audit.log")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Replace(b, []byte(`"user:bob"`), []byte(`"user:eve"`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code := hive(t, "audit", "verify", "--dir", adir)
	if code != 1 || !strings.HasPrefix(out, "BROKEN: "+path+":3: ") || strings.Contains(errs, "Error") {
		t.Errorf("broken: exit %d, %q, %q", code, out, errs)
	}

	_, errs, code = hive(t, "audit", "verify", "--data-dir", filepath.Join(dataDir, "nope"))
	if code != 1 || !strings.Contains(errs, "no audit log directory "+filepath.Join(dataDir, "nope", "audit")+": pass --dir DIR") {
		t.Errorf("missing dir: %d %q", code, errs)
	}
	_, errs, code = hive(t, "audit", "verify", "--dir", adir, path)
	if code != 1 || !strings.Contains(errs, "not both") {
		t.Errorf("files and --dir: %d %q", code, errs)
	}
}

func TestErrorHints(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&api.Error{StatusCode: 401}, "hive login"},
		{&api.Error{StatusCode: 403}, "hive auth can-i --list"},
		{&api.Error{StatusCode: 401, Code: "invalid_token"}, "hive join-token create"},
		{errors.New("plain"), ""},
	} {
		if h := errorHint(tc.err); !strings.Contains(h, tc.want) || (tc.want == "" && h != "") {
			t.Errorf("hint for %v = %q, want %q", tc.err, h, tc.want)
		}
	}
}
