package acl

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hivesec/hive/structs"
)

// The validation in structs/acl.go is tested here: the brief for this
// change allows only that one file in structs.

func TestParseACLScope(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want structs.ACLScope
		text string // canonical form
	}{
		{"", structs.ACLScope{Kind: structs.ACLScopeGlobal}, "global"},
		{"global", structs.ACLScope{Kind: structs.ACLScopeGlobal}, "global"},
		{"namespace:web", structs.ACLScope{Kind: structs.ACLScopeNamespace, Namespace: "web"}, "namespace:web"},
		{"namespace:*", structs.ACLScope{Kind: structs.ACLScopeNamespace, Namespace: "*"}, "namespace:*"},
		{"job:web/frontend", structs.ACLScope{Kind: structs.ACLScopeNamed, Namespace: "web", Resource: "job", Name: "frontend"}, "job:web/frontend"},
		{"job:*/frontend", structs.ACLScope{Kind: structs.ACLScopeNamed, Namespace: "*", Resource: "job", Name: "frontend"}, "job:*/frontend"},
		{"alloc/logs:web/*", structs.ACLScope{Kind: structs.ACLScopeNamed, Namespace: "web", Resource: "alloc/logs", Name: "*"}, "alloc/logs:web/*"},
		{"secret:db/tls.key_v2", structs.ACLScope{Kind: structs.ACLScopeNamed, Namespace: "db", Resource: "secret", Name: "tls.key_v2"}, "secret:db/tls.key_v2"},
	} {
		got, err := structs.ParseACLScope(tc.in)
		if err != nil || got != tc.want || got.String() != tc.text {
			t.Errorf("ParseACLScope(%q) = %+v %q, %v; want %+v %q", tc.in, got, got.String(), err, tc.want, tc.text)
		}
	}
	for _, in := range []string{
		"Global", "namespace", "namespace:", "namespace:Web", "namespace:web/x", "namespace:a/b",
		"job", "job:web", "job:/x", "job:web/", "jobs:web/x", "job:web/Frontend", "job:web/a/b",
		"job:we b/x", "*:web/x", ":web/x", "namespace:**", "job:web/-x",
	} {
		if s, err := structs.ParseACLScope(in); err == nil {
			t.Errorf("ParseACLScope(%q) = %+v, want an error", in, s)
		}
	}
}

func TestScopeCovers(t *testing.T) {
	alloc := structs.ACLScope{Kind: structs.ACLScopeNamed, Resource: "alloc"}
	for res, want := range map[string]bool{"alloc": true, "alloc/logs": true, "alloc/exec": true, "allocs": false, "job": false, "": false} {
		if alloc.Covers(res) != want {
			t.Errorf("alloc scope covers %q = %v", res, !want)
		}
	}
}

func TestRuleValidate(t *testing.T) {
	for _, tc := range []struct {
		rule  structs.ACLRule
		field string // "" = valid
	}{
		{rule("job", "read", ""), ""},
		{rule("*", "*", "global"), ""},
		{rule("*", "drain", "namespace:*"), ""},
		{rule("job,node", "read,drain", ""), ""}, // drain exists on node
		{rule("alloc,alloc/logs", "read", "alloc:web/a1"), ""},
		{rule("*", "read", "secret:web/*"), ""},
		{rule("jobs", "read", ""), "resources"},
		{structs.ACLRule{Actions: []string{"read"}}, "resources"},
		{rule("job", "fly", ""), "actions"},
		{rule("job", "drain", ""), "actions"},
		{rule("*", "fly", ""), "actions"},
		{structs.ACLRule{Resources: []string{"job"}}, "actions"},
		{rule("job", "read", "web"), "scope"},
		{rule("secret/value", "read", "job:web/x"), "resources"},
		{rule("alloc", "read", "alloc/logs:web/x"), "resources"},
	} {
		err := tc.rule.Validate()
		var fe *structs.FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.rule.String(), err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("%s: error %v, want one about %s", tc.rule.String(), err, tc.field)
		}
	}
}

func TestRecordValidate(t *testing.T) {
	long := strings.Repeat("a", 64)
	for _, tc := range []struct {
		name  string
		v     interface{ Validate() error }
		field string
	}{
		{"role ok", &structs.ACLRole{Name: "ops.team_2", Rules: []structs.ACLRule{rule("job", "read", "")}}, ""},
		{"role name", &structs.ACLRole{Name: "Ops", Rules: []structs.ACLRule{rule("job", "read", "")}}, "name"},
		{"role name long", &structs.ACLRole{Name: long, Rules: []structs.ACLRule{rule("job", "read", "")}}, "name"},
		{"role name dot", &structs.ACLRole{Name: ".x", Rules: []structs.ACLRule{rule("job", "read", "")}}, "name"},
		{"role no rules", &structs.ACLRole{Name: "r"}, "rule"},
		{"role description", &structs.ACLRole{Name: "r", Description: strings.Repeat("x", 2000), Rules: []structs.ACLRule{rule("job", "read", "")}}, "description"},
		{"role bad rule", &structs.ACLRole{Name: "r", Rules: []structs.ACLRule{rule("job", "read", ""), rule("job", "read", "x")}}, "scope"},
		{"binding ok", &structs.ACLBinding{Name: "b", Role: "r", Subjects: []string{"user:a", "group:g", "sa:web/ci"}, Namespace: "web"}, ""},
		{"binding name", &structs.ACLBinding{Name: "", Role: "r", Subjects: []string{"user:a"}}, "name"},
		{"binding role", &structs.ACLBinding{Name: "b", Role: "R", Subjects: []string{"user:a"}}, "role"},
		{"binding no subjects", &structs.ACLBinding{Name: "b", Role: "r"}, "subjects"},
		{"binding subject kind", &structs.ACLBinding{Name: "b", Role: "r", Subjects: []string{"node:a"}}, "subjects"},
		{"binding sa without ns", &structs.ACLBinding{Name: "b", Role: "r", Subjects: []string{"sa:ci"}}, "subjects"},
		{"binding sa bad ns", &structs.ACLBinding{Name: "b", Role: "r", Subjects: []string{"sa:a_b/ci"}}, "subjects"},
		{"binding user empty", &structs.ACLBinding{Name: "b", Role: "r", Subjects: []string{"user:"}}, "subjects"},
		{"binding duplicate subject", &structs.ACLBinding{Name: "b", Role: "r", Subjects: []string{"user:a", "user:a"}}, "subjects"},
		{"binding namespace", &structs.ACLBinding{Name: "b", Role: "r", Subjects: []string{"user:a"}, Namespace: "web_1"}, "namespace"},
		{"user ok", &structs.User{Name: "bob.smith"}, ""},
		{"user name", &structs.User{Name: "Bob"}, "name"},
		{"group ok", &structs.Group{Name: "ops", Members: []string{"a", "b"}}, ""},
		{"group member", &structs.Group{Name: "ops", Members: []string{"a", "B"}}, "members"},
		{"group duplicate member", &structs.Group{Name: "ops", Members: []string{"a", "a"}}, "members"},
		{"group name", &structs.Group{Name: "o p s"}, "name"},
		{"sa ok", &structs.ServiceAccount{Namespace: "web", Name: "ci"}, ""},
		{"sa namespace", &structs.ServiceAccount{Namespace: "", Name: "ci"}, "namespace"},
		{"sa name", &structs.ServiceAccount{Namespace: "web", Name: "CI"}, "name"},
		{"sa description", &structs.ServiceAccount{Namespace: "web", Name: "ci", Description: strings.Repeat("x", 1025)}, "description"},
	} {
		err := tc.v.Validate()
		var fe *structs.FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("%s: error %v, want one about %s", tc.name, err, tc.field)
		}
	}
}

func TestUserSubjects(t *testing.T) {
	groups := []*structs.Group{
		{Name: "devs", Members: []string{"alice", "bob"}},
		{Name: "ops", Members: []string{"carol"}},
		{Name: "all", Members: []string{"carol", "alice"}},
	}
	u := &structs.User{Name: "alice"}
	if got := u.Subjects(groups); !slices.Equal(got, []string{"user:alice", "group:devs", "group:all"}) {
		t.Errorf("Subjects = %v", got)
	}
	u.Disabled = true
	if got := u.Subjects(groups); got != nil {
		t.Errorf("disabled user has subjects %v", got)
	}
	if s := structs.ServiceAccountSubject("web", "ci"); s != "sa:web/ci" || structs.ValidateSubject(s) != nil {
		t.Errorf("service account subject %q", s)
	}
}
