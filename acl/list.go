package acl

import (
	"sort"

	"github.com/hivesec/hive/structs"
)

// Permission is one thing subjects may do: Actions on Resource within
// Scope (as the binding confined it), granted by Role through Binding. It
// is a line of `hive auth can-i --list`.
type Permission struct {
	Resource string
	Actions  []string
	Scope    string
	Role     string
	Binding  string
}

// List returns everything subjects may do, one Permission per resource,
// scope, role and binding, sorted by those fields in that order. A rule's
// wildcard stays a wildcard ("*" covers resources added later, so spelling
// it out would understate it); an action that does not exist on a resource
// is left out (the developer role's "stop" on deployments grants nothing).
// A grant reached through several subjects (a user and its group bound by
// one binding) is listed once.
func (a *Authorizer) List(subjects []string) []Permission {
	if a == nil {
		return nil
	}
	type key struct{ resource, scope, role, binding string }
	actions := map[key]map[string]bool{}
	seen := map[*grant]bool{}
	for _, s := range subjects {
		i, ok := a.subjectIdx[s]
		if !ok {
			continue
		}
		for _, gr := range a.grants[i] {
			if seen[gr] {
				continue
			}
			seen[gr] = true
			resources := gr.resources
			if gr.anyResource {
				resources = []string{structs.ACLWildcard}
			}
			scope := gr.scope.String()
			for _, res := range resources {
				k := key{res, scope, gr.origin.role, gr.origin.binding}
				for _, act := range gr.actions {
					if gr.anyAction {
						act = structs.ACLWildcard
					} else if res != structs.ACLWildcard && !structs.ValidACLAction(res, act) {
						continue
					}
					if actions[k] == nil {
						actions[k] = map[string]bool{}
					}
					actions[k][act] = true
				}
			}
		}
	}
	out := make([]Permission, 0, len(actions))
	for k, set := range actions {
		p := Permission{Resource: k.resource, Scope: k.scope, Role: k.role, Binding: k.binding}
		for act := range set {
			p.Actions = append(p.Actions, act)
		}
		sort.Strings(p.Actions)
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		x, y := out[i], out[j]
		if x.Resource != y.Resource {
			return x.Resource < y.Resource
		}
		if x.Scope != y.Scope {
			return x.Scope < y.Scope
		}
		if x.Role != y.Role {
			return x.Role < y.Role
		}
		return x.Binding < y.Binding
	})
	return out
}
