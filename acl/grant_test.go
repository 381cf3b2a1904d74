package acl

import (
	"errors"
	"strings"
	"testing"

	"github.com/hivesec/hive/structs"
)

func TestCheckGrant(t *testing.T) {
	a := mustCompile(t,
		[]*structs.ACLRole{
			{Name: "all-ns", Rules: []structs.ACLRule{rule("*", "*", "namespace:*")}},
			{Name: "jobs-web", Rules: []structs.ACLRule{rule("job", "read,list,create,update,delete,stop", "namespace:web")}},
			{Name: "fe", Rules: []structs.ACLRule{rule("job", "*", "job:web/frontend")}},
		},
		[]*structs.ACLBinding{
			{Name: "root", Role: RoleAdmin, Subjects: []string{"user:root"}},
			{Name: "devs", Role: RoleDeveloper, Subjects: []string{"group:devs"}},
			{Name: "web-admin", Role: RoleAdmin, Subjects: []string{"user:webadmin"}, Namespace: "web"},
			{Name: "web-dev", Role: RoleDeveloper, Subjects: []string{"user:webdev"}, Namespace: "web"},
			{Name: "nsstar", Role: "all-ns", Subjects: []string{"user:nsstar"}},
			{Name: "jobber", Role: "jobs-web", Subjects: []string{"user:jobber"}},
			{Name: "fe", Role: "fe", Subjects: []string{"user:fe"}},
		})
	builtin := map[string]*structs.ACLRole{}
	for _, r := range BuiltinRoles() {
		builtin[r.Name] = r
	}
	custom := func(rules ...structs.ACLRule) *structs.ACLRole {
		return &structs.ACLRole{Name: "custom", Rules: rules}
	}
	dev := []string{"user:dan", "group:devs"}
	for _, tc := range []struct {
		name    string
		grantor []string
		role    *structs.ACLRole
		ns      string
		missing string // "" = allowed; else the permission the error names
	}{
		{"developer cannot grant admin to itself", dev, builtin[RoleAdmin], "", "*:* @ global"},
		{"developer cannot grant admin in a namespace", dev, builtin[RoleAdmin], "web", "*:* @ namespace:web"},
		{"developer can pass developer on", dev, builtin[RoleDeveloper], "", ""},
		{"developer can grant developer in a namespace", dev, builtin[RoleDeveloper], "web", ""},
		{"developer cannot grant viewer, which reads policies", dev, builtin[RoleViewer], "", "policy:read @ global"},
		{"developer cannot grant role changes", dev, custom(rule("role", "update", "")), "", "role:update @ global"},
		{"developer cannot grant secret values", dev, custom(rule("secret/value", "read", "namespace:web")), "", "secret/value:read @ namespace:web"},
		{"developer can grant logs of one alloc", dev, custom(rule("alloc/logs", "read", "alloc:web/a1")), "", ""},
		{"developer: an action a resource lacks needs nothing", dev, custom(rule("deployment,job", "stop", "")), "", ""},
		{"admin can grant admin", []string{"user:root"}, builtin[RoleAdmin], "", ""},
		{"admin can grant anything", []string{"user:root"}, custom(rule("*", "keyring,drain", "namespace:*"), rule("secret", "*", "secret:*/db")), "web", ""},
		{"namespaced admin can grant admin there", []string{"user:webadmin"}, builtin[RoleAdmin], "web", ""},
		{"namespaced admin cannot grant admin elsewhere", []string{"user:webadmin"}, builtin[RoleAdmin], "api", "*:* @ namespace:api"},
		{"namespaced admin cannot grant global", []string{"user:webadmin"}, builtin[RoleAdmin], "", "*:* @ global"},
		{"namespaced admin cannot grant developer globally", []string{"user:webadmin"}, builtin[RoleDeveloper], "", "job:read @ global"},
		{"namespaced admin can grant namespace:* confined to its namespace", []string{"user:webadmin"}, custom(rule("*", "*", "namespace:*")), "web", ""},
		{"namespaced admin cannot grant namespace:* globally", []string{"user:webadmin"}, custom(rule("job", "read", "namespace:*")), "", "job:read @ namespace:*"},
		{"a rule the binding drops needs nothing", []string{"user:webadmin"}, custom(rule("job", "read", "namespace:api")), "web", ""},
		{"namespaced developer cannot read nodes cluster-wide", []string{"user:webdev"}, custom(rule("node", "read", "")), "", "node:read @ global"},
		{"namespace:* grantor: namespace:* ok", []string{"user:nsstar"}, custom(rule("*", "*", "namespace:*")), "", ""},
		{"namespace:* grantor: admin in a namespace ok", []string{"user:nsstar"}, builtin[RoleAdmin], "db", ""},
		{"namespace:* grantor cannot grant global", []string{"user:nsstar"}, custom(rule("job", "read", "global")), "", "job:read @ global"},
		{"namespace:* grantor can grant named anywhere", []string{"user:nsstar"}, custom(rule("job", "read", "job:*/x")), "", ""},
		{"concrete actions do not cover a wildcard", []string{"user:jobber"}, custom(rule("job", "*", "namespace:web")), "", "job:* @ namespace:web"},
		{"concrete resource does not cover a wildcard", []string{"user:jobber"}, custom(rule("*", "read", "namespace:web")), "", "*:read @ namespace:web"},
		{"namespace grantor: same namespace ok", []string{"user:jobber"}, custom(rule("job", "read,stop", "namespace:web")), "", ""},
		{"namespace grantor cannot grant namespace:*", []string{"user:jobber"}, custom(rule("job", "read", "namespace:*")), "", "job:read @ namespace:*"},
		{"namespace grantor can grant a named job there", []string{"user:jobber"}, custom(rule("job", "update", "job:web/frontend")), "", ""},
		{"namespace grantor cannot grant a named job anywhere", []string{"user:jobber"}, custom(rule("job", "update", "job:*/frontend")), "", "job:update @ job:*/frontend"},
		{"namespace grantor: global rule bound there ok", []string{"user:jobber"}, custom(rule("job", "list", "")), "web", ""},
		{"names the first missing permission", []string{"user:jobber"}, custom(rule("job", "read", "namespace:web"), rule("job,alloc", "read,stop", "namespace:web")), "", "alloc:read @ namespace:web"},
		{"named grantor: same object ok", []string{"user:fe"}, custom(rule("job", "stop,read", "job:web/frontend")), "", ""},
		{"named grantor: wildcard action held as wildcard", []string{"user:fe"}, custom(rule("job", "*", "job:web/frontend")), "web", ""},
		{"named grantor cannot grant every name", []string{"user:fe"}, custom(rule("job", "stop", "job:web/*")), "", "job:stop @ job:web/*"},
		{"named grantor cannot grant the namespace", []string{"user:fe"}, custom(rule("job", "stop", "namespace:web")), "", "job:stop @ namespace:web"},
		{"named grantor cannot grant another object", []string{"user:fe"}, custom(rule("job", "stop", "job:web/backend")), "", "job:stop @ job:web/backend"},
		{"nobody grants nothing", nil, builtin[RoleViewer], "web", "job:read @ namespace:web"},
		{"stranger grants nothing", []string{"user:stranger"}, custom(rule("event", "list", "namespace:web")), "", "event:list @ namespace:web"},
	} {
		err := a.CheckGrant(tc.grantor, tc.role, tc.ns)
		if tc.missing == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var ee *EscalationError
		if !errors.As(err, &ee) || !errors.Is(err, ErrEscalation) {
			t.Errorf("%s: error %v, want an escalation error", tc.name, err)
			continue
		}
		if got := ee.Resource + ":" + ee.Action + " @ " + ee.Scope; got != tc.missing {
			t.Errorf("%s: names %q, want %q (%v)", tc.name, got, tc.missing, err)
		}
		if !strings.Contains(err.Error(), tc.missing) || !strings.Contains(err.Error(), tc.role.Name) {
			t.Errorf("%s: message %q does not name %q and the role", tc.name, err, tc.missing)
		}
	}
}

func TestCheckGrantInvalid(t *testing.T) {
	a := builtinAuthorizer(t)
	root := []string{"user:root"}
	for _, tc := range []struct {
		name string
		role *structs.ACLRole
		ns   string
		want string
	}{
		{"nil role", nil, "", "no role"},
		{"invalid rule", &structs.ACLRole{Name: "x", Rules: []structs.ACLRule{rule("job", "fly", "")}}, "", `action "fly"`},
		{"bad namespace", BuiltinRoles()[2], "Web", "invalid namespace name"},
	} {
		err := a.CheckGrant(root, tc.role, tc.ns)
		if err == nil || errors.Is(err, ErrEscalation) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a validation error containing %q", tc.name, err, tc.want)
		}
	}
}
