package audit

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newToken makes a token of the documented shape hive_<kind>_<random>_<crc32>
// (see crypto/token) without importing that package.
func newToken(t *testing.T, kind string) string {
	t.Helper()
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	body := "hive_" + kind + "_" + base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding).EncodeToString(b)
	return fmt.Sprintf("%s_%08x", body, crc32.ChecksumIEEE([]byte(body)))
}

func TestRedact(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{`{"name":"db","password":"hunter2"}`, `{"name":"db","password":"[redacted]"}`},
		{`{"Secret":{"a":1},"N":1}`, `{"N":1,"Secret":"[redacted]"}`},
		{`{"spec":{"data":{"k":"v"},"keys":["a"],"api_key":"x","PrivateKey":"p","passwd":"p","unlock_key":"u"}}`,
			`{"spec":{"PrivateKey":"[redacted]","api_key":"[redacted]","data":"[redacted]","keys":"[redacted]","passwd":"[redacted]","unlock_key":"[redacted]"}}`},
		{`[{"values":[1,2]},{"credentials":"c","value":null}]`, `[{"values":"[redacted]"},{"credentials":"[redacted]","value":"[redacted]"}]`},
		{`{"n":12345678901234567890.5,"ok":true,"s":"<a&b>"}`, `{"n":12345678901234567890.5,"ok":true,"s":"<a&b>"}`},
		{`{"note":"use hive_session_abcdefghijklmnopqrstuvwxyz234567_0a1b2c3d now"}`,
			`{"note":"use hive_session_[redacted] now"}`},
		{`"HIVE1-ABCDEFGHIJKLMNOPQRSTUVWXYZ234567ABCDEFGHIJKLMNOPQRST-abcdefghijklmnopqrstuvwxyz"`, `"HIVE1-[redacted]"`},
		{`not json password=hunter2`, `{"redacted":"non-json body of 25 bytes"}`},
		{`{"a":1} {"password":"x"}`, `{"redacted":"non-json body of 24 bytes"}`},
		{`{"a":`, `{"redacted":"non-json body of 5 bytes"}`},
	}
	for _, c := range cases {
		got := Redact([]byte(c.in))
		if string(got) != c.want {
			t.Errorf("Redact(%s)\n got %s\nwant %s", c.in, got, c.want)
		}
		if !json.Valid(got) {
			t.Errorf("Redact(%s) = %s is not valid JSON", c.in, got)
		}
		if again := Redact(got); !bytes.Equal(again, got) {
			t.Errorf("Redact is not idempotent on %s: %s", got, again)
		}
	}
	for _, empty := range []string{"", "  \n"} {
		if got := Redact([]byte(empty)); got != nil {
			t.Errorf("Redact(%q) = %s, want nil", empty, got)
		}
	}
}

func TestRedactToken(t *testing.T) {
	real := newToken(t, "session")
	cases := map[string]string{
		real:                                     "hive_session_[redacted]",
		"Bearer " + real + ".":                   "Bearer hive_session_[redacted].",
		"hive_admin_abc":                         "hive_admin_[redacted]", // truncated still goes
		"a hive_sa_x_y and HIVE1-PIN-secret end": "a hive_sa_[redacted] and HIVE1-[redacted] end",
		"hive1-abc-def":                          "hive1-[redacted]",
		"inet hive_e2e and hive_ and hive_x_ HIVE1": "inet hive_e2e and hive_ and hive_x_ HIVE1",
		"/v1/token/hive_user_q2w3e4r5_deadbeef":     "/v1/token/hive_user_[redacted]",
		"plain text":                                "plain text",
	}
	for in, want := range cases {
		if got := RedactToken(in); got != want {
			t.Errorf("RedactToken(%q) = %q, want %q", in, got, want)
		}
	}
}

// The end-to-end promise: whatever callers put in an entry, the files
// never hold a password, a secret value or a token.
func TestWriterNeverWritesSecrets(t *testing.T) {
	session := newToken(t, "session")
	const password = "correct-horse-battery-staple"
	const secretValue = "s3cr3t-v4lu3-do-not-log"
	const joinSecret = "HIVE1-ABCDEFGHIJKLMNOPQRSTUVWXYZ234567ABCDEFGHIJKLMNOPQRST-qwertyuiopasdfghjklzxcvbnm"
	randomPart := strings.TrimPrefix(session, "hive_session_")[:32]

	dir := t.TempDir()
	w := openTest(t, dir, WriterOptions{MaxBytes: 4096})
	bodies := []string{
		`{"user":"alice","password":"` + password + `"}`,
		`{"namespace":"prod","name":"db","data":{"DB_PASSWORD":"` + secretValue + `"}}`,
		`{"secret":{"value":"` + secretValue + `"}}`,
		`{"token":"` + session + `"}`,
		`{"comment":"logged in with ` + session + `","join":"` + joinSecret + `"}`,
		`password=` + password + `&token=` + session, // not JSON
		`{"items":[{"key":"` + secretValue + `"}]}`,
	}
	for i, b := range bodies {
		for _, lvl := range []Level{LevelRequest, LevelRequestResponse} {
			e := testEntry(i)
			e.Level = lvl
			e.Request = json.RawMessage(b)
			e.Response = json.RawMessage(b)
			e.Path = "/v1/secret/prod/db?token=" + session
			e.Reason = "token " + session + " rejected"
			e.Groups = []string{"ops", session}
			if err := w.Write(e); err != nil {
				t.Fatalf("Write(%s): %v", b, err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := Files(dir)
	if err != nil || len(files) < 2 {
		t.Fatalf("Files = %v, %v; want rotation to have happened", files, err)
	}
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	for _, s := range []string{password, secretValue, session, randomPart, joinSecret, "qwertyuiopasdfghjklzxcvbnm"} {
		if bytes.Contains(all, []byte(s)) {
			t.Errorf("audit files contain %q", s)
		}
	}
	// The redaction did happen, rather than the entries being dropped.
	for _, s := range []string{`"password":"[redacted]"`, "hive_session_[redacted]", "non-json body"} {
		if !bytes.Contains(all, []byte(s)) {
			t.Errorf("audit files do not contain %q", s)
		}
	}
	if _, err := Verify(files...); err != nil {
		t.Fatal(err)
	}
	// Nothing else was left in the directory.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "audit.lock" && !strings.HasSuffix(e.Name(), ".log") {
			t.Errorf("unexpected file %s", filepath.Join(dir, e.Name()))
		}
	}
}
