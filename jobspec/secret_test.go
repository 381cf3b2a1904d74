package jobspec

import (
	"strings"
	"testing"

	"github.com/hivesec/hive/structs"
)

// TestSecretDefaults pins what a secret block means when it sets only
// what it must.
func TestSecretDefaults(t *testing.T) {
	job, err := Parse("s.hcl", []byte(wrap("      secret \"db\" {\n        name = \"db-password\"\n        key  = \"password\"\n        file = \"db.txt\"\n      }\n      secret \"e\" {\n        name = \"db-password\"\n        key  = \"password\"\n        env  = \"DB\"\n      }")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ss := job.Groups[0].Tasks[0].Secrets
	if len(ss) != 2 {
		t.Fatalf("secrets %+v", ss)
	}
	want := structs.TaskSecret{Label: "db", Name: "db-password", Key: "password", File: "db.txt", Mode: 0o400, ChangeMode: structs.SecretChangeRestart}
	if *ss[0] != want {
		t.Errorf("file secret %+v, want %+v", *ss[0], want)
	}
	want = structs.TaskSecret{Label: "e", Name: "db-password", Key: "password", Env: "DB", ChangeMode: structs.SecretChangeRestart}
	if *ss[1] != want {
		t.Errorf("env secret %+v, want %+v", *ss[1], want)
	}
}

func TestNormalizeSignal(t *testing.T) {
	for in, want := range map[string]string{"SIGHUP": "SIGHUP", "hup": "SIGHUP", " sigusr1 ": "SIGUSR1", "SIGRTMIN": "", "": "", "SIG": ""} {
		got, ok := NormalizeSignal(in)
		if ok != (want != "") || (ok && got != want) {
			t.Errorf("NormalizeSignal(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestCheckSecretFile(t *testing.T) {
	good := []string{"db.txt", "tls/api.key", ".hidden", "a-b_c.d/e", "..x", "x.."}
	bad := []string{"", "/abs", "../x", "a/../b", "a/..", "./x", "a/./b", "a//b", "a/", ".", "a\x00b", string(make([]byte, 2000))}
	for _, f := range good {
		if msg := checkSecretFile(f); msg != "" {
			t.Errorf("checkSecretFile(%q) = %q, want ok", f, msg)
		}
	}
	for _, f := range bad {
		if msg := checkSecretFile(f); msg == "" {
			t.Errorf("checkSecretFile(%q) passed", f)
		}
	}
}

func TestSecretEnvChangeModeWarning(t *testing.T) {
	src := wrap("      secret \"db\" {\n        name        = \"db\"\n        key         = \"k\"\n        env         = \"DB\"\n        change_mode = \"noop\"\n      }\n      secret \"f\" {\n        name        = \"db\"\n        key         = \"k\"\n        file        = \"f\"\n        change_mode = \"noop\"\n      }")
	_, warns, err := ParseWithWarnings("w.hcl", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || !strings.HasPrefix(warns[0].String(), `w.hcl:9:23: secret "db": env DB gets a new value only when the task restarts`) {
		t.Errorf("warnings %v", warns)
	}
}
