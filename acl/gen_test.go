package acl

import (
	"math/rand/v2"
	"strings"

	"github.com/hivesec/hive/structs"
)

// Random roles, bindings and requests for the oracle and property tests.
// The pools are small so that random requests often hit a rule.
var (
	genNamespaces = []string{"web", "api", "db"}
	genNames      = []string{"a", "b", "frontend"}
	genSubjects   = []string{"user:alice", "user:bob", "user:carol", "group:devs", "group:ops", "sa:web/ci"}
	// Request values also include ones no rule mentions, "" and "*".
	reqNamespaces = []string{"", "web", "api", "db", "other", "*"}
	reqNames      = []string{"", "a", "b", "frontend", "zzz", "*"}
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// family returns kind and its sub-resources: what a named scope of kind
// reaches.
func family(kind string) []string {
	var out []string
	for _, res := range structs.ACLResourceNames() {
		if res == kind || strings.HasPrefix(res, kind+"/") {
			out = append(out, res)
		}
	}
	return out
}

func randRule(r *rand.Rand) structs.ACLRule {
	all := structs.ACLResourceNames()
	var rule structs.ACLRule
	var pool []string // resources the rule may list
	switch x := r.IntN(100); {
	case x < 25:
		rule.Scope = pick(r, []string{"", "global"})
		pool = all
	case x < 60:
		rule.Scope = "namespace:" + pick(r, append([]string{"*"}, genNamespaces...))
		pool = all
	default:
		kind := pick(r, all)
		for kind == "namespace" {
			kind = pick(r, all)
		}
		ns := pick(r, append([]string{"*"}, genNamespaces...))
		name := pick(r, append([]string{"*"}, genNames...))
		rule.Scope = kind + ":" + ns + "/" + name
		pool = family(kind)
	}
	if r.IntN(10) == 0 {
		rule.Resources = []string{"*"}
	} else {
		for n := 1 + r.IntN(3); n > 0; n-- {
			rule.Resources = append(rule.Resources, pick(r, pool))
		}
	}
	if r.IntN(7) == 0 {
		rule.Actions = []string{"*"}
	} else {
		var acts []string
		for _, res := range rule.Resources {
			if res == "*" {
				acts = append(acts, structs.ACLActionNames()...)
			} else {
				acts = append(acts, structs.ACLResources[res]...)
			}
		}
		for n := 1 + r.IntN(3); n > 0; n-- {
			rule.Actions = append(rule.Actions, pick(r, acts))
		}
	}
	return rule
}

func randRole(r *rand.Rand, name string) *structs.ACLRole {
	role := &structs.ACLRole{Name: name}
	for n := 1 + r.IntN(3); n > 0; n-- {
		role.Rules = append(role.Rules, randRule(r))
	}
	return role
}

// randWorld returns random roles and bindings that Compile accepts
// (duplicate resources, actions and subjects aside, which randRule can
// produce and Validate accepts for resources and actions).
func randWorld(r *rand.Rand, nRoles, nBindings int) ([]*structs.ACLRole, []*structs.ACLBinding) {
	var roles []*structs.ACLRole
	names := []string{RoleAdmin, RoleDeveloper, RoleViewer}
	for i := range nRoles {
		role := randRole(r, "role-"+string(rune('a'+i)))
		roles = append(roles, role)
		names = append(names, role.Name)
	}
	var bindings []*structs.ACLBinding
	for i := range nBindings {
		b := &structs.ACLBinding{Name: "b" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Role: pick(r, names)}
		// admin is rare, or every request would be allowed.
		for b.Role == RoleAdmin && r.IntN(4) != 0 {
			b.Role = pick(r, names)
		}
		perm := r.Perm(len(genSubjects))
		for _, j := range perm[:1+r.IntN(2)] {
			b.Subjects = append(b.Subjects, genSubjects[j])
		}
		if r.IntN(10) < 6 {
			b.Namespace = pick(r, genNamespaces)
		}
		bindings = append(bindings, b)
	}
	return roles, bindings
}

type request struct {
	subjects                          []string
	resource, action, namespace, name string
}

func randRequest(r *rand.Rand) request {
	var q request
	perm := r.Perm(len(genSubjects))
	q.subjects = []string{}
	for _, j := range perm[:r.IntN(4)] {
		q.subjects = append(q.subjects, genSubjects[j])
	}
	all := structs.ACLResourceNames()
	switch x := r.IntN(100); {
	case x < 2:
		q.resource, q.action = "bogus", "read"
	case x < 6:
		q.resource, q.action = pick(r, all), pick(r, append(structs.ACLActionNames(), "*"))
	default:
		q.resource = pick(r, all)
		q.action = pick(r, structs.ACLResources[q.resource])
	}
	q.namespace = pick(r, reqNamespaces)
	q.name = pick(r, reqNames)
	return q
}
