package structs

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// RBAC records. A rule says which actions on which resources it allows and
// where (its scope); a role is a named list of rules; a binding gives a role
// to subjects (users, groups, service accounts), globally or in one
// namespace. Package acl compiles them into an authorizer; this file only
// defines them and checks their shape.
//
// The RBAC types carry an ACL prefix where a plain name would be ambiguous
// in this package: Role already names a node's cluster role (manager or
// worker), and network and audit policies have rules of their own.

// ACLResources maps every resource the authorizer knows to the actions that
// exist on it. A rule may name only these (or "*"), and the authorizer
// denies a request for any other pair, whatever the rules say, so a typo in
// a handler fails closed. Read-only: it is shared by every package.
//
// Sub-resources ("alloc/logs", "secret/value") are separate resources so
// that reading an object's metadata never implies reading what is most
// sensitive about it.
var ACLResources = map[string][]string{
	"job":            {"read", "list", "create", "update", "delete", "stop"},
	"alloc":          {"read", "list", "create", "update", "delete", "stop"},
	"alloc/logs":     {"read"},
	"alloc/exec":     {"create"},
	"node":           {"read", "list", "create", "update", "delete", "drain"},
	"namespace":      {"read", "list", "create", "update", "delete"},
	"secret":         {"read", "list", "create", "update", "delete"},
	"secret/value":   {"read"},
	"policy":         {"read", "list", "create", "update", "delete"},
	"role":           {"read", "list", "create", "update", "delete"},
	"binding":        {"read", "list", "create", "update", "delete"},
	"user":           {"read", "list", "create", "update", "delete"},
	"group":          {"read", "list", "create", "update", "delete"},
	"serviceaccount": {"read", "list", "create", "update", "delete"},
	"token":          {"read", "list", "create", "update", "delete", "revoke"},
	"audit":          {"read", "list"},
	"operator":       {"read", "update", "snapshot", "raft", "keyring"},
	"image":          {"read", "list", "create", "delete"},
	"event":          {"read", "list"},
	"deployment":     {"read", "list", "update"},
	"evaluation":     {"read", "list", "create"},
	"netpol":         {"read", "list", "create", "update", "delete"},

	// alloc/quarantine cuts an allocation off the network: apart from
	// alloc:update, so that running workloads never implies isolating
	// them. netpol/admin are the cluster-wide admin network policies,
	// which only global grants reach.
	"alloc/quarantine": {"update"},
	"netpol/admin":     {"read", "list", "create", "update", "delete"},
}

// ACLWildcard stands for every resource or every action in a rule, and for
// every namespace or name in a scope.
const ACLWildcard = "*"

// ValidACLAction reports whether action exists on resource (neither a
// wildcard).
func ValidACLAction(resource, action string) bool {
	for _, a := range ACLResources[resource] {
		if a == action {
			return true
		}
	}
	return false
}

// ACLResourceNames returns the known resources, sorted.
func ACLResourceNames() []string {
	names := make([]string, 0, len(ACLResources))
	for r := range ACLResources {
		names = append(names, r)
	}
	sort.Strings(names)
	return names
}

// ACLActionNames returns every action of every resource, sorted, once each.
func ACLActionNames() []string {
	seen := map[string]bool{}
	var names []string
	for _, acts := range ACLResources {
		for _, a := range acts {
			if !seen[a] {
				seen[a] = true
				names = append(names, a)
			}
		}
	}
	sort.Strings(names)
	return names
}

// FieldError is a validation error about one field of a record. Field is the
// name the field has in HCL and JSON ("resources", "scope"), so that a parser
// can point at the argument that is wrong and the API can name it.
type FieldError struct {
	Field string
	Err   error
}

// Error returns "field: message".
func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErrorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// aclNameRE is the shape of role, binding, user, group and service account
// names, and of object names in a named scope. Unlike namespace names they
// may hold '_' and '.' (user names come from people and other systems), but
// must start with a letter or digit so "." and ".." never name anything.
var aclNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidateACLName checks a role, binding, user, group or service account
// name: 1-63 lower-case letters, digits, '-', '_' and '.', starting with a
// letter or digit.
func ValidateACLName(kind, name string) error {
	if !aclNameRE.MatchString(name) {
		return fmt.Errorf("invalid %s name %q: use 1-63 lower-case letters, digits, '-', '_' and '.', starting with a letter or digit", kind, name)
	}
	return nil
}

// ACLScopeKind says how far a rule reaches.
type ACLScopeKind uint8

const (
	// ACLScopeGlobal reaches everything, cluster-wide objects included.
	ACLScopeGlobal ACLScopeKind = iota
	// ACLScopeNamespace reaches the objects in one namespace, or in every
	// namespace ("namespace:*"), but never cluster-wide objects.
	ACLScopeNamespace
	// ACLScopeNamed reaches one named object (or, with wildcards, the
	// objects of that name, or every named object of a kind in a namespace).
	ACLScopeNamed
)

// ACLScope is a parsed rule scope. Its text forms are "global" (or ""),
// "namespace:<ns>", "namespace:*", and "<resource>:<ns>/<name>" where ns and
// name may each be "*".
type ACLScope struct {
	Kind ACLScopeKind
	// Namespace is the namespace, or "*"; empty for global scopes.
	Namespace string
	// Resource is the kind of object a named scope names ("job"); a named
	// scope reaches that resource and its sub-resources ("alloc" reaches
	// "alloc/logs").
	Resource string
	// Name is the object's name, or "*"; set only for named scopes.
	Name string
}

// ParseACLScope parses a scope's text form; see ACLScope.
func ParseACLScope(s string) (ACLScope, error) {
	if s == "" || s == "global" {
		return ACLScope{Kind: ACLScopeGlobal}, nil
	}
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		return ACLScope{}, fmt.Errorf("invalid scope %q: use \"global\", \"namespace:<ns>\" or \"<resource>:<ns>/<name>\"", s)
	}
	ns, name, named := strings.Cut(rest, "/")
	if kind == "namespace" && !named {
		if err := validateScopeNamespace(s, rest); err != nil {
			return ACLScope{}, err
		}
		return ACLScope{Kind: ACLScopeNamespace, Namespace: rest}, nil
	}
	if !named {
		return ACLScope{}, fmt.Errorf("invalid scope %q: use \"global\", \"namespace:<ns>\" or \"<resource>:<ns>/<name>\"", s)
	}
	if _, known := ACLResources[kind]; !known {
		return ACLScope{}, fmt.Errorf("invalid scope %q: unknown resource %q", s, kind)
	}
	if kind == "namespace" {
		// Namespaces are cluster-wide objects: nothing names one inside a
		// namespace, so such a scope could never match.
		return ACLScope{}, fmt.Errorf("invalid scope %q: namespaces are not inside namespaces; use a global rule to reach one", s)
	}
	if err := validateScopeNamespace(s, ns); err != nil {
		return ACLScope{}, err
	}
	if name != ACLWildcard && !aclNameRE.MatchString(name) {
		return ACLScope{}, fmt.Errorf("invalid scope %q: name %q is not \"*\" nor 1-63 lower-case letters, digits, '-', '_' and '.'", s, name)
	}
	return ACLScope{Kind: ACLScopeNamed, Namespace: ns, Resource: kind, Name: name}, nil
}

func validateScopeNamespace(scope, ns string) error {
	if ns == ACLWildcard {
		return nil
	}
	if !nameRE.MatchString(ns) {
		return fmt.Errorf("invalid scope %q: namespace %q is not \"*\" nor a namespace name", scope, ns)
	}
	return nil
}

// String returns the scope's canonical text form ("global" for global).
func (s ACLScope) String() string {
	switch s.Kind {
	case ACLScopeNamespace:
		return "namespace:" + s.Namespace
	case ACLScopeNamed:
		return s.Resource + ":" + s.Namespace + "/" + s.Name
	}
	return "global"
}

// Covers reports whether a named scope of kind s.Resource reaches resource:
// the kind itself or one of its sub-resources ("alloc" reaches
// "alloc/logs", not "allocation").
func (s ACLScope) Covers(resource string) bool {
	return resource == s.Resource || (len(resource) > len(s.Resource) &&
		strings.HasPrefix(resource, s.Resource) && resource[len(s.Resource)] == '/')
}

// ACLRule allows Actions on Resources within Scope. "*" in Resources or
// Actions means all of them, including ones added later; a rule cannot be
// narrowed after the fact, so grant "*" only where that is meant.
type ACLRule struct {
	Resources []string
	Actions   []string
	// Scope is "global" (or ""), "namespace:<ns>", "namespace:*" or
	// "<resource>:<ns>/<name>"; see ACLScope.
	Scope string
}

// Validate checks the rule's resources, actions and scope. Each resource
// must be known; each action must exist on at least one of the rule's
// resources (so one rule can say "job and node: read, drain"); pairs that
// do not exist (job:drain) simply grant nothing. A named scope's rule may
// only list that kind and its sub-resources.
func (r *ACLRule) Validate() error {
	if len(r.Resources) == 0 {
		return fieldErrorf("resources", "at least one resource is required")
	}
	anyResource := false
	for _, res := range r.Resources {
		if res == ACLWildcard {
			anyResource = true
			continue
		}
		if _, ok := ACLResources[res]; !ok {
			return fieldErrorf("resources", "unknown resource %q (known: %s)", res, strings.Join(ACLResourceNames(), ", "))
		}
	}
	if len(r.Actions) == 0 {
		return fieldErrorf("actions", "at least one action is required")
	}
	for _, act := range r.Actions {
		if act == ACLWildcard {
			continue
		}
		ok := anyResource && actionExists(act)
		for _, res := range r.Resources {
			ok = ok || ValidACLAction(res, act)
		}
		if !ok {
			return fieldErrorf("actions", "action %q exists on none of %s", act, strings.Join(r.Resources, ", "))
		}
	}
	scope, err := ParseACLScope(r.Scope)
	if err != nil {
		return &FieldError{Field: "scope", Err: err}
	}
	if scope.Kind == ACLScopeNamed {
		for _, res := range r.Resources {
			if res != ACLWildcard && !scope.Covers(res) {
				return fieldErrorf("resources", "resource %q is not reachable in scope %q, which names a %s", res, r.Scope, scope.Resource)
			}
		}
	}
	return nil
}

func actionExists(action string) bool {
	for _, acts := range ACLResources {
		for _, a := range acts {
			if a == action {
				return true
			}
		}
	}
	return false
}

// String renders the rule as "job,alloc:read,list @ namespace:web", the
// form the CLI and authorization decisions show.
func (r *ACLRule) String() string {
	scope := r.Scope
	if scope == "" {
		scope = "global"
	}
	return strings.Join(r.Resources, ",") + ":" + strings.Join(r.Actions, ",") + " @ " + scope
}

// ACLRole is a named set of rules. Built-in roles (admin, developer,
// viewer) come from package acl and cannot be changed or shadowed.
type ACLRole struct {
	Name        string
	Description string
	Rules       []ACLRule
	BuiltIn     bool

	CreateIndex uint64
	ModifyIndex uint64
}

// MaxACLDescription bounds descriptions so a record stays small in Raft.
const MaxACLDescription = 1024

// Validate checks the role's name and every rule.
func (r *ACLRole) Validate() error {
	if err := ValidateACLName("role", r.Name); err != nil {
		return &FieldError{Field: "name", Err: err}
	}
	if len(r.Description) > MaxACLDescription {
		return fieldErrorf("description", "role %q: description is %d bytes, more than %d", r.Name, len(r.Description), MaxACLDescription)
	}
	if len(r.Rules) == 0 {
		return fieldErrorf("rule", "role %q has no rules; a role must grant something", r.Name)
	}
	for i := range r.Rules {
		if err := r.Rules[i].Validate(); err != nil {
			return fmt.Errorf("role %q: rule %d: %w", r.Name, i+1, err)
		}
	}
	return nil
}

// Subject prefixes: a subject is "user:<name>", "group:<name>" or
// "sa:<namespace>/<name>".
const (
	SubjectUserPrefix           = "user:"
	SubjectGroupPrefix          = "group:"
	SubjectServiceAccountPrefix = "sa:"
)

// UserSubject returns the subject naming user name.
func UserSubject(name string) string { return SubjectUserPrefix + name }

// GroupSubject returns the subject naming group name.
func GroupSubject(name string) string { return SubjectGroupPrefix + name }

// ServiceAccountSubject returns the subject naming service account ns/name.
func ServiceAccountSubject(ns, name string) string {
	return SubjectServiceAccountPrefix + ns + "/" + name
}

// ValidateSubject checks a subject's form.
func ValidateSubject(s string) error {
	switch {
	case strings.HasPrefix(s, SubjectUserPrefix):
		return ValidateACLName("user", strings.TrimPrefix(s, SubjectUserPrefix))
	case strings.HasPrefix(s, SubjectGroupPrefix):
		return ValidateACLName("group", strings.TrimPrefix(s, SubjectGroupPrefix))
	case strings.HasPrefix(s, SubjectServiceAccountPrefix):
		ns, name, ok := strings.Cut(strings.TrimPrefix(s, SubjectServiceAccountPrefix), "/")
		if !ok {
			return fmt.Errorf("invalid subject %q: a service account is \"sa:<namespace>/<name>\"", s)
		}
		if err := ValidateName("namespace", ns); err != nil {
			return fmt.Errorf("invalid subject %q: %w", s, err)
		}
		return ValidateACLName("service account", name)
	case strings.HasPrefix(s, SubjectTokenPrefix):
		// A token that holds a role of its own: the server binds it under
		// its accessor ID, 32 hex digits.
		acc := strings.TrimPrefix(s, SubjectTokenPrefix)
		if len(acc) != 32 || strings.Trim(acc, "0123456789abcdef") != "" {
			return fmt.Errorf("invalid subject %q: a token is \"token:<32 hex digit accessor ID>\"", s)
		}
		return nil
	}
	return fmt.Errorf("invalid subject %q: use \"user:<name>\", \"group:<name>\" or \"sa:<namespace>/<name>\"", s)
}

// ACLBinding gives Role to Subjects. With Namespace empty the role's rules
// apply as written; with a namespace every rule is confined to it (see
// package acl), so a namespace's owner can be trusted with bindings there.
type ACLBinding struct {
	Name      string
	Role      string
	Subjects  []string
	Namespace string // "" = global

	CreateIndex uint64
	ModifyIndex uint64
}

// Validate checks the binding's names and subjects. That Role exists is
// for the caller (the state store) to check.
func (b *ACLBinding) Validate() error {
	if err := ValidateACLName("binding", b.Name); err != nil {
		return &FieldError{Field: "name", Err: err}
	}
	if err := ValidateACLName("role", b.Role); err != nil {
		return &FieldError{Field: "role", Err: fmt.Errorf("binding %q: %w", b.Name, err)}
	}
	if len(b.Subjects) == 0 {
		return fieldErrorf("subjects", "binding %q has no subjects", b.Name)
	}
	seen := make(map[string]bool, len(b.Subjects))
	for _, s := range b.Subjects {
		if err := ValidateSubject(s); err != nil {
			return &FieldError{Field: "subjects", Err: fmt.Errorf("binding %q: %w", b.Name, err)}
		}
		if seen[s] {
			return fieldErrorf("subjects", "binding %q lists %q twice", b.Name, s)
		}
		seen[s] = true
	}
	if b.Namespace != "" {
		if err := ValidateName("namespace", b.Namespace); err != nil {
			return &FieldError{Field: "namespace", Err: fmt.Errorf("binding %q: %w", b.Name, err)}
		}
	}
	return nil
}

// User is a person who logs in with a password. Group membership is kept
// on Group alone (one source of truth); User.Subjects derives it.
type User struct {
	Name         string
	PasswordHash string // argon2id, encoded by crypto/passwd
	Disabled     bool
	CreatedAt    time.Time

	CreateIndex uint64
	ModifyIndex uint64
}

// Validate checks the user's name.
func (u *User) Validate() error {
	if err := ValidateACLName("user", u.Name); err != nil {
		return &FieldError{Field: "name", Err: err}
	}
	return nil
}

// Subjects returns the subjects the user acts as: itself and each group
// that lists it. A disabled user has none, so it is denied everything even
// if a token of it survives.
func (u *User) Subjects(groups []*Group) []string {
	if u.Disabled {
		return nil
	}
	subjects := []string{UserSubject(u.Name)}
	for _, g := range groups {
		for _, m := range g.Members {
			if m == u.Name {
				subjects = append(subjects, GroupSubject(g.Name))
				break
			}
		}
	}
	return subjects
}

// Group is a named set of users that bindings can name at once.
type Group struct {
	Name    string
	Members []string // user names

	CreateIndex uint64
	ModifyIndex uint64
}

// Validate checks the group's name and members.
func (g *Group) Validate() error {
	if err := ValidateACLName("group", g.Name); err != nil {
		return &FieldError{Field: "name", Err: err}
	}
	seen := make(map[string]bool, len(g.Members))
	for _, m := range g.Members {
		if err := ValidateACLName("user", m); err != nil {
			return &FieldError{Field: "members", Err: fmt.Errorf("group %q: %w", g.Name, err)}
		}
		if seen[m] {
			return fieldErrorf("members", "group %q lists user %q twice", g.Name, m)
		}
		seen[m] = true
	}
	return nil
}

// ServiceAccount is a non-human identity that lives in a namespace, for
// workloads and automation; its subject is "sa:<namespace>/<name>".
type ServiceAccount struct {
	Namespace   string
	Name        string
	Description string
	CreatedAt   time.Time

	CreateIndex uint64
	ModifyIndex uint64
}

// Validate checks the service account's namespace, name and description.
func (s *ServiceAccount) Validate() error {
	if err := ValidateName("namespace", s.Namespace); err != nil {
		return &FieldError{Field: "namespace", Err: err}
	}
	if err := ValidateACLName("service account", s.Name); err != nil {
		return &FieldError{Field: "name", Err: err}
	}
	if len(s.Description) > MaxACLDescription {
		return fieldErrorf("description", "service account %q: description is %d bytes, more than %d", s.Name, len(s.Description), MaxACLDescription)
	}
	return nil
}
