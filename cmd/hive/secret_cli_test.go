package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hivesec/hive/crypto/keyring"
	"github.com/hivesec/hive/server"
	"github.com/hivesec/hive/structs"
)

// Fixtures for the secret and keyring commands. The values must never show
// in any output but that of `secret get --reveal`.
const (
	fxSecretPassword = "pw-S3CRET-value"
	fxSecretUser     = "api-user-S3CRET"
	fxLiteralValue   = "literal-S3CRET"
	fxFileValue      = "file-S3CRET\nsecond line\n"
	fxStdinValue     = "stdin-S3CRET"
)

var (
	fxUnlockKey  = server.EncodeUnlockKey(bytes.Repeat([]byte{7}, keyring.KeySize))
	fxOtherKey   = server.EncodeUnlockKey(bytes.Repeat([]byte{8}, keyring.KeySize))
	fxSecretInfo = structs.SecretInfo{
		Namespace: "payments", Name: "db-password", Description: "orders DB", Labels: map[string]string{"team": "pay"},
		Version: 3, Keys: []string{"password", "user"}, Generated: []string{"password"},
		Versions: []structs.SecretVersionInfo{
			{Version: 1, Keys: []string{"password"}, RootKeyID: "rk-1", CreatedAt: t0},
			{Version: 2, Keys: []string{"password", "user"}, RootKeyID: "rk-1", CreatedAt: t0},
			{Version: 3, Keys: []string{"password", "user"}, RootKeyID: "rk-2", CreatedAt: t0},
		},
		RotationPeriod: "720h0m0s", RotationDueAt: t0, CreatedAt: t0, UpdatedAt: t0,
	}
	fxSecretList = []structs.SecretInfo{
		{Namespace: "payments", Name: "db-password", Version: 3, Keys: []string{"password", "user"}, CreatedAt: t0, UpdatedAt: t0},
		// The server's namespace filter is a prefix match: payments2 comes
		// back for ?namespace=payments too.
		{Namespace: "payments2", Name: "other", Version: 1, Keys: []string{"k"}, ExpiresAt: t0, CreatedAt: t0, UpdatedAt: t0},
		{Namespace: "default", Name: "api-tls", Version: 1, Keys: []string{"tls.crt", "tls.key"}, CreatedAt: t0, UpdatedAt: t0},
	}
	fxKeyring = structs.KeyringStatus{Pending: 4, Keys: []structs.RootKeyInfo{
		{ID: "rk-1", State: structs.RootKeyRotating, CreatedAt: t0, Versions: 4},
		{ID: "rk-2", State: structs.RootKeyActive, CreatedAt: t0, Versions: 7},
	}}
)

// serveSecrets answers the secret and keyring routes.
func (f *fakeAPI) serveSecrets(r *http.Request, body []byte, reply func(int, any)) bool {
	fail := func(status int, msg, code string) { reply(status, structs.ErrorResponse{Error: msg, Code: code}) }
	p, q := r.URL.Path, r.URL.Query()
	switch key := r.Method + " " + p; {
	case key == "GET /v1/secrets":
		if q.Get("namespace") == "" && r.Header.Get("Authorization") == "Bearer ns-only" {
			fail(403, "permission denied: secret:list in every namespace", "forbidden")
			return true
		}
		var out []structs.SecretInfo
		for _, s := range fxSecretList {
			if strings.HasPrefix(s.Namespace, q.Get("namespace")) {
				out = append(out, s)
			}
		}
		reply(200, out)
	case key == "GET /v1/secret/db-password":
		reply(200, fxSecretInfo)
	case key == "GET /v1/secret/db-password/value":
		if r.Header.Get("Authorization") == "Bearer viewer" {
			fail(403, "permission denied: secret/value:read on payments/db-password", "forbidden")
			return true
		}
		v := uint64(3)
		if q.Get("version") == "2" {
			v = 2
		}
		reply(200, structs.SecretValue{Namespace: q.Get("namespace"), Name: "db-password", Version: v,
			Data: map[string]string{"user": fxSecretUser, "password": fxSecretPassword}})
	case key == "GET /v1/secret/locked/value":
		fail(503, server.ErrKeyringSealed.Error(), "sealed")
	case key == "POST /v1/secret/exists":
		fail(409, "secret default/exists exists; add a version with `hive secret update`", "conflict")
	case (r.Method == "POST" || r.Method == "PUT") && strings.HasPrefix(p, "/v1/secret/") && !strings.HasSuffix(p, "/rollback"):
		var req structs.SecretRequest
		_ = json.Unmarshal(body, &req)
		var keys []string
		for k := range req.Data {
			keys = append(keys, k)
		}
		for k := range req.Generate {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		info := structs.SecretInfo{Namespace: q.Get("namespace"), Name: strings.TrimPrefix(p, "/v1/secret/"), Version: 1, Keys: keys, CreatedAt: t0, UpdatedAt: t0}
		info.Versions = []structs.SecretVersionInfo{{Version: 1, Keys: keys, CreatedAt: t0}}
		if r.Method == "PUT" {
			info.Version = 4
			info.Versions = append(slices.Clone(fxSecretInfo.Versions), structs.SecretVersionInfo{Version: 4, Keys: keys, CreatedAt: t0})
		}
		reply(200, info)
	case key == "POST /v1/secret/db-password/rollback":
		info := fxSecretInfo
		info.Version = 4
		reply(200, info)
	case key == "DELETE /v1/secret/db-password":
		reply(200, struct{}{})
	case key == "GET /v1/operator/keyring":
		reply(200, fxKeyring)
	case key == "POST /v1/operator/keyring/rotate":
		reply(200, fxKeyring)
	case key == "POST /v1/operator/unlock":
		var req structs.UnlockRequest
		_ = json.Unmarshal(body, &req)
		if req.Key != fxUnlockKey {
			fail(403, "that is not this cluster's unlock key", "wrong_key")
			return true
		}
		reply(200, structs.KeyringStatus{})
	default:
		return false
	}
	return true
}

// noSecretValues fails if a secret value or unlock key shows in outputs.
func noSecretValues(t *testing.T, outputs ...string) {
	t.Helper()
	for _, o := range outputs {
		for _, s := range []string{fxSecretPassword, fxSecretUser, fxLiteralValue, "file-S3CRET", fxStdinValue, fxUnlockKey, fxOtherKey} {
			if strings.Contains(o, s) {
				t.Errorf("output shows the secret %q:\n%s", s, o)
			}
		}
	}
}

func writeTemp(t *testing.T, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSecretCreate(t *testing.T) {
	f := env(t)
	keyFile := writeTemp(t, "api.key", []byte(fxFileValue), 0o600)
	out, errs := mustRunIn(t, fxStdinValue, "secret", "create", "payments/db-password",
		"--from-literal", "user="+fxLiteralValue, "--from-file", "tls.key="+keyFile, "--from-file", "token=-",
		"--generate", "password=32", "--description", "orders DB", "--label", "team=pay",
		"--expires", "90m", "--rotation-period", "720h", "--max-versions", "5")
	noSecretValues(t, out, errs)
	req, query, _, body := f.reqAt(-1)
	if req != "POST /v1/secret/db-password" || query != "namespace=payments" {
		t.Fatalf("request %q ?%s", req, query)
	}
	var sent structs.SecretRequest
	if err := json.Unmarshal([]byte(body), &sent); err != nil {
		t.Fatal(err)
	}
	want := structs.SecretRequest{
		Description: "orders DB", Labels: map[string]string{"team": "pay"},
		Data:     map[string]string{"user": fxLiteralValue, "tls.key": fxFileValue, "token": fxStdinValue},
		Generate: map[string]int{"password": 32}, Expires: "1h30m0s", RotationPeriod: "720h0m0s", MaxVersions: 5,
	}
	if !reflect.DeepEqual(sent, want) {
		t.Errorf("sent %+v\nwant %+v", sent, want)
	}
	wantOut := "Created secret payments/db-password: version 1 with keys password,tls.key,token,user\n" +
		"Generated password; reveal with `hive secret get payments/db-password --reveal`\n"
	if out != wantOut {
		t.Errorf("stdout = %q, want %q", out, wantOut)
	}

	// NAME with -n is the same secret; -o json prints the metadata.
	out, _ = mustRun(t, "secret", "create", "db-password", "-n", "payments", "--generate", "password=16", "-o", "json")
	if req, query, _, _ := f.reqAt(-1); req != "POST /v1/secret/db-password" || query != "namespace=payments" {
		t.Errorf("request %q ?%s", req, query)
	}
	var info structs.SecretInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.Name != "db-password" || !reflect.DeepEqual(info.Keys, []string{"password"}) {
		t.Errorf("JSON %+v %v\n%s", info, err, out)
	}

	// Without a namespace: "default".
	mustRun(t, "secret", "create", "plain", "--from-literal", "k="+fxLiteralValue)
	if req, query, _, _ := f.reqAt(-1); req != "POST /v1/secret/plain" || query != "namespace=default" {
		t.Errorf("request %q ?%s", req, query)
	}

	_, errs, code := hive(t, "secret", "create", "exists", "--from-literal", "k="+fxLiteralValue)
	if code != 1 || !strings.Contains(errs, "Error: creating secret default/exists: secret default/exists exists") {
		t.Errorf("exit %d, %q", code, errs)
	}
	noSecretValues(t, errs)
}

func TestSecretRefusedLocally(t *testing.T) {
	f := env(t)
	dir := t.TempDir()
	big := writeTemp(t, "big.bin", bytes.Repeat([]byte("a"), structs.MaxSecretSize+1), 0o600)
	half := writeTemp(t, "half.txt", bytes.Repeat([]byte("b"), structs.MaxSecretSize/2+10), 0o600)
	binary := writeTemp(t, "key.der", []byte{0x30, 0x82, 0xff, 0xfe}, 0o600)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"secret", "create", "web/db", "--from-file", "blob=" + big}, "--from-file blob=" + big + ": the file holds 1048577 bytes; a secret version holds at most 1 MiB"},
		{[]string{"secret", "update", "web/db", "--from-file", "a=" + half, "--from-file", "b=" + half}, "the values take 1048598 bytes; a secret version holds at most 1 MiB"},
		{[]string{"secret", "create", "web/db", "--from-file", "k=" + binary}, "is not UTF-8 text"},
		{[]string{"secret", "create", "web/db", "--from-file", "k=" + filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"secret", "create", "web/db", "--from-file", "k=" + dir}, "is a directory"},
		{[]string{"secret", "create", "web/db", "--from-file", "nopath"}, `invalid --from-file "nopath": use KEY=PATH`},
		// The argument may be the value itself: it must not be shown.
		{[]string{"secret", "create", "web/db", "--from-literal", fxLiteralValue}, "invalid --from-literal (number 1): use KEY=VALUE"},
		{[]string{"secret", "create", "web/db", "--from-literal", "=" + fxLiteralValue}, "invalid --from-literal (number 1)"},
		{[]string{"secret", "create", "web/db", "--from-literal", "a/b=" + fxLiteralValue}, `--from-literal: invalid secret key "a/b"`},
		{[]string{"secret", "create", "web/db", "--from-literal", "k=" + fxLiteralValue, "--generate", "k=20"}, "key k is given twice (--from-literal and --generate)"},
		{[]string{"secret", "create", "web/db", "--generate", "k=long"}, `invalid --generate "k=long": use KEY=LEN`},
		{[]string{"secret", "create", "web/db", "--generate", "k=-3"}, `invalid --generate "k=-3"`},
		{[]string{"secret", "create", "web/db"}, "no values: give at least one --from-literal KEY=VALUE"},
		{[]string{"secret", "create", "web/db", "--generate", "k=20", "--max-versions", "-1"}, "invalid --max-versions -1"},
		{[]string{"secret", "create", "web/db", "--generate", "k=20", "--expires", "-1h"}, "cannot be negative"},
		{[]string{"secret", "create", "web/db", "--generate", "k=20", "--label", "novalue"}, `invalid --label "novalue"`},
		{[]string{"secret", "create", "web/db", "--from-file", "a=-", "--from-file", "b=-"}, "--from-file KEY=- is given twice"},
		// NAMESPACE/NAME parsing.
		{[]string{"secret", "create", "Web/db", "--generate", "k=20"}, `invalid secret "Web/db": invalid namespace name "Web"`},
		{[]string{"secret", "get", "web/db/x"}, `invalid secret "web/db/x": invalid secret name "db/x"`},
		{[]string{"secret", "get", "web/"}, `invalid secret "web/": invalid secret name ""`},
		{[]string{"secret", "get", "/db"}, `invalid secret "/db": invalid namespace name ""`},
		{[]string{"secret", "get", "DB"}, "use NAMESPACE/NAME, such as payments/db-password, or NAME with -n NAMESPACE"},
		{[]string{"secret", "get", "web/db", "-n", "payments"}, `secret "web/db" is in namespace web but -n says payments`},
		{[]string{"secret", "get", "db", "-n", "Bad"}, `invalid namespace name "Bad"`},
		{[]string{"secret", "get"}, "hive secret get takes NAMESPACE/NAME, got 0 argument(s)"},
		{[]string{"secret", "get", "web/db", "--version", "2"}, "--version needs --reveal"},
		{[]string{"secret", "get", "web/db", "--reveal", "--version", "0"}, "invalid --version 0"},
		{[]string{"secret", "get", "web/db", "--key", "password"}, "--key needs --reveal"},
		{[]string{"secret", "get", "web/db", "--reveal", "--key", "password", "-o", "json"}, "--key prints one raw value"},
		{[]string{"secret", "get", "web/db", "-o", "yaml"}, `invalid output format "yaml"`},
		{[]string{"secret", "rollback", "web/db"}, "missing --to N"},
		{[]string{"secret", "ls", "-n", "Bad_NS"}, `invalid namespace name "Bad_NS"`},
		{[]string{"secret", "delete", "web/Bad"}, `invalid secret name "Bad"`},
	}
	for _, tc := range cases {
		out, errs, code := hiveIn(t, "", tc.args...)
		if code != 1 || !strings.HasPrefix(errs, "Error: ") || !strings.Contains(errs, tc.want) {
			t.Errorf("hive %s: exit %d, stderr %q, want %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
		if out != "" {
			t.Errorf("hive %s: stdout %q, want none", strings.Join(tc.args, " "), out)
		}
		noSecretValues(t, errs)
	}
	if n := f.count(); n != 0 {
		t.Errorf("refused commands made %d API calls", n)
	}
}

func TestSecretFromFileSizeLimitOnStdin(t *testing.T) {
	f := env(t)
	_, errs, code := hiveIn(t, strings.Repeat("x", structs.MaxSecretSize+1), "secret", "create", "web/db", "--from-file", "k=-")
	if code != 1 || !strings.Contains(errs, "--from-file k=-: standard input holds more than 1 MiB") {
		t.Errorf("exit %d, %q", code, errs)
	}
	if f.count() != 0 {
		t.Error("an oversized value was sent")
	}
	// Exactly the limit, key included, is accepted.
	mustRunIn(t, strings.Repeat("x", structs.MaxSecretSize-1), "secret", "create", "web/db", "--from-file", "k=-")
}

func TestSecretList(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "secret", "ls")
	// (NAME is inside NAMESPACE, which checkAligned would find first.)
	checkAligned(t, out, []string{"NAMESPACE", "VERSION", "KEYS", "EXPIRES", "UPDATED"})
	if !strings.HasPrefix(out, "NAMESPACE   NAME   ") {
		t.Errorf("header %q", lines(out)[0])
	}
	want := [][]string{
		{"default", "api-tls", "1", "tls.crt,tls.key", "never", "2030-01-02T03:04:05Z"},
		{"payments", "db-password", "3", "password,user", "never", "2030-01-02T03:04:05Z"},
		{"payments2", "other", "1", "k", "2030-01-02T03:04:05Z", "2030-01-02T03:04:05Z"},
	}
	ls := lines(out)
	if len(ls) != 4 {
		t.Fatalf("table:\n%s", out)
	}
	for i, l := range ls[1:] {
		if got := strings.Fields(l); !reflect.DeepEqual(got, want[i]) {
			t.Errorf("row %d = %q, want %q", i, got, want[i])
		}
	}
	if req, query, _, _ := f.reqAt(-1); req != "GET /v1/secrets" || query != "" {
		t.Errorf("request %q ?%s", req, query)
	}

	// -n asks for one namespace, and shows only it.
	out, _ = mustRun(t, "secret", "ls", "-n", "payments", "-o", "json")
	if req, query, _, _ := f.reqAt(-1); req != "GET /v1/secrets" || query != "namespace=payments" {
		t.Errorf("request %q ?%s", req, query)
	}
	var list []structs.SecretInfo
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], fxSecretList[0]) {
		t.Errorf("JSON %+v %v", list, err)
	}
	out, _ = mustRun(t, "secret", "ls", "-n", "empty", "-o", "json")
	if out != "[]\n" {
		t.Errorf("empty list JSON = %q", out)
	}

	_, errs, code := hive(t, "--token", "ns-only", "secret", "ls")
	if code != 1 || !strings.Contains(errs, "pass -n NAMESPACE to list one") {
		t.Errorf("exit %d, %q", code, errs)
	}
}

func TestSecretGet(t *testing.T) {
	f := env(t)
	out, errs := mustRun(t, "secret", "get", "payments/db-password")
	noSecretValues(t, out, errs)
	for _, want := range []string{
		"Namespace         payments", "Name              db-password", "Description       orders DB", "Labels            team=pay",
		"Version           3", "Keys              password,user", "Generated         password", "Versions Kept     3",
		"Expires           never", "Rotation Period   720h0m0s", "Rotation Due      2030-01-02T03:04:05Z",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if req, query, _, _ := f.reqAt(-1); req != "GET /v1/secret/db-password" || query != "namespace=payments" {
		t.Errorf("request %q ?%s", req, query)
	}
	out, _ = mustRun(t, "secret", "get", "db-password", "-n", "payments", "-o", "json")
	var info structs.SecretInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil || !reflect.DeepEqual(info, fxSecretInfo) {
		t.Errorf("JSON %+v %v", info, err)
	}
	noSecretValues(t, out)

	// --reveal prints KEY=VALUE lines, sorted, and nothing else.
	out, errs = mustRun(t, "secret", "get", "payments/db-password", "--reveal")
	if want := "password=" + fxSecretPassword + "\nuser=" + fxSecretUser + "\n"; out != want {
		t.Errorf("reveal stdout = %q, want %q", out, want)
	}
	if errs != "" {
		t.Errorf("reveal stderr = %q", errs)
	}
	if req, query, _, _ := f.reqAt(-1); req != "GET /v1/secret/db-password/value" || query != "namespace=payments" {
		t.Errorf("request %q ?%s", req, query)
	}
	out, _ = mustRun(t, "secret", "get", "payments/db-password", "--reveal", "--version", "2", "-o", "json")
	if _, query, _, _ := f.reqAt(-1); query != "namespace=payments&version=2" {
		t.Errorf("query %q", query)
	}
	var v structs.SecretValue
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Version != 2 || v.Data["password"] != fxSecretPassword {
		t.Errorf("JSON %+v %v", v, err)
	}
	out, _ = mustRun(t, "secret", "get", "payments/db-password", "--reveal", "--key", "password")
	if out != fxSecretPassword {
		t.Errorf("--key stdout = %q, want the value alone", out)
	}
	_, errs, code := hive(t, "secret", "get", "payments/db-password", "--reveal", "--key", "nope")
	if code != 1 || !strings.Contains(errs, `version 3 has no key "nope"; its keys are password,user`) {
		t.Errorf("exit %d, %q", code, errs)
	}
	noSecretValues(t, errs)

	_, errs, code = hive(t, "--token", "viewer", "secret", "get", "payments/db-password", "--reveal")
	if code != 1 || !strings.Contains(errs, "revealing values takes secret/value:read") {
		t.Errorf("exit %d, %q", code, errs)
	}
	_, errs, code = hive(t, "secret", "get", "locked", "--reveal")
	if code != 1 || !strings.Contains(errs, "keyring is locked") || !strings.Contains(errs, "Hint: that manager is locked (autolock)") {
		t.Errorf("exit %d, %q", code, errs)
	}
}

func TestSecretUpdateVersionsRollbackDelete(t *testing.T) {
	f := env(t)
	// Version 3 held password and user; version 4 only password.
	out, errs := mustRun(t, "secret", "update", "payments/db-password", "--from-literal", "password="+fxLiteralValue)
	noSecretValues(t, out, errs)
	req, query, _, body := f.reqAt(-1)
	if req != "PUT /v1/secret/db-password" || query != "namespace=payments" || body != `{"data":{"password":"`+fxLiteralValue+`"}}` {
		t.Errorf("request %q ?%s %s", req, query, body)
	}
	if out != "Updated secret payments/db-password: version 4 with keys password\n" {
		t.Errorf("stdout %q", out)
	}
	if !strings.Contains(errs, "Warning: version 4 no longer holds user, which version 3 did") || !strings.Contains(errs, "hive secret rollback payments/db-password --to 3") {
		t.Errorf("no dropped-key warning: %q", errs)
	}
	_, errs = mustRun(t, "secret", "update", "payments/db-password", "--generate", "password=40", "--from-literal", "user=u")
	if errs != "" {
		t.Errorf("warning without dropped keys: %q", errs)
	}

	out, _ = mustRun(t, "secret", "versions", "payments/db-password")
	checkAligned(t, out, []string{"VERSION", "CURRENT", "KEYS", "ROOT KEY", "CREATED"})
	want := [][]string{
		{"3", "true", "password,user", "rk-2", "2030-01-02T03:04:05Z"},
		{"2", "false", "password,user", "rk-1", "2030-01-02T03:04:05Z"},
		{"1", "false", "password", "rk-1", "2030-01-02T03:04:05Z"},
	}
	for i, l := range lines(out)[1:] {
		if got := strings.Fields(l); !reflect.DeepEqual(got, want[i]) {
			t.Errorf("row %d = %q, want %q", i, got, want[i])
		}
	}
	out, _ = mustRun(t, "secret", "versions", "payments/db-password", "-o", "json")
	var versions []structs.SecretVersionInfo
	if err := json.Unmarshal([]byte(out), &versions); err != nil || !reflect.DeepEqual(versions, fxSecretInfo.Versions) {
		t.Errorf("JSON %+v %v", versions, err)
	}

	out, _ = mustRun(t, "secret", "rollback", "payments/db-password", "--to", "2")
	if req, query, _, body := f.reqAt(-1); req != "POST /v1/secret/db-password/rollback" || query != "namespace=payments" || body != `{"to":2}` {
		t.Errorf("request %q ?%s %s", req, query, body)
	}
	if out != "Rolled back secret payments/db-password: version 4 holds the values of version 2 (keys password,user)\n" {
		t.Errorf("stdout %q", out)
	}

	out, _ = mustRun(t, "secret", "rm", "db-password", "-n", "payments")
	if req, query, _, _ := f.reqAt(-1); req != "DELETE /v1/secret/db-password" || query != "namespace=payments" || out != "Deleted secret payments/db-password\n" {
		t.Errorf("request %q ?%s, out %q", req, query, out)
	}
}

func TestKeyringStatusAndRotate(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "operator", "keyring", "status")
	if req, _, _, _ := f.reqAt(-1); req != "GET /v1/operator/keyring" {
		t.Errorf("request %q", req)
	}
	head, keys, ok := strings.Cut(out, "\n\n")
	if !ok {
		t.Fatalf("want two tables:\n%s", out)
	}
	for _, want := range []string{"Manager   " + os.Getenv("HIVE_ADDR"), "Keyring   unlocked", "Pending   4 secret version(s) to re-wrap"} {
		if !strings.Contains(head, want) {
			t.Errorf("missing %q in\n%s", want, head)
		}
	}
	checkAligned(t, keys, []string{"ID", "STATE", "CREATED", "VERSIONS"})
	wantRows := [][]string{{"rk-1", "rotating", "2030-01-02T03:04:05Z", "4"}, {"rk-2", "active", "2030-01-02T03:04:05Z", "7"}}
	for i, l := range lines(keys)[1:] {
		if got := strings.Fields(l); !reflect.DeepEqual(got, wantRows[i]) {
			t.Errorf("row %d = %q, want %q", i, got, wantRows[i])
		}
	}
	out, _ = mustRun(t, "operator", "keyring", "status", "-o", "json")
	var st structs.KeyringStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || !reflect.DeepEqual(st, fxKeyring) {
		t.Errorf("JSON %+v %v", st, err)
	}

	var b bytes.Buffer
	if err := printKeyringStatus(&b, "https://m:7400", &structs.KeyringStatus{Sealed: true, Keys: []structs.RootKeyInfo{}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Keyring   locked: it serves no secrets until `hive operator unlock`") || !strings.Contains(b.String(), "No root key yet") {
		t.Errorf("locked status:\n%s", b.String())
	}

	out, _ = mustRun(t, "operator", "keyring", "rotate")
	if req, _, _, _ := f.reqAt(-1); req != "POST /v1/operator/keyring/rotate" {
		t.Errorf("request %q", req)
	}
	if !strings.Contains(out, "root key rk-2 is active; 4 secret version(s) are being re-wrapped") {
		t.Errorf("rotate: %q", out)
	}
}

func TestUnlock(t *testing.T) {
	f := env(t)
	addr := os.Getenv("HIVE_ADDR")
	out, errs := mustRunIn(t, fxUnlockKey+"\n", "operator", "unlock", "--key-stdin")
	noSecretValues(t, out, errs)
	req, _, _, body := f.reqAt(-1)
	if req != "POST /v1/operator/unlock" || body != `{"key":"`+fxUnlockKey+`"}` {
		t.Errorf("request %q %s", req, body)
	}
	if out != "Unlocked the manager at "+addr+": it serves secrets and signs certificates again.\n" {
		t.Errorf("stdout %q", out)
	}

	// A wrong key: the server's answer, and a hint about the key, not the
	// API token.
	_, errs, code := hiveIn(t, fxOtherKey, "operator", "unlock", "--key-stdin")
	if code != 1 || !strings.Contains(errs, "Error: unlocking the manager at "+addr+": the key was refused: that is not this cluster's unlock key (HTTP 403)") {
		t.Errorf("exit %d, %q", code, errs)
	}
	if !strings.Contains(errs, "Hint: give the HIVEUNLOCK1-... key") || strings.Contains(errs, "lacks the permission") {
		t.Errorf("hint: %q", errs)
	}
	noSecretValues(t, errs)

	// Typed at a terminal, without echo.
	withTTY(t, fxUnlockKey)
	out, errs = mustRunIn(t, "", "operator", "unlock")
	noSecretValues(t, out, errs)
	if errs != "Unlock key: \n" {
		t.Errorf("prompt %q", errs)
	}
	if _, _, _, body := f.reqAt(-1); body != `{"key":"`+fxUnlockKey+`"}` {
		t.Errorf("body %s", body)
	}

	// From a file; a loose mode is warned about.
	path := writeTemp(t, "unlock.key", []byte(fxUnlockKey+"\n"), 0o644)
	_, errs = mustRun(t, "operator", "unlock", "--key-file", path)
	if !strings.Contains(errs, "Warning: "+path+" has mode 0644") {
		t.Errorf("no mode warning: %q", errs)
	}
	_ = os.Chmod(path, 0o600)
	if _, errs = mustRun(t, "operator", "unlock", "--key-file", path); errs != "" {
		t.Errorf("stderr %q", errs)
	}
}

func TestUnlockRefusedLocally(t *testing.T) {
	f := env(t)
	cases := []struct {
		stdin string
		args  []string
		want  string
	}{
		{fxUnlockKey, []string{"operator", "unlock"}, "standard input is not a terminal, so the unlock key cannot be typed without echo: pass --key-stdin"},
		{"", []string{"operator", "unlock", "--key-stdin"}, "--key-stdin: standard input ended before the unlock key"},
		{"hive_admin_S3CRET\n", []string{"operator", "unlock", "--key-stdin"}, "not an unlock key: an unlock key starts with HIVEUNLOCK1-"},
		{"HIVEUNLOCK1-SHORT\n", []string{"operator", "unlock", "--key-stdin"}, "not an unlock key: the unlock key is malformed"},
		{"", []string{"operator", "unlock", "--key-stdin", "--key-file", "x"}, "--key-file and --key-stdin both give the key"},
		{"", []string{"operator", "unlock", "--key-file", filepath.Join(t.TempDir(), "none")}, "--key-file: open"},
		{"", []string{"operator", "unlock", "--key-file", writeTemp(t, "empty", nil, 0o600)}, "is empty"},
		{"", []string{"operator", "unlock", fxUnlockKey}, "hive operator unlock takes no arguments"},
	}
	for _, tc := range cases {
		out, errs, code := hiveIn(t, tc.stdin, tc.args...)
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("hive %s: exit %d, stderr %q, want %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
		if out != "" || strings.Contains(errs, "hive_admin_S3CRET") || strings.Contains(errs, "SHORT") {
			t.Errorf("hive %s: stdout %q, stderr %q", strings.Join(tc.args, " "), out, errs)
		}
	}
	if n := f.count(); n != 0 {
		t.Errorf("refused unlocks made %d API calls", n)
	}
}

func TestPrintUnlockKey(t *testing.T) {
	var out, errb bytes.Buffer
	printUnlockKey(&out, &errb, fxUnlockKey)
	if strings.Count(out.String(), fxUnlockKey) != 1 || !strings.Contains(out.String(), "Unlock key (autolock): "+fxUnlockKey+"\n") {
		t.Errorf("stdout %q", out.String())
	}
	if strings.Contains(errb.String(), fxUnlockKey) || !strings.Contains(errb.String(), "shown only this once") || !strings.Contains(errb.String(), "hive operator unlock") {
		t.Errorf("stderr %q", errb.String())
	}
}

func TestInitResetAdmin(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"init", "--reset-admin", "--data-dir", dir}, "--reset-admin: no manager is running with data dir " + dir + " (there is no admin socket " + filepath.Join(dir, "admin.sock") + ")"},
		{[]string{"init", "--reset-admin", "--data-dir", filepath.Join(dir, "none")}, "there is no data dir " + filepath.Join(dir, "none")},
		{[]string{"init", "--reset-admin"}, "--reset-admin needs --data-dir"},
		{[]string{"init", "--reset-admin", "--data-dir", dir, "--advertise", "127.0.0.1"}, "--reset-admin starts nothing and takes only --data-dir"},
		{[]string{"init", "--reset-admin", "--data-dir", dir, "--autolock"}, "takes only --data-dir"},
	}
	for _, tc := range cases {
		out, errs, code := hive(t, tc.args...)
		if code != 1 || !strings.HasPrefix(errs, "Error: ") || !strings.Contains(errs, tc.want) {
			t.Errorf("hive %s: exit %d, stderr %q, want %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
		if out != "" {
			t.Errorf("hive %s: stdout %q", strings.Join(tc.args, " "), out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "raft")); !os.IsNotExist(err) {
		t.Error("--reset-admin created manager state")
	}

	// A socket left behind by a manager that is gone.
	stale := t.TempDir()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: server.AdminSocketPath(stale), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	_, errs, code := hive(t, "init", "--reset-admin", "--data-dir", stale)
	if code != 1 || !strings.Contains(errs, "cannot reach the manager's admin socket") {
		t.Errorf("stale socket: exit %d, %q", code, errs)
	}

	// `hive dev` keeps its manager one level down.
	dev := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dev, "manager"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(server.AdminSocketPath(filepath.Join(dev, "manager")), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errs, _ := hive(t, "init", "--reset-admin", "--data-dir", dev); !strings.Contains(errs, "for `hive dev` the manager's data dir is "+filepath.Join(dev, "manager")) {
		t.Errorf("no dev hint: %q", errs)
	}
}

func TestInitResetAdminPrintsTokenAlone(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", server.AdminSocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	var calls []string
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls = append(calls, r.Method+" "+r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(structs.ResetAdminResponse{Secret: "hive_admin_NEW", Revoked: 2})
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	out, errs := mustRun(t, "init", "--reset-admin", "--data-dir", dir)
	if out != "hive_admin_NEW\n" {
		t.Errorf("stdout %q, want the token alone", out)
	}
	if !strings.Contains(errs, "Revoked 2 admin token(s)") || !strings.Contains(errs, "shown only this once") || strings.Contains(errs, "hive_admin_NEW") {
		t.Errorf("stderr %q", errs)
	}
	if !reflect.DeepEqual(calls, []string{"POST /reset-admin"}) {
		t.Errorf("calls %q", calls)
	}
}

func TestManagerFlagChecks(t *testing.T) {
	policy := writeTemp(t, "audit.hcl", []byte("rule {\n  level = \"loud\"\n}\n"), 0o600)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--audit-webhook", "ftp://user:pw@siem/x"}, "invalid --audit-webhook ftp://user:xxxxx@siem/x: use an http:// or https:// URL"},
		{[]string{"--audit-webhook", "siem.example.com"}, "invalid --audit-webhook"},
		{[]string{"--audit-policy", filepath.Join(t.TempDir(), "none.hcl")}, "--audit-policy: open"},
		{[]string{"--audit-policy", policy}, "--audit-policy: "},
		{[]string{"--root-key-rotation", "30s"}, "invalid --root-key-rotation 30s: use at least 1m"},
		{[]string{"--root-key-rotation", "-1h"}, "invalid --root-key-rotation -1h0m0s"},
	}
	dir := t.TempDir()
	for _, tc := range cases {
		for _, base := range [][]string{{"init", "--data-dir", dir, "--advertise", "127.0.0.1"}, {"dev"}} {
			args := append(slices.Clone(base), tc.args...)
			_, errs, code := hive(t, args...)
			if code != 1 || !strings.Contains(errs, tc.want) {
				t.Errorf("hive %s: exit %d, stderr %q, want %q", strings.Join(args, " "), code, errs, tc.want)
			}
			if strings.Contains(errs, ":pw@") {
				t.Errorf("webhook password shown: %q", errs)
			}
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused init wrote %d entries to the data dir", len(entries))
	}

	m := managerFlags{auditPolicy: "p.hcl", auditWebhook: "https://siem/x"}
	var cfg server.Config
	m.apply(&cfg)
	if cfg.RootKeyRotation >= 0 || cfg.AuditPolicyFile != "p.hcl" || cfg.AuditWebhook != "https://siem/x" {
		t.Errorf("0 must mean never (negative for the server): %+v", cfg)
	}
	m.rootKeyRotation = 48 * time.Hour
	m.apply(&cfg)
	if cfg.RootKeyRotation != 48*time.Hour {
		t.Errorf("rotation %s", cfg.RootKeyRotation)
	}

	f := daemonFlags{dataDir: "/d", advertise: "10.0.0.1", autolock: true, unlockKeyFile: "/run/k"}
	if got := f.serverConfig(nil); !got.Autolock || got.UnlockKeyFile != "/run/k" {
		t.Errorf("serverConfig %+v", got)
	}
}
