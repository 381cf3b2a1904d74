package acl

import (
	"errors"
	"strings"
	"testing"

	"github.com/hivesec/hive/structs"
)

func rule(resources, actions, scope string) structs.ACLRule {
	return structs.ACLRule{
		Resources: strings.Split(resources, ","),
		Actions:   strings.Split(actions, ","),
		Scope:     scope,
	}
}

func mustCompile(t *testing.T, roles []*structs.ACLRole, bindings []*structs.ACLBinding) *Authorizer {
	t.Helper()
	a, err := Compile(roles, bindings)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAuthorizeScopes pins the scope and confinement rules of the package
// comment, one case each.
func TestAuthorizeScopes(t *testing.T) {
	roles := []*structs.ACLRole{
		{Name: "global-jobs", Rules: []structs.ACLRule{rule("job", "read", "global")}},
		{Name: "web-jobs", Rules: []structs.ACLRule{rule("job", "update", "namespace:web")}},
		{Name: "all-ns-jobs", Rules: []structs.ACLRule{rule("job", "delete", "namespace:*")}},
		{Name: "frontend", Rules: []structs.ACLRule{rule("job", "stop", "job:web/frontend")}},
		{Name: "any-frontend", Rules: []structs.ACLRule{rule("job", "create", "job:*/frontend")}},
		{Name: "web-allocs", Rules: []structs.ACLRule{rule("*", "read", "alloc:web/*")}},
		{Name: "nodes", Rules: []structs.ACLRule{rule("node", "read", "global")}},
	}
	bindings := []*structs.ACLBinding{
		{Name: "g", Role: "global-jobs", Subjects: []string{"user:g"}},
		{Name: "g-in-api", Role: "global-jobs", Subjects: []string{"user:gapi"}, Namespace: "api"},
		{Name: "w", Role: "web-jobs", Subjects: []string{"user:w"}},
		{Name: "w-in-api", Role: "web-jobs", Subjects: []string{"user:wapi"}, Namespace: "api"},
		{Name: "w-in-web", Role: "web-jobs", Subjects: []string{"user:wweb"}, Namespace: "web"},
		{Name: "star", Role: "all-ns-jobs", Subjects: []string{"user:star"}},
		{Name: "star-in-db", Role: "all-ns-jobs", Subjects: []string{"user:stardb"}, Namespace: "db"},
		{Name: "f", Role: "frontend", Subjects: []string{"user:f"}},
		{Name: "f-in-api", Role: "frontend", Subjects: []string{"user:fapi"}, Namespace: "api"},
		{Name: "af", Role: "any-frontend", Subjects: []string{"user:af"}},
		{Name: "af-in-db", Role: "any-frontend", Subjects: []string{"user:afdb"}, Namespace: "db"},
		{Name: "wa", Role: "web-allocs", Subjects: []string{"group:wa"}},
		{Name: "n-in-web", Role: "nodes", Subjects: []string{"user:nweb"}, Namespace: "web"},
		{Name: "n", Role: "nodes", Subjects: []string{"user:n"}},
	}
	a := mustCompile(t, roles, bindings)
	for _, tc := range []struct {
		who, res, act, ns, name string
		want                    bool
	}{
		{"user:g", "job", "read", "web", "x", true},
		{"user:g", "job", "read", "", "", true}, // global reaches "" too
		{"user:g", "job", "read", "*", "", true},
		{"user:g", "job", "update", "web", "x", false},
		// A global rule bound in api becomes namespace:api.
		{"user:gapi", "job", "read", "api", "x", true},
		{"user:gapi", "job", "read", "web", "x", false},
		{"user:gapi", "job", "read", "", "", false},
		{"user:gapi", "job", "read", "*", "", false},
		{"user:w", "job", "update", "web", "x", true},
		{"user:w", "job", "update", "web", "", true},
		{"user:w", "job", "update", "api", "x", false},
		{"user:w", "job", "update", "", "x", false}, // namespace rules never reach cluster-wide objects
		{"user:w", "job", "update", "*", "", false}, // nor all namespaces at once
		// namespace:web bound in api applies nowhere; bound in web, as is.
		{"user:wapi", "job", "update", "api", "x", false},
		{"user:wapi", "job", "update", "web", "x", false},
		{"user:wweb", "job", "update", "web", "x", true},
		{"user:star", "job", "delete", "db", "x", true},
		{"user:star", "job", "delete", "*", "", true},
		{"user:star", "job", "delete", "", "x", false},
		{"user:stardb", "job", "delete", "db", "x", true},
		{"user:stardb", "job", "delete", "web", "x", false},
		{"user:stardb", "job", "delete", "*", "", false},
		// Named scopes reach only the named object, only when named.
		{"user:f", "job", "stop", "web", "frontend", true},
		{"user:f", "job", "stop", "web", "backend", false},
		{"user:f", "job", "stop", "web", "", false},
		{"user:f", "job", "stop", "api", "frontend", false},
		{"user:f", "job", "stop", "web", "*", false},
		{"user:fapi", "job", "stop", "web", "frontend", false},
		{"user:fapi", "job", "stop", "api", "frontend", false},
		{"user:af", "job", "create", "db", "frontend", true},
		{"user:af", "job", "create", "*", "frontend", true},
		{"user:af", "job", "create", "db", "other", false},
		{"user:afdb", "job", "create", "db", "frontend", true},
		{"user:afdb", "job", "create", "web", "frontend", false},
		// A named scope's kind bounds a resource wildcard to its family.
		{"group:wa", "alloc", "read", "web", "a1", true},
		{"group:wa", "alloc/logs", "read", "web", "a1", true},
		{"group:wa", "job", "read", "web", "a1", false},
		{"group:wa", "alloc", "read", "api", "a1", false},
		// Cluster-wide objects take a global binding.
		{"user:n", "node", "read", "", "n1", true},
		{"user:nweb", "node", "read", "", "n1", false},
	} {
		got := a.Authorize([]string{tc.who}, tc.res, tc.act, tc.ns, tc.name)
		if got.Allowed != tc.want {
			t.Errorf("%s %s:%s in %q on %q: %+v, want allowed=%v", tc.who, tc.res, tc.act, tc.ns, tc.name, got, tc.want)
		}
	}
}

func TestDecisionNamesGrant(t *testing.T) {
	a := mustCompile(t,
		[]*structs.ACLRole{{Name: "reader", Rules: []structs.ACLRule{rule("job,alloc", "read,list", "global")}}},
		[]*structs.ACLBinding{{Name: "web-readers", Role: "reader", Subjects: []string{"group:web"}, Namespace: "web"}})
	got := a.Authorize([]string{"user:alice", "group:web"}, "job", "list", "web", "")
	want := Decision{Allowed: true, Role: "reader", Binding: "web-readers", Rule: "job,alloc:read,list @ namespace:web"}
	if got != want {
		t.Errorf("decision = %+v, want %+v", got, want)
	}
}

func TestCompileErrors(t *testing.T) {
	ok := &structs.ACLRole{Name: "ok", Rules: []structs.ACLRule{rule("job", "read", "")}}
	for _, tc := range []struct {
		name     string
		roles    []*structs.ACLRole
		bindings []*structs.ACLBinding
		want     string
	}{
		{"builtin name", []*structs.ACLRole{{Name: "admin", Rules: []structs.ACLRule{rule("job", "read", "")}}}, nil, "built-in"},
		{"duplicate role", []*structs.ACLRole{ok, ok}, nil, `role "ok" is defined twice`},
		{"bad rule", []*structs.ACLRole{{Name: "bad", Rules: []structs.ACLRule{rule("jobs", "read", "")}}}, nil, `unknown resource "jobs"`},
		{"bad action", []*structs.ACLRole{{Name: "bad", Rules: []structs.ACLRule{rule("job", "drain", "")}}}, nil, `action "drain"`},
		{"bad scope", []*structs.ACLRole{{Name: "bad", Rules: []structs.ACLRule{rule("job", "read", "ns:web")}}}, nil, `invalid scope "ns:web"`},
		{"no rules", []*structs.ACLRole{{Name: "empty"}}, nil, "has no rules"},
		{"nil role", []*structs.ACLRole{nil}, nil, "nil role"},
		{"unknown role", nil, []*structs.ACLBinding{{Name: "b", Role: "ghost", Subjects: []string{"user:a"}}}, `unknown role "ghost"`},
		{"duplicate binding", []*structs.ACLRole{ok}, []*structs.ACLBinding{
			{Name: "b", Role: "ok", Subjects: []string{"user:a"}},
			{Name: "b", Role: "ok", Subjects: []string{"user:c"}},
		}, `binding "b" is defined twice`},
		{"bad subject", nil, []*structs.ACLBinding{{Name: "b", Role: "viewer", Subjects: []string{"alice"}}}, `invalid subject "alice"`},
		{"bad namespace", nil, []*structs.ACLBinding{{Name: "b", Role: "viewer", Subjects: []string{"user:a"}, Namespace: "*"}}, "invalid namespace name"},
		{"nil binding", nil, []*structs.ACLBinding{nil}, "nil binding"},
	} {
		_, err := Compile(tc.roles, tc.bindings)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Compile error = %v, want one containing %q", tc.name, err, tc.want)
		}
		if tc.name == "builtin name" && !errors.Is(err, ErrBuiltinRole) {
			t.Errorf("%s: %v does not wrap ErrBuiltinRole", tc.name, err)
		}
	}
}

// TestAuthorizerImmutable: changing the records after Compile changes
// nothing the Authorizer decides or reports.
func TestAuthorizerImmutable(t *testing.T) {
	role := &structs.ACLRole{Name: "r", Rules: []structs.ACLRule{rule("job", "read", "namespace:web")}}
	binding := &structs.ACLBinding{Name: "b", Role: "r", Subjects: []string{"user:a"}}
	a := mustCompile(t, []*structs.ACLRole{role}, []*structs.ACLBinding{binding})
	role.Rules[0].Resources[0] = "*"
	role.Rules[0].Scope = "global"
	binding.Subjects[0] = "user:b"
	if !a.Authorize([]string{"user:a"}, "job", "read", "web", "x").Allowed {
		t.Error("lost a grant after the records changed")
	}
	if a.Authorize([]string{"user:a"}, "secret", "read", "web", "x").Allowed ||
		a.Authorize([]string{"user:b"}, "job", "read", "web", "x").Allowed {
		t.Error("gained a grant after the records changed")
	}
	got := a.Role("r")
	if got.Rules[0].Resources[0] != "job" {
		t.Errorf("Role returned %v", got.Rules[0])
	}
	got.Rules[0].Resources[0] = "*"
	if a.Role("r").Rules[0].Resources[0] != "job" {
		t.Error("Role returns the compiled role itself")
	}
	if a.Role("viewer") == nil || a.Role("ghost") != nil {
		t.Error("Role lookup of built-in or unknown role wrong")
	}
}

func TestNilAuthorizerDenies(t *testing.T) {
	var a *Authorizer
	if a.Authorize([]string{"user:a"}, "job", "read", "web", "x").Allowed {
		t.Error("nil authorizer allowed a request")
	}
	if a.List([]string{"user:a"}) != nil {
		t.Error("nil authorizer lists permissions")
	}
	if err := a.CheckGrant([]string{"user:a"}, BuiltinRoles()[2], ""); !errors.Is(err, ErrEscalation) {
		t.Errorf("nil authorizer CheckGrant = %v", err)
	}
}

func TestAuthorizeDoesNotAllocate(t *testing.T) {
	a := mustCompile(t,
		[]*structs.ACLRole{{Name: "r", Rules: []structs.ACLRule{rule("job", "read", "job:*/x"), rule("alloc", "read", "namespace:web")}}},
		[]*structs.ACLBinding{{Name: "b", Role: "r", Subjects: []string{"group:g"}}})
	subjects := []string{"user:a", "group:g"}
	allocs := testing.AllocsPerRun(1000, func() {
		a.Authorize(subjects, "job", "read", "web", "x")
		a.Authorize(subjects, "job", "read", "web", "y")
		a.Authorize(subjects, "alloc", "read", "web", "")
		a.Authorize(subjects, "bogus", "read", "web", "")
	})
	if allocs != 0 {
		t.Errorf("Authorize allocates %.1f times per 4 calls", allocs)
	}
}
