package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/structs"
)

// TestRBAC is the acceptance test for users, roles, tokens, login lockout
// and the audit log, on three managers (host0-2) and one bare host (host3)
// that serves as a second client machine:
//
//  1. the bootstrap token creates the admin user root (and is used up);
//     root creates dev (developer) and vw (viewer); each logs in through
//     the CLI into a CLI config file of its own;
//  2. the built-in roles allow exactly what they promise: viewers read but
//     cannot run jobs or read secret values, developers run jobs but cannot
//     read secret values or change access control, and cannot give
//     themselves admin through a binding or a role-bound token; admin can;
//  3. a revoked API token, and one whose TTL ran out, are refused by every
//     manager within a second (times printed);
//  4. wrong passwords are refused (401), then throttled (429), never
//     accepted; the leader's audit log and metrics record the failures, and
//     another user on another machine can still log in;
//  5. every manager's audit log verifies, a flipped byte is found at its
//     line, and no password or token secret the test used is in any audit
//     file.
//
// The steps build on each other, so they are not subtests.
func TestRBAC(t *testing.T) {
	began := time.Now()
	c := NewCluster(t, 4)
	// A lockout reachable in seconds: 6 failures lock, delays from 200ms.
	c.DaemonArgs = func(_ *Host, role structs.Role) []string {
		if role == structs.RoleManager {
			return []string{"--login-lock-after", "6", "--login-delay", "200ms", "--login-lock-for", "10m"}
		}
		return nil
	}
	c.Bootstrap(3, 0)
	managers := c.Managers()
	other := c.Host(3) // runs no daemon: a client with an address of its own
	h0 := managers[0]
	dir := t.TempDir()
	hc := rbacHTTPClient(t, c)

	// Everything here must stay out of the audit logs (step 5).
	var leaks leakList
	leaks.add("bootstrap admin token", c.AdminToken)
	leaks.add("manager join token", c.ManagerToken)
	leaks.add("worker join token", c.WorkerToken)

	root := newRBACUser(t, c, dir, "root")
	dev := newRBACUser(t, c, dir, "dev")
	vw := newRBACUser(t, c, dir, "vw")
	for _, u := range []*rbacUser{root, dev, vw} {
		leaks.add("password of "+u.name, u.password)
	}

	// --- 1. users and logins
	if _, _, err := c.CLIEnv(h0, map[string]string{"HIVE_TOKEN": c.AdminToken}, root.password+"\n",
		"user", "create", "root", "--password-stdin", "--role", "admin"); err != nil {
		t.Fatalf("creating the first admin with the bootstrap token: %v", err)
	}
	root.login(h0)
	root.waitSession(hc, managers)
	root.checkWhoAmI(h0)

	// The bootstrap token created one user and is spent, on every manager.
	for _, m := range managers {
		c.WaitFor(10*time.Second, m.Name+" to refuse the used bootstrap token", func() error {
			code, err := rbacWhoAmIStatus(hc, m, c.AdminToken)
			if err != nil {
				return err
			}
			if code != http.StatusUnauthorized {
				return fmt.Errorf("GET /v1/whoami with the used bootstrap token: %d, want 401", code)
			}
			return nil
		})
	}
	mallory := "mallory-pw-" + rand.Text()
	leaks.add("password of mallory", mallory)
	_, stderr, err := c.CLIEnv(h0, map[string]string{"HIVE_TOKEN": c.AdminToken}, mallory+"\n",
		"user", "create", "mallory", "--password-stdin", "--role", "admin")
	if err == nil {
		t.Fatalf("the used bootstrap token created a second user")
	}
	if code := httpStatusIn(stderr); code != http.StatusUnauthorized {
		t.Errorf("user create with the used bootstrap token: want HTTP 401, got %v", err)
	}

	root.mustCLI(h0, dev.password+"\n", "user", "create", "dev", "--password-stdin", "--role", "developer")
	root.mustCLI(h0, vw.password+"\n", "user", "create", "vw", "--password-stdin", "--role", "viewer")
	// Each logs in through another manager: a login is forwarded to the
	// leader wherever it arrives.
	dev.login(managers[1])
	vw.login(managers[2])
	for _, u := range []*rbacUser{root, dev, vw} {
		leaks.add("session token of "+u.name, u.sessionToken())
	}
	dev.waitSession(hc, managers)
	vw.waitSession(hc, managers)
	dev.checkWhoAmI(managers[2])
	vw.checkWhoAmI(managers[1])
	var users []structs.UserInfo
	root.mustJSON(h0, &users, "user", "ls")
	var userNames []string
	for _, u := range users {
		userNames = append(userNames, u.Name)
	}
	slices.Sort(userNames)
	if !slices.Equal(userNames, []string{"dev", "root", "vw"}) {
		t.Errorf("user ls: %v, want [dev root vw]", userNames)
	}

	// --- 2. what each built-in role may do
	checkBuiltinRoles(t, managers, root, dev, vw)

	jobs := filepath.Join(dir, "jobs")
	devJob := writeRBACJob(t, jobs, "rbac-dev")
	vwJob := writeRBACJob(t, jobs, "rbac-viewer")
	adminJob := writeRBACJob(t, jobs, "rbac-admin")

	// Beyond what can-i says: the viewer cannot run a job but lists them.
	_, stderr, err = vw.cli(managers[1], "", "job", "run", vwJob, "--detach")
	requireForbidden(t, "viewer: job run", stderr, err)
	if !strings.Contains(strings.ToLower(stderr), "forbidden") {
		t.Errorf("viewer: job run was refused, but the CLI error does not say forbidden:\n%s", stderr)
	}
	// The developer runs a job, but cannot change access control.
	dev.mustCLI(managers[2], "", "job", "run", devJob, "--detach")
	c.WaitFor(30*time.Second, "the viewer to list the developer's job", func() error {
		var list []structs.JobListStub
		if err := vw.json(managers[2], &list, "job", "status", "-n", "default"); err != nil {
			return err
		}
		var ids []string
		for _, j := range list {
			ids = append(ids, j.ID)
		}
		if !slices.Contains(ids, "rbac-dev") {
			return fmt.Errorf("viewer's job list %v lacks rbac-dev", ids)
		}
		if slices.Contains(ids, "rbac-viewer") {
			return Permanent(fmt.Errorf("job list %v holds rbac-viewer, which the viewer was refused", ids))
		}
		return nil
	})
	_, stderr, err = dev.cli(h0, "", "role", "create", "dev-role", "--rule", "job:read@global")
	requireForbidden(t, "developer: role create", stderr, err)
	_, stderr, err = dev.cli(h0, "", "binding", "create", "dev-binding", "--role", "viewer", "--subject", "user:vw")
	requireForbidden(t, "developer: binding create", stderr, err)
	_, stderr, err = dev.cli(managers[1], "", "binding", "create", "x", "--role", "admin", "--subject", "user:dev")
	requireForbidden(t, "developer: binding create x --role admin --subject user:dev", stderr, err)
	out, stderr, err := dev.cli(managers[2], "", "token", "create", "--role", "admin")
	if strings.Contains(out, "hive_") {
		leaks.add("admin token minted by dev", strings.TrimSpace(out))
	}
	requireForbidden(t, "developer: token create --role admin", stderr, err)

	// admin: all of it.
	root.mustCLI(managers[1], "", "job", "run", adminJob, "--detach")
	root.mustCLI(managers[2], "", "role", "create", "rbac-job-reader", "--rule", "job:read@global")
	root.mustCLI(h0, "", "binding", "create", "rbac-job-reader-vw", "--role", "rbac-job-reader", "--subject", "user:vw")
	var adminTok structs.TokenSecret
	root.mustJSON(managers[1], &adminTok, "token", "create", "--name", "rbac-admin", "--role", "admin")
	leaks.add("admin-role API token", adminTok.Secret)
	if adminTok.Token.Role != "admin" {
		t.Errorf("token create --role admin as admin: token role %q", adminTok.Token.Role)
	}

	// Nothing the developer was refused happened anyway.
	var bindings []structs.ACLBinding
	root.mustJSON(h0, &bindings, "binding", "ls")
	for _, b := range bindings {
		if b.Name == "x" || b.Name == "dev-binding" || slices.Contains(b.Subjects, "user:dev") && b.Role != "developer" {
			t.Errorf("binding %q (role %s for %v) exists after the developer was refused", b.Name, b.Role, b.Subjects)
		}
	}
	var roles []structs.ACLRole
	root.mustJSON(h0, &roles, "role", "ls")
	for _, r := range roles {
		if r.Name == "dev-role" {
			t.Errorf("role dev-role exists after the developer was refused")
		}
	}
	var toks []structs.TokenInfo
	root.mustJSON(h0, &toks, "token", "ls")
	for _, tk := range toks {
		if tk.CreatedBy == "user:dev" && tk.Role != "" {
			t.Errorf("token %s with role %q made by user:dev exists after the developer was refused", tk.AccessorID, tk.Role)
		}
	}
	if dev.canI(t, h0, "create", "binding") || dev.canI(t, h0, "read", "secret/value", "-n", "default") {
		t.Errorf("the developer gained binding:create or secret/value:read")
	}

	// --- 3. revocation and expiry on every manager within a second
	leader := root.leader(h0)
	var follower *Host
	for _, m := range managers {
		if m != leader {
			follower = m
			break
		}
	}
	t.Logf("leader %s; revoking through %s", leader.Name, follower.Name)

	var revTok structs.TokenSecret
	root.mustJSON(h0, &revTok, "token", "create", "--name", "rbac-revoke")
	leaks.add("API token to revoke", revTok.Secret)
	c.WaitFor(10*time.Second, "token ls to list the new token", func() error {
		if err := root.json(managers[2], &toks, "token", "ls"); err != nil {
			return err
		}
		if !slices.ContainsFunc(toks, func(tk structs.TokenInfo) bool { return tk.AccessorID == revTok.Token.AccessorID }) {
			return fmt.Errorf("token ls on %s does not list %s", managers[2].Name, revTok.Token.AccessorID)
		}
		return nil
	})
	waitAccepted(t, c, hc, managers, revTok.Secret, 10*time.Second)
	root.mustCLI(follower, "", "token", "revoke", revTok.Token.AccessorID)
	revoked := time.Now()
	gone := refusals(hc, managers, revTok.Secret, revoked, 5*time.Second)
	for _, m := range managers {
		d := gone[m]
		reportMetric(t, "revoke (through "+follower.Name+") → "+m.Name+" refuses the token", d.delay)
		switch {
		case d.delay < 0:
			t.Errorf("%s still accepted the revoked token %v after the revoke returned (last: %s)", m.Name, 5*time.Second, d.last)
		case d.delay > time.Second:
			t.Errorf("%s refused the revoked token only %v after the revoke returned; want within 1s", m.Name, d.delay.Round(time.Millisecond))
		}
	}

	var ttlTok structs.TokenSecret
	root.mustJSON(managers[1], &ttlTok, "token", "create", "--name", "rbac-ttl", "--ttl", "3s")
	leaks.add("API token with a 3s TTL", ttlTok.Secret)
	expires := ttlTok.Token.ExpiresAt
	if expires.IsZero() || expires.Sub(ttlTok.Token.CreatedAt) != 3*time.Second {
		t.Fatalf("token create --ttl 3s: created %v, expires %v", ttlTok.Token.CreatedAt, expires)
	}
	waitAccepted(t, c, hc, managers, ttlTok.Secret, time.Until(expires))
	expired := refusals(hc, managers, ttlTok.Secret, expires, 5*time.Second)
	for _, m := range managers {
		d := expired[m]
		if d.delay < 0 {
			t.Errorf("%s still accepted the expired token 5s after it expired (last: %s)", m.Name, d.last)
			continue
		}
		late := d.at.Sub(expires)
		reportMetric(t, "expiry → "+m.Name+" refuses the token", late)
		switch {
		case late < -10*time.Millisecond:
			t.Errorf("%s refused the token %v before it expired", m.Name, -late)
		case late > time.Second:
			t.Errorf("%s refused the expired token only %v after its expiry; want within 1s", m.Name, late.Round(time.Millisecond))
		}
	}

	// --- 4. lockout
	leader = root.leader(h0)
	for _, m := range managers {
		if m != leader {
			follower = m
			break
		}
	}
	t.Logf("leader %s; wrong passwords for dev through %s", leader.Name, follower.Name)
	scratch := filepath.Join(dir, "wrong.config")
	attempt := 0
	try := func() (int, string) {
		t.Helper()
		attempt++
		pw := fmt.Sprintf("wrong-%d-%s", attempt, rand.Text())
		leaks.add(fmt.Sprintf("wrong password %d", attempt), pw)
		_, stderr, err := c.CLIEnv(follower, map[string]string{"HIVE_CONFIG": scratch}, pw+"\n", "login", "--user", "dev", "--password-stdin")
		if err == nil {
			t.Fatalf("login as dev with a wrong password (attempt %d) was accepted", attempt)
		}
		code := httpStatusIn(stderr)
		t.Logf("wrong password %d: HTTP %d: %s", attempt, code, strings.TrimSpace(stderr))
		return code, stderr
	}
	var codes []int
	failures := 0 // attempts answered 401: each counted by the server
	for {
		var code int
		code, stderr = try()
		codes = append(codes, code)
		if code == http.StatusUnauthorized {
			failures++
			if attempt < 12 {
				continue
			}
			t.Fatalf("12 wrong passwords in a row, all 401: never throttled or locked (%v)", codes)
		}
		if code != http.StatusTooManyRequests && code != http.StatusForbidden {
			t.Fatalf("wrong password %d: HTTP %d, want 401, then 429 or 403:\n%s", attempt, code, stderr)
		}
		break
	}
	if failures < 3 {
		t.Errorf("throttled after %d failed logins (%v); the first 3 are free", failures, codes)
	}
	// Waiting out the delay allows one more try, which fails as any wrong
	// password does; the next try is throttled again, for longer.
	for range 2 {
		if codes[len(codes)-1] != http.StatusTooManyRequests {
			break
		}
		until := retryUntil(t, stderr)
		time.Sleep(time.Until(until) + 1100*time.Millisecond) // the time printed drops the fraction
		var code int
		code, stderr = try()
		codes = append(codes, code)
		if code != http.StatusUnauthorized {
			t.Fatalf("wrong password after waiting out the delay: HTTP %d, want 401:\n%s", code, stderr)
		}
		failures++
		code, stderr = try()
		codes = append(codes, code)
		if code != http.StatusTooManyRequests && code != http.StatusForbidden {
			t.Fatalf("wrong password right after a delayed one: HTTP %d, want 429 or 403:\n%s", code, stderr)
		}
	}
	// Keep failing, waiting out each delay, until dev is locked out: then
	// even the right password is refused.
	for i := 0; codes[len(codes)-1] != http.StatusForbidden; i++ {
		if i > 10 {
			t.Fatalf("never locked out after %d wrong passwords: %v", attempt, codes)
		}
		if codes[len(codes)-1] == http.StatusTooManyRequests {
			time.Sleep(time.Until(retryUntil(t, stderr)) + 1100*time.Millisecond)
		}
		var code int
		code, stderr = try()
		codes = append(codes, code)
		if code == http.StatusUnauthorized {
			failures++
		}
	}
	if !strings.Contains(stderr, "try again after") {
		t.Errorf("lockout answer does not say until when: %s", stderr)
	}
	if _, stderr, err := c.CLIEnv(follower, map[string]string{"HIVE_CONFIG": scratch}, dev.password+"\n", "login", "--user", "dev", "--password-stdin"); err == nil || httpStatusIn(stderr) != http.StatusForbidden {
		t.Errorf("the right password while locked out: err %v, %s", err, stderr)
	}
	t.Logf("wrong-password answers: %v", codes)
	if err := os.Remove(scratch); err == nil {
		t.Errorf("a refused login wrote a CLI config %s", scratch)
	}

	// Another user on another machine is not held back by dev's failures:
	// not when calling the leader, and not through the follower dev's
	// attempts came through. (The leader must count the client's address,
	// not the address of the manager that forwarded the login.)
	env := map[string]string{"HIVE_CONFIG": filepath.Join(dir, "vw-other.config")}
	direct := []string{"login", "--user", "vw", "--password-stdin", "--address", leader.URL(), "--ca-cert", c.CACert}
	if _, stderr, err := other.RunEnv(CLITimeout, env, vw.password+"\n", direct...); err != nil {
		t.Errorf("vw logging in from %s (%s) straight to the leader after dev's failures: %v\n%s", other.Name, other.IP, err, stderr)
	}
	via := []string{"login", "--user", "vw", "--password-stdin", "--address", follower.URL(), "--ca-cert", c.CACert}
	if _, stderr, err := other.RunEnv(CLITimeout, env, vw.password+"\n", via...); err != nil {
		t.Errorf("vw logging in from %s (%s) through %s, the manager dev's wrong passwords came through, was refused "+
			"(HTTP %d): the leader throttles logins by the forwarding manager's address instead of the client's, so one "+
			"client's failures throttle every user who logs in through that manager:\n%s",
			other.Name, other.IP, follower.Name, httpStatusIn(stderr), strings.TrimSpace(stderr))
	}
	if b, err := os.ReadFile(env["HIVE_CONFIG"]); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if tok, ok := strings.CutPrefix(line, "token="); ok {
				leaks.add("session token of vw (from "+other.Name+")", tok)
			}
		}
	}

	// The leader recorded dev's failures in its audit log and metrics.
	entries := readAuditEntries(t, leader)
	var denied, devAuth, locked int
	var throttled []rbacAuditEntry // refused logins not recorded as denials
	for _, e := range entries {
		if e.Event != "authentication" || e.Name != "dev" {
			continue
		}
		devAuth++
		if e.Decision == "deny" {
			denied++
		}
		if e.Status == http.StatusForbidden && strings.Contains(e.Reason, "locked") {
			locked++
		}
		if e.Status == http.StatusTooManyRequests && e.Decision != "deny" {
			throttled = append(throttled, e)
		}
	}
	if len(throttled) > 0 {
		// A throttled login is a refused authentication (the metric counts
		// it as a failure); as "error" it escapes `audit tail --decision deny`.
		t.Errorf("leader's audit log: %d throttled logins for dev (status 429) recorded with decision %q, want deny; first: %+v",
			len(throttled), throttled[0].Decision, throttled[0])
	}
	t.Logf("leader's audit log: %d authentication entries for dev, %d denied, %d refused as locked out", devAuth, denied, locked)
	if locked == 0 {
		t.Error("leader's audit log does not record the lockout")
	}
	if denied < failures {
		t.Errorf("leader's audit log has %d authentication deny entries for dev; %d wrong passwords were answered 401", denied, failures)
	}
	n := passwordFailureMetric(t, hc, leader, root.sessionToken())
	t.Logf("leader's hive_authentication_failures_total{method=\"password\"} = %v", n)
	if n <= 0 || n < float64(failures) {
		t.Errorf("leader's hive_authentication_failures_total{method=\"password\"} is %v; %d wrong passwords were answered 401", n, failures)
	}

	// --- 5. audit logs: intact, tamper-evident, free of secrets
	for _, m := range managers {
		c.WaitFor(30*time.Second, m.Name+": audit verify", func() error {
			out, stderr, err := m.Run(CLITimeout, "audit", "verify", "--data-dir", m.DataDir)
			if err == nil && strings.HasPrefix(out, "OK: ") {
				t.Logf("%s: %s", m.Name, strings.TrimSpace(out))
				return nil
			}
			if strings.Contains(out, "has no newline") {
				return fmt.Errorf("caught a write in progress: %s", strings.TrimSpace(out)) // verify again
			}
			return Permanent(fmt.Errorf("hive audit verify --data-dir %s: %v\n%s%s", m.DataDir, err, out, stderr))
		})
	}
	checkTamperEvident(t, leader, filepath.Join(dir, "audit-copy.log"))
	for _, m := range managers {
		leaks.check(t, m)
	}
	t.Logf("TestRBAC took %v", time.Since(began).Round(time.Second))
}

// checkBuiltinRoles asks can-i, as each user, about a table of actions
// whose answers follow from the built-in roles, on every manager in turn.
func checkBuiltinRoles(t *testing.T, managers []*Host, admin, developer, viewer *rbacUser) {
	t.Helper()
	type row struct {
		action, resource, ns string
		admin, dev, viewer   bool
	}
	rows := []row{
		{"list", "job", "default", true, true, true},
		{"read", "job", "default", true, true, true},
		{"create", "job", "default", true, true, false},
		{"stop", "job", "default", true, true, false},
		{"delete", "job", "default", true, false, false},
		{"read", "secret", "default", true, true, true},
		{"read", "secret/value", "default", true, false, false},
		{"read", "alloc/logs", "default", true, true, false},
		{"create", "alloc/exec", "default", true, false, false},
		{"list", "node", "", true, true, true},
		{"drain", "node", "", true, false, false},
		{"read", "role", "", true, false, true},
		{"create", "role", "", true, false, false},
		{"create", "binding", "", true, false, false},
		{"create", "binding", "default", true, false, false},
		{"create", "user", "", true, false, false},
		{"list", "token", "", true, false, false},
		{"read", "audit", "", true, false, false},
		{"read", "operator", "", true, false, true},
		{"snapshot", "operator", "", true, false, false},
		{"create", "namespace", "", true, false, false},
	}
	for i, r := range rows {
		m := managers[i%len(managers)]
		var extra []string
		if r.ns != "" {
			extra = []string{"-n", r.ns}
		}
		for _, who := range []struct {
			u    *rbacUser
			want bool
		}{{admin, r.admin}, {developer, r.dev}, {viewer, r.viewer}} {
			if got := who.u.canI(t, m, r.action, r.resource, extra...); got != who.want {
				t.Errorf("can-i %s %s %v as %s (on %s): %v, want %v", r.action, r.resource, extra, who.u.name, m.Name, got, who.want)
			}
		}
	}
}

// ---- users ----

// rbacUser is a user the test logs in as, with a CLI config file of its
// own (HIVE_CONFIG) that `hive login` writes the session into.
type rbacUser struct {
	t        *testing.T
	c        *Cluster
	name     string
	password string
	config   string
}

func newRBACUser(t *testing.T, c *Cluster, dir, name string) *rbacUser {
	return &rbacUser{t: t, c: c, name: name, password: name + "-pw-" + rand.Text(), config: filepath.Join(dir, name+".config")}
}

// cli runs the CLI as u against h, with stdin on standard input.
func (u *rbacUser) cli(h *Host, stdin string, args ...string) (string, string, error) {
	return u.c.CLIEnv(h, map[string]string{"HIVE_CONFIG": u.config}, stdin, args...)
}

func (u *rbacUser) mustCLI(h *Host, stdin string, args ...string) string {
	u.t.Helper()
	out, _, err := u.cli(h, stdin, args...)
	if err != nil {
		u.t.Fatalf("as %s: %v", u.name, err)
	}
	return out
}

// json runs a CLI command with -o json as u and decodes its output.
func (u *rbacUser) json(h *Host, v any, args ...string) error {
	args = append(slices.Clone(args), "-o", "json")
	out, _, err := u.cli(h, "", args...)
	if err != nil {
		return fmt.Errorf("as %s: %w", u.name, err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("as %s: hive %s: decode JSON output: %w: %q", u.name, strings.Join(args, " "), err, truncate(out, 400))
	}
	return nil
}

func (u *rbacUser) mustJSON(h *Host, v any, args ...string) {
	u.t.Helper()
	if err := u.json(h, v, args...); err != nil {
		u.t.Fatalf("%v", err)
	}
}

// login runs `hive login` through h and checks the session was saved.
func (u *rbacUser) login(h *Host) {
	u.t.Helper()
	out := u.mustCLI(h, u.password+"\n", "login", "--user", u.name, "--password-stdin")
	if !strings.Contains(out, "Logged in as "+u.name) {
		u.t.Errorf("login as %s printed %q", u.name, out)
	}
	if strings.Contains(out, "hive_") {
		u.t.Errorf("login as %s printed a token on standard output", u.name)
	}
	if u.sessionToken() == "" {
		u.t.Fatalf("login as %s saved no token in %s", u.name, u.config)
	}
}

// sessionToken is the token `hive login` saved in u's config.
func (u *rbacUser) sessionToken() string {
	u.t.Helper()
	b, err := os.ReadFile(u.config)
	if err != nil {
		u.t.Fatalf("%s's CLI config: %v", u.name, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if tok, ok := strings.CutPrefix(line, "token="); ok {
			return strings.TrimSpace(tok)
		}
	}
	return ""
}

// waitSession waits until every manager accepts u's session: a login is
// written through the leader, and a follower may apply it a moment later.
func (u *rbacUser) waitSession(hc *http.Client, managers []*Host) {
	u.t.Helper()
	waitAccepted(u.t, u.c, hc, managers, u.sessionToken(), 10*time.Second)
}

func (u *rbacUser) checkWhoAmI(h *Host) {
	u.t.Helper()
	var who structs.WhoAmI
	u.mustJSON(h, &who, "whoami")
	if who.Subject != "user:"+u.name || who.Token == nil || who.Token.Kind != structs.TokenKindSession {
		u.t.Errorf("whoami as %s on %s: subject %q token %+v; want user:%s with a session token", u.name, h.Name, who.Subject, who.Token, u.name)
	}
}

// canI asks `hive auth can-i` as u: exit 0 is yes, 1 with "no" is no,
// anything else fails the test.
func (u *rbacUser) canI(t *testing.T, h *Host, action, resource string, extra ...string) bool {
	t.Helper()
	args := append([]string{"auth", "can-i", action, resource}, extra...)
	out, stderr, err := u.cli(h, "", args...)
	switch {
	case err == nil && strings.TrimSpace(out) == "yes":
		return true
	case exitCode(err) == 1 && strings.TrimSpace(out) == "no":
		return false
	}
	t.Fatalf("as %s: hive %s: %v: stdout %q stderr %q", u.name, strings.Join(args, " "), err, out, stderr)
	return false
}

// leader asks h, as u, which manager leads.
func (u *rbacUser) leader(h *Host) *Host {
	u.t.Helper()
	var lh *Host
	u.c.WaitFor(30*time.Second, "a leader", func() error {
		var peers []structs.RaftPeer
		if err := u.json(h, &peers, "operator", "raft", "peers"); err != nil {
			return err
		}
		var leaders []*Host
		for _, p := range peers {
			if p.Leader {
				leaders = append(leaders, u.c.hostFor(p.ID, p.Address))
			}
		}
		if len(leaders) != 1 || leaders[0] == nil {
			return fmt.Errorf("%s lists peers %+v; want one leader among the hosts", h.Name, peers)
		}
		lh = leaders[0]
		return nil
	})
	return lh
}

// requireForbidden fails the test unless a CLI call was refused with
// HTTP 403.
func requireForbidden(t *testing.T, what, stderr string, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: succeeded; want it refused with 403", what)
	case httpStatusIn(stderr) != http.StatusForbidden:
		t.Errorf("%s: want HTTP 403, got %v", what, err)
	default:
		t.Logf("%s refused: %s", what, strings.TrimSpace(stderr))
	}
}

var httpStatusRE = regexp.MustCompile(`\(HTTP (\d{3})\)`)

// httpStatusIn finds "(HTTP NNN)", which the CLI puts after an API error.
func httpStatusIn(stderr string) int {
	m := httpStatusRE.FindStringSubmatch(stderr)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

var retryUntilRE = regexp.MustCompile(`wait until (\S+) and try again`)

// retryUntil reads when a throttled login may be tried again.
func retryUntil(t *testing.T, stderr string) time.Time {
	t.Helper()
	m := retryUntilRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("a throttled login does not say until when:\n%s", stderr)
	}
	until, err := time.Parse(time.RFC3339, m[1])
	if err != nil {
		t.Fatalf("a throttled login says to wait until %q: %v", m[1], err)
	}
	if d := time.Until(until); d > 35*time.Second {
		t.Fatalf("a throttled login says to wait %v; delays are at most 30s", d)
	}
	return until
}

// writeRBACJob writes a one-task job that needs no worker to be accepted:
// the tests submit it with --detach and never wait for placement.
func writeRBACJob(t *testing.T, dir, id string) string {
	t.Helper()
	src := fmt.Sprintf(`job %q {
  group "main" {
    task "main" {
      driver = "containerd"

      config {
        image   = "docker.io/hive/busybox:test"
        command = "sleep"
        args    = ["3600"]
      }

      resources {
        memory = 16
      }
    }
  }
}
`, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, id+".hcl")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ---- tokens over HTTP ----

// rbacHTTPClient calls the managers' APIs straight from the test process,
// trusting only the cluster CA; it keeps connections alive, so polling
// every few milliseconds costs no handshakes.
func rbacHTTPClient(t *testing.T, c *Cluster) *http.Client {
	t.Helper()
	caPEM, err := os.ReadFile(c.CACert)
	if err != nil {
		t.Fatalf("cluster CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("no certificate in %s", c.CACert)
	}
	tr := &http.Transport{
		Proxy:               nil, // only the test hosts are targets
		TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: api.ManagerServerName, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 4,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 5 * time.Second, Transport: tr}
}

// rbacWhoAmIStatus calls GET /v1/whoami on h with secret as the bearer
// token and returns the status.
func rbacWhoAmIStatus(hc *http.Client, h *Host, secret string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, h.URL()+"/v1/whoami", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// waitAccepted waits until every manager accepts secret.
func waitAccepted(t *testing.T, c *Cluster, hc *http.Client, managers []*Host, secret string, timeout time.Duration) {
	t.Helper()
	for _, m := range managers {
		c.WaitFor(timeout, m.Name+" to accept the token", func() error {
			code, err := rbacWhoAmIStatus(hc, m, secret)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("GET /v1/whoami on %s: %d, want 200", m.Name, code)
			}
			return nil
		})
	}
}

// refusal is when a manager first answered 401 to a token.
type refusal struct {
	at    time.Time
	delay time.Duration // at - the start; -1 if it never refused
	last  string        // the last other answer, for messages
}

// refusals polls every manager at once with secret until each answers
// 401, from now until limit after start, and says when each did.
func refusals(hc *http.Client, managers []*Host, secret string, start time.Time, limit time.Duration) map[*Host]refusal {
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[*Host]refusal{}
	for _, m := range managers {
		wg.Go(func() {
			r := firstRefusal(hc, m, secret, start, limit)
			mu.Lock()
			out[m] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// firstRefusal polls h every few milliseconds with secret until it answers
// 401, from now until limit after start, and says when that was. A 401 at
// the first poll counts as refused at the poll, however late.
func firstRefusal(hc *http.Client, h *Host, secret string, start time.Time, limit time.Duration) refusal {
	r := refusal{delay: -1}
	for {
		now := time.Now()
		code, err := rbacWhoAmIStatus(hc, h, secret)
		switch {
		case err != nil:
			r.last = err.Error()
		case code == http.StatusUnauthorized:
			r.at = now
			r.delay = max(now.Sub(start), 0)
			return r
		default:
			r.last = fmt.Sprintf("HTTP %d", code)
		}
		if time.Since(start) > limit {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// passwordFailureMetric reads hive_authentication_failures_total for
// passwords from h's /v1/metrics.
func passwordFailureMetric(t *testing.T, hc *http.Client, h *Host, secret string) float64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.URL()+"/v1/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET /v1/metrics on %s: %v", h.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/metrics on %s: %d %v: %s", h.Name, resp.StatusCode, err, truncate(string(body), 400))
	}
	const series = `hive_authentication_failures_total{method="password"} `
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metrics on %s: %q: %v", h.Name, line, err)
			}
			return n
		}
	}
	t.Errorf("metrics on %s have no %s series", h.Name, strings.TrimSpace(series))
	return 0
}

// ---- audit ----

// rbacAuditEntry is the part of an audit entry the test reads.
type rbacAuditEntry struct {
	Subject  string `json:"subject"`
	Source   string `json:"source"`
	Path     string `json:"path"`
	Name     string `json:"name"`
	Decision string `json:"decision"`
	Status   int    `json:"status"`
	Event    string `json:"event"`
	Reason   string `json:"reason"`
}

// auditFiles lists every file in h's audit directory.
func auditFiles(t *testing.T, h *Host) []string {
	t.Helper()
	dir := filepath.Join(h.DataDir, "audit")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("%s: audit log: %v", h.Name, err)
	}
	var files []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	if len(files) == 0 {
		t.Fatalf("%s: no files in %s", h.Name, dir)
	}
	return files
}

// readAuditEntries parses every complete line of h's audit files.
func readAuditEntries(t *testing.T, h *Host) []rbacAuditEntry {
	t.Helper()
	var out []rbacAuditEntry
	for _, f := range auditFiles(t, h) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			b = b[:i+1] // a line being written has no newline yet
		} else {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var e rbacAuditEntry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("%s: %s: a line is not JSON: %v", h.Name, f, err)
			}
			out = append(out, e)
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %s: %v", h.Name, f, err)
		}
	}
	return out
}

// checkTamperEvident copies h's audit.log to dst, checks the copy
// verifies, flips one byte inside a string value of a line in the middle,
// and checks `hive audit verify` names that line.
func checkTamperEvident(t *testing.T, h *Host, dst string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.DataDir, "audit", "audit.log"))
	if err != nil {
		t.Fatalf("%s: %v", h.Name, err)
	}
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		t.Fatalf("%s: audit.log has no complete line", h.Name)
	}
	lines := bytes.SplitAfter(b[:end+1], []byte("\n"))
	lines = lines[:len(lines)-1] // SplitAfter leaves an empty last element
	if len(lines) < 5 {
		t.Fatalf("%s: audit.log has only %d lines", h.Name, len(lines))
	}
	// The copy as it is first, so the break below is the flip's doing.
	if err := os.WriteFile(dst, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := h.Run(CLITimeout, "audit", "verify", dst); err != nil || !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("hive audit verify %s (an untouched copy of %s's audit.log): %v\n%s%s", dst, h.Name, err, out, stderr)
	}
	marker := []byte(`"path":"/`)
	n := -1 // 0-based index of the line changed
	for i := len(lines) / 2; i < len(lines)-1; i++ {
		if j := bytes.Index(lines[i], marker); j >= 0 {
			k := j + len(marker) // the first character of the path after '/'
			if c := lines[i][k]; c >= 'a' && c < 'z' {
				lines[i][k] = c + 1
				n = i
				break
			}
		}
	}
	if n < 0 {
		t.Fatalf("%s: no line in the second half of audit.log has a path to change", h.Name)
	}
	if !json.Valid(bytes.TrimSpace(lines[n])) {
		t.Fatalf("the changed line is no longer JSON: %s", lines[n])
	}
	if err := os.WriteFile(dst, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := h.Run(CLITimeout, "audit", "verify", dst)
	want := fmt.Sprintf("BROKEN: %s:%d:", dst, n+1)
	t.Logf("audit verify of a copy with line %d of %d changed: %v: %s", n+1, len(lines), err, strings.TrimSpace(out))
	switch {
	case err == nil:
		t.Errorf("hive audit verify passed a copy of %s's audit.log with line %d changed:\n%s", h.Name, n+1, out)
	case exitCode(err) <= 0:
		t.Errorf("hive audit verify of a changed copy: %v (want a non-zero exit)\n%s", err, stderr)
	case !strings.HasPrefix(out, want):
		t.Errorf("hive audit verify of a copy with line %d changed printed %q; want it to start %q", n+1, strings.TrimSpace(out), want)
	}
}

// leakList is what must never appear in an audit log.
type leakList struct {
	mu    sync.Mutex
	items []leak
}

type leak struct{ what, secret string }

func (l *leakList) add(what, secret string) {
	if secret = strings.TrimSpace(secret); secret == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = append(l.items, leak{what, secret})
	// A token's random part alone is as good as the token.
	for _, part := range regexp.MustCompile(`[a-z2-7]{32}`).FindAllString(secret, -1) {
		l.items = append(l.items, leak{what + " (its random part)", part})
	}
}

// check greps every audit file of h for every secret; it names what leaked
// and where, never the secret.
func (l *leakList) check(t *testing.T, h *Host) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	files := auditFiles(t, h)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		for _, it := range l.items {
			if i := bytes.Index(b, []byte(it.secret)); i >= 0 {
				line := bytes.Count(b[:i], []byte("\n")) + 1
				t.Errorf("%s: the %s is in the audit log at %s:%d", h.Name, it.what, f, line)
			}
		}
	}
	t.Logf("%s: %d audit files free of %d secrets", h.Name, len(files), len(l.items))
}
