package acl

import "github.com/hivesec/hive/structs"

// Built-in role names. Compile always includes these roles and refuses
// user-supplied roles with the same names, so "admin" means the same thing
// in every cluster.
const (
	RoleAdmin     = "admin"
	RoleDeveloper = "developer"
	RoleViewer    = "viewer"
)

// BuiltinRoles returns the built-in roles, freshly allocated so callers may
// change their copies. They are plain data, compiled like any other role:
//
//   - admin: every action on every resource, globally ("*" / "*" / global).
//     Bound in a namespace it is that namespace's owner: everything there,
//     nothing cluster-wide.
//   - developer: runs workloads. read, list, create, update and stop on
//     jobs and allocations; read, list and update on deployments; read,
//     list and create on evaluations (forcing one); reading allocation
//     logs; read and list on secrets (names and metadata, never
//     secret/value), namespaces, nodes, events, images and network
//     policies (which decide what their allocations may reach; changing
//     them is the namespace owner's or an administrator's). Nothing on
//     roles, bindings, users, groups, service accounts, tokens, policies,
//     audit or operator, so a developer can neither give itself more nor
//     change anyone else's access; no alloc/exec, which is a shell.
//   - viewer: read and list on every resource except secret/value,
//     alloc/logs, alloc/exec, audit and token: it sees what exists and its
//     state, never a secret value, log output or a token.
//
// A resource added to structs.ACLResources is not given to developer or
// viewer automatically; TestViewerCoversEveryResource fails until someone
// decides whether viewers may see it.
func BuiltinRoles() []*structs.ACLRole {
	return []*structs.ACLRole{
		{
			Name:        RoleAdmin,
			Description: "every action on every resource",
			BuiltIn:     true,
			Rules: []structs.ACLRule{
				{Resources: []string{"*"}, Actions: []string{"*"}, Scope: "global"},
			},
		},
		{
			Name:        RoleDeveloper,
			Description: "runs jobs and reads what they need; no secret values, no access control",
			BuiltIn:     true,
			Rules: []structs.ACLRule{
				{Resources: []string{"job", "alloc"}, Actions: []string{"read", "list", "create", "update", "stop"}, Scope: "global"},
				{Resources: []string{"deployment"}, Actions: []string{"read", "list", "update"}, Scope: "global"},
				{Resources: []string{"evaluation"}, Actions: []string{"read", "list", "create"}, Scope: "global"},
				{Resources: []string{"alloc/logs"}, Actions: []string{"read"}, Scope: "global"},
				{Resources: []string{"secret", "namespace", "node", "event", "image", "netpol"}, Actions: []string{"read", "list"}, Scope: "global"},
			},
		},
		{
			Name:        RoleViewer,
			Description: "reads and lists everything but secret values, logs, exec, audit and tokens",
			BuiltIn:     true,
			Rules: []structs.ACLRule{
				{
					Resources: []string{
						"job", "alloc", "node", "namespace", "secret", "policy", "role", "binding",
						"user", "group", "serviceaccount", "operator", "image", "event",
						"deployment", "evaluation", "netpol", "netpol/admin",
					},
					Actions: []string{"read", "list"},
					Scope:   "global",
				},
			},
		},
	}
}

// isBuiltin reports whether name is a built-in role's.
func isBuiltin(name string) bool {
	return name == RoleAdmin || name == RoleDeveloper || name == RoleViewer
}
