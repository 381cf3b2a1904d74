package audit

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const testPolicy = `
# Secret values: who read them, with the request, never the response.
rule {
  resources = ["secret/value"]
  actions   = ["read"]
  level     = "request"
}
rule {
  users      = ["alice", "sa:ci/*"]
  namespaces = ["prod"]
  level      = "request-response"
}
rule {
  groups = ["ops"]
  level  = "request"
}
rule {
  users     = ["node:*"]
  resources = ["alloc*"]
  level     = "none"
}
rule {
  users = ["anonymous"]
  level = "metadata"
}
`

func TestPolicyLevel(t *testing.T) {
	p, err := ParsePolicy("audit.hcl", []byte(testPolicy))
	if err != nil {
		t.Fatalf("ParsePolicy: %v", err)
	}
	if len(p.Rules) != 5 {
		t.Fatalf("got %d rules, want 5", len(p.Rules))
	}
	cases := []struct {
		subject              string
		groups               []string
		resource, action, ns string
		want                 Level
	}{
		// First match wins: alice in prod reading a secret value hits rule 1.
		{"user:alice", nil, "secret/value", "read", "prod", LevelRequest},
		{"user:alice", nil, "secret/value", "write", "prod", LevelRequestResponse},
		{"user:alice", nil, "job", "read", "dev", LevelMetadata},
		{"sa:ci/deployer", nil, "job", "write", "prod", LevelRequestResponse},
		{"sa:other/deployer", nil, "job", "write", "prod", LevelMetadata},
		{"user:bob", []string{"dev", "ops"}, "job", "read", "dev", LevelRequest},
		{"user:bob", []string{"dev"}, "job", "read", "dev", LevelMetadata},
		{"node:4f2a", nil, "alloc", "list", "", LevelNone},
		{"node:4f2a", nil, "allocation/status", "write", "", LevelNone},
		{"node:4f2a", nil, "secret/value", "read", "prod", LevelRequest},
		{"node:4f2a", nil, "node", "write", "", LevelMetadata},
		// "alice" names a user, not a node or service account called alice.
		{"node:alice", nil, "job", "read", "prod", LevelMetadata},
		{"anonymous", nil, "job", "read", "", LevelMetadata},
		// Default.
		{"user:carol", nil, "job", "read", "prod", LevelMetadata},
	}
	for _, c := range cases {
		if got := p.Level(c.subject, c.groups, c.resource, c.action, c.ns); got != c.want {
			t.Errorf("Level(%s, %v, %s, %s, %s) = %v, want %v", c.subject, c.groups, c.resource, c.action, c.ns, got, c.want)
		}
	}
}

func TestPolicyWildcardsAndDefault(t *testing.T) {
	var nilPolicy *Policy
	if got := nilPolicy.Level("user:a", nil, "job", "read", "x"); got != LevelMetadata {
		t.Fatalf("nil policy gives %v, want metadata", got)
	}
	empty, err := ParsePolicy("empty.hcl", nil)
	if err != nil || empty.Level("user:a", nil, "job", "read", "x") != LevelMetadata {
		t.Fatalf("empty policy: %v, %v", empty, err)
	}
	p, err := ParsePolicy("p.hcl", []byte(`
rule {
  users = ["*"]
  resources = ["*"]
  actions = ["*"]
  level = "request"
}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"user:x", "node:y", "sa:a/b", "anonymous"} {
		if got := p.Level(subj, nil, "secret/value", "read", ""); got != LevelRequest {
			t.Errorf("%s: got %v, want request from the catch-all", subj, got)
		}
	}
	// A catch-all "none" at the end changes the default.
	quiet, err := ParsePolicy("q.hcl", []byte("rule {\n  level = \"none\"\n}\n"))
	if err != nil || quiet.Level("user:x", nil, "job", "read", "") != LevelNone {
		t.Fatalf("catch-all none: %v", err)
	}
}

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "secret/value", true},
		{"secret/*", "secret/value", true},
		{"secret/*", "secret", false},
		{"*/value", "secret/value", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "acb", false},
		{"a*a", "a", false},
		{"ab*ba", "aba", false},
		{"**", "x", true},
		{"job", "jobs", false},
	}
	for _, c := range cases {
		if got := glob(c.pattern, c.s); got != c.want {
			t.Errorf("glob(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

func TestParsePolicyErrors(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"unknown attribute", "rule {\n  level = \"request\"\n  verbs = [\"read\"]\n}\n", `p.hcl:3:3: Unsupported argument`},
		{"unknown block", "rule {\n  level = \"none\"\n}\nrules {\n}\n", `p.hcl:4:1: Unsupported block type`},
		{"bad level", "rule {\n  users = [\"a\"]\n  level = \"verbose\"\n}\n", `p.hcl:3:11: unknown level "verbose"`},
		{"missing level", "rule {\n  users = [\"a\"]\n}\n", `p.hcl:1:6: Missing required argument`},
		{"not a list", "rule {\n  users = \"alice\"\n  level = \"none\"\n}\n", `p.hcl:2:11: users must be a list of strings`},
		{"empty list", "rule {\n  groups = []\n  level = \"none\"\n}\n", `p.hcl:2:12: groups must not be empty`},
		{"variable", "rule {\n  users = [who]\n  level = \"none\"\n}\n", `p.hcl:2:12: Variables not allowed`},
		{"syntax", "rule {\n  level = \n}\n", `p.hcl:2:`},
		{"top-level attribute", "default = \"none\"\n", `p.hcl:1:1: Unsupported argument`},
		{"label", "rule \"x\" {\n  level = \"none\"\n}\n", `p.hcl:1:6: Extraneous label`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParsePolicy("p.hcl", []byte(c.src))
			if err == nil {
				t.Fatalf("parsed %+v, want an error containing %q", p, c.want)
			}
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T, want *PolicyError", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error\n%v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

func TestLevelText(t *testing.T) {
	for l := LevelNone; l <= LevelRequestResponse; l++ {
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		var back Level
		if err := json.Unmarshal(b, &back); err != nil || back != l {
			t.Fatalf("%v -> %s -> %v, %v", l, b, back, err)
		}
		if p, err := ParseLevel(l.String()); err != nil || p != l {
			t.Fatalf("ParseLevel(%q) = %v, %v", l.String(), p, err)
		}
	}
	if _, err := json.Marshal(Level(9)); err == nil {
		t.Fatal("an invalid level marshaled")
	}
	if _, err := ParseLevel("full"); err == nil {
		t.Fatal(`ParseLevel("full") succeeded`)
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(testPolicy))
	f.Add([]byte("rule {\n  level = \"none\"\n}\n"))
	f.Add([]byte("rule { users = [\"*\"]\n level = 1 }"))
	f.Add([]byte("rule {\n  users = [null]\n  level = \"request\"\n}\n"))
	f.Add([]byte("rule {\n  users = [\"a\", 2, true]\n  level = \"request\"\n}\n"))
	f.Add([]byte("rule {\n  actions = [\"${x}\"]\n  level = \"request\"\n}\n"))
	f.Add([]byte("rule {}\nrule \"x\" {}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := ParsePolicy("fuzz.hcl", src)
		if err != nil {
			if p != nil {
				t.Fatal("ParsePolicy returned a policy with an error")
			}
			_ = err.Error()
			return
		}
		for _, r := range p.Rules {
			if r.Level > LevelRequestResponse {
				t.Fatalf("rule with invalid level %d", r.Level)
			}
		}
		l := p.Level("user:alice", []string{"ops"}, "secret/value", "read", "prod")
		if l > LevelRequestResponse {
			t.Fatalf("Level = %d", l)
		}
	})
}
