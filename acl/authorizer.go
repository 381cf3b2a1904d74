// Package acl is Hive's role-based access control. It compiles roles and
// bindings (structs.ACLRole, structs.ACLBinding) into an Authorizer that
// answers "may these subjects do this action on this resource here?" with a
// handful of lookups, lists what subjects may do, refuses grants that would
// give away more than the grantor holds, and reads roles and bindings from
// HCL. It does no I/O: the server feeds it the state store's records and
// rebuilds it when they change.
//
// # Semantics
//
// A request is (subjects, resource, action, namespace, name). Subjects are
// the caller's identities ("user:alice", "group:devs", "sa:web/ci"); the
// namespace is "" for cluster-wide objects (nodes, users, roles, the
// operator API...) and "*" for a request about every namespace at once (a
// cross-namespace list); the name is "" when the request names no object
// (list, most creates).
//
// Everything is denied unless some rule of a role bound to one of the
// subjects allows it. A rule allows a request when its resources hold the
// resource (or "*"), its actions hold the action (or "*"), the pair exists
// in structs.ACLResources, and its scope reaches the object:
//
//   - global reaches everything, cluster-wide objects included;
//   - namespace:<ns> reaches objects in ns; namespace:* objects in every
//     namespace (and requests for "*"); neither reaches cluster-wide ones;
//   - <kind>:<ns>/<name> reaches the object called name in ns, of that kind
//     or a sub-resource of it (alloc:web/a1 reaches alloc/logs of a1), for
//     requests that name an object; "*" as ns or name matches any (and
//     only a "*" in a scope reaches a request's "*").
//
// A binding with no namespace applies its role's rules as written. A
// binding in namespace B confines every rule to B: global becomes
// namespace:B, namespace:B and namespace:* become namespace:B, any other
// namespace rule is dropped, and a named rule survives (with its namespace
// set to B) only if its namespace is B or "*". So a binding in B never
// reaches another namespace or a cluster-wide object, whatever its role.
package acl

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hivesec/hive/structs"
)

// pairName is one (resource, action) that exists.
type pairName struct{ resource, action string }

// The (resource, action) pairs are numbered once, in sorted order, so the
// compiled tables index them densely and the hot path turns two strings
// into a number with one map lookup.
var (
	pairNames = buildPairNames()
	pairIndex = buildPairIndex(pairNames)
)

func buildPairNames() []pairName {
	var ps []pairName
	for _, r := range structs.ACLResourceNames() {
		acts := append([]string(nil), structs.ACLResources[r]...)
		sort.Strings(acts)
		for _, a := range acts {
			ps = append(ps, pairName{r, a})
		}
	}
	if len(ps) > maxPairs {
		panic(fmt.Sprintf("acl: %d resource/action pairs exceed maxPairs (%d)", len(ps), maxPairs))
	}
	return ps
}

func buildPairIndex(ps []pairName) map[pairName]uint16 {
	m := make(map[pairName]uint16, len(ps))
	for i, p := range ps {
		m[p] = uint16(i)
	}
	return m
}

// origin is what granted a permission, precomputed so a decision copies
// three strings and allocates nothing.
type origin struct {
	role, binding, rule string
}

// grant is one rule of a bound role after the binding's namespace has
// confined it. List and CheckGrant read these; Authorize reads the tables
// built from them.
type grant struct {
	resources, actions     []string // as the role wrote them
	anyResource, anyAction bool
	scope                  structs.ACLScope // effective
	pairs                  []uint16         // the pairs it allows
	origin                 origin
	originIdx              uint32 // in Authorizer.origins
}

// Flags say which kinds of scope a subject holds for a pair, so that
// Authorize searches only for keys that can exist; a pair a subject has no
// grant for costs no search at all.
const (
	hasGlobal       uint8 = 1 << iota
	hasAnyNamespace       // namespace:*
	hasNamespace          // namespace:<ns>
	hasNamed              // <kind>:<ns>/<name>
	hasNamedAnyName       // <kind>:<ns>/*
	hasNamedAnyNS         // <kind>:*/<name>
	hasNamedAny           // <kind>:*/*
)

// Scope keys. Namespaces and object names are numbered at compile time, so
// one scope of one pair is a uint64: pair<<40 | namespace<<20 | name.
// Number 0 means none (global has neither; a namespace scope has no name)
// and 1 is "*", so global, namespace and named keys never collide.
const (
	idNone     = 0
	idWildcard = 1
	idBits     = 20
	maxID      = 1<<idBits - 1
	// idUnknown stands for a request's namespace or name that no grant
	// mentions; no key holds it, so exact searches are skipped.
	idUnknown = maxID
	// maxPairs is what a pair number (a uint16, with 24 bits in a key)
	// can hold; the package refuses to start with more pairs.
	maxPairs = 1 << 16
)

func scopeKey(pair uint16, ns, name uint32) uint64 {
	return uint64(pair)<<(2*idBits) | uint64(ns)<<idBits | uint64(name)
}

// Authorizer decides requests against a fixed set of roles and bindings.
// It is immutable once compiled and safe for concurrent use; a change to
// roles or bindings means compiling a new one and swapping it in.
//
// The layout is for a cold cache: with thousands of subjects, a decision
// for a random one costs what it touches, not what it computes. So the
// tables are a few flat arrays rather than a map per subject: subject i's
// flags are flags[i*numPairs:], and its scope keys, sorted, are
// keys[offsets[i]:offsets[i+1]], with the granting origin of each at the
// same index of origin. The subject names share one string.
type Authorizer struct {
	subjectIdx map[string]uint32
	flags      []uint8
	offsets    []uint32
	keys       []uint64
	origin     []uint32 // index into origins, parallel to keys
	origins    []origin
	nsIDs      map[string]uint32
	nameIDs    map[string]uint32
	grants     [][]*grant // by subject, in binding-name order, for List and CheckGrant
	roles      map[string]*structs.ACLRole
}

// Decision is the answer to one request. When Allowed, Role, Binding and
// Rule say which grant allowed it (the first found; others may exist); Rule
// is the rule as the binding confined it, e.g. "job:read,list @
// namespace:web". A denial carries no reason: default deny has none.
type Decision struct {
	Allowed bool
	Role    string
	Binding string
	Rule    string
}

// Compile builds an Authorizer from roles and bindings. The built-in roles
// are always added; a role named like one of them, two roles or bindings
// with one name, an invalid record, or a binding to an unknown role is an
// error. A broken binding is refused rather than skipped: the state store
// must never hold one, and if it does an operator should hear of it rather
// than find that someone silently has less (or, after a later fix, more)
// access than the records say.
func Compile(roles []*structs.ACLRole, bindings []*structs.ACLBinding) (*Authorizer, error) {
	a := &Authorizer{roles: map[string]*structs.ACLRole{}}
	for _, r := range BuiltinRoles() {
		a.roles[r.Name] = r
	}
	for _, r := range roles {
		if r == nil {
			return nil, errors.New("compile: nil role")
		}
		if isBuiltin(r.Name) {
			return nil, fmt.Errorf("compile: role %q: %w", r.Name, ErrBuiltinRole)
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("compile: %w", err)
		}
		if _, dup := a.roles[r.Name]; dup {
			return nil, fmt.Errorf("compile: role %q is defined twice", r.Name)
		}
		// A copy, so that a caller changing its record later cannot change
		// what a compiled Authorizer allows.
		a.roles[r.Name] = cloneRole(r)
	}

	// Rules are expanded to pairs once per role, not once per binding.
	expanded := make(map[string][][]uint16, len(a.roles))
	for name, r := range a.roles {
		ps := make([][]uint16, len(r.Rules))
		for i := range r.Rules {
			scope, _ := structs.ParseACLScope(r.Rules[i].Scope) // validated above
			ps[i] = rulePairs(&r.Rules[i], scope)
		}
		expanded[name] = ps
	}

	// Bindings go in name order so that which grant a decision names does
	// not depend on the order the state store returned them in.
	sorted := append([]*structs.ACLBinding(nil), bindings...)
	for _, b := range sorted {
		if b == nil {
			return nil, errors.New("compile: nil binding")
		}
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	subjects := map[string]*subjectBuild{}
	for i, b := range sorted {
		if err := b.Validate(); err != nil {
			return nil, fmt.Errorf("compile: %w", err)
		}
		if i > 0 && sorted[i-1].Name == b.Name {
			return nil, fmt.Errorf("compile: binding %q is defined twice", b.Name)
		}
		role := a.roles[b.Role]
		if role == nil {
			return nil, fmt.Errorf("compile: binding %q: unknown role %q", b.Name, b.Role)
		}
		for _, gr := range bindingGrants(role, b, expanded[role.Name]) {
			gr.originIdx = uint32(len(a.origins))
			a.origins = append(a.origins, gr.origin)
			for _, s := range b.Subjects {
				sb := subjects[s]
				if sb == nil {
					sb = &subjectBuild{keys: map[uint64]uint32{}}
					subjects[s] = sb
				}
				sb.grants = append(sb.grants, gr)
			}
		}
	}
	if err := a.layout(subjects); err != nil {
		return nil, err
	}
	return a, nil
}

// ErrBuiltinRole is returned (wrapped) for a role that would replace a
// built-in one.
var ErrBuiltinRole = errors.New("built-in roles cannot be defined or changed")

// rulePairs returns the pairs rule allows, before any namespace
// confinement: the existing (resource, action) pairs its lists match,
// restricted to the kind of a named scope.
func rulePairs(rule *structs.ACLRule, scope structs.ACLScope) []uint16 {
	anyRes, anyAct := contains(rule.Resources, structs.ACLWildcard), contains(rule.Actions, structs.ACLWildcard)
	var ps []uint16
	for i, p := range pairNames {
		if (anyRes || contains(rule.Resources, p.resource)) &&
			(anyAct || contains(rule.Actions, p.action)) &&
			(scope.Kind != structs.ACLScopeNamed || scope.Covers(p.resource)) {
			ps = append(ps, uint16(i))
		}
	}
	return ps
}

// bindingGrants confines each of role's rules to b's namespace.
func bindingGrants(role *structs.ACLRole, b *structs.ACLBinding, pairs [][]uint16) []*grant {
	var gs []*grant
	for i := range role.Rules {
		rule := &role.Rules[i]
		scope, _ := structs.ParseACLScope(rule.Scope)
		eff, ok := confine(scope, b.Namespace)
		if !ok {
			continue
		}
		// A grant with no pairs (a wildcard resource whose scope's kind
		// has none of its actions yet) is kept: Authorize never sees it,
		// but CheckGrant must, since its wildcard may cover pairs that
		// appear later, and so may the same grant given on to another.
		shown := structs.ACLRule{Resources: rule.Resources, Actions: rule.Actions, Scope: eff.String()}
		gs = append(gs, &grant{
			resources:   rule.Resources,
			actions:     rule.Actions,
			anyResource: contains(rule.Resources, structs.ACLWildcard),
			anyAction:   contains(rule.Actions, structs.ACLWildcard),
			scope:       eff,
			pairs:       pairs[i],
			origin:      origin{role: role.Name, binding: b.Name, rule: shown.String()},
		})
	}
	return gs
}

// confine returns scope as a binding in namespace ns applies it, and false
// if it applies nowhere there. See the package comment.
func confine(scope structs.ACLScope, ns string) (structs.ACLScope, bool) {
	if ns == "" {
		return scope, true
	}
	switch scope.Kind {
	case structs.ACLScopeGlobal:
		return structs.ACLScope{Kind: structs.ACLScopeNamespace, Namespace: ns}, true
	case structs.ACLScopeNamespace:
		if scope.Namespace == ns || scope.Namespace == structs.ACLWildcard {
			return structs.ACLScope{Kind: structs.ACLScopeNamespace, Namespace: ns}, true
		}
	case structs.ACLScopeNamed:
		if scope.Namespace == ns || scope.Namespace == structs.ACLWildcard {
			scope.Namespace = ns
			return scope, true
		}
	}
	return structs.ACLScope{}, false
}

// subjectBuild collects one subject's grants during Compile.
type subjectBuild struct {
	grants []*grant
	keys   map[uint64]uint32 // scope key → origin index; the first grant wins
}

// layout numbers namespaces and names, turns each subject's grants into
// flags and scope keys, and lays them out flat (see Authorizer).
func (a *Authorizer) layout(subjects map[string]*subjectBuild) error {
	a.nsIDs = map[string]uint32{structs.ACLWildcard: idWildcard}
	a.nameIDs = map[string]uint32{structs.ACLWildcard: idWildcard}
	intern := func(ids map[string]uint32, s string) (uint32, error) {
		id, ok := ids[s]
		if !ok {
			id = uint32(len(ids) + 1) // 0 is none, 1 is "*"
			if id >= idUnknown {
				return 0, fmt.Errorf("compile: more than %d distinct namespaces or names in scopes", maxID-2)
			}
			ids[s] = id
		}
		return id, nil
	}

	names := make([]string, 0, len(subjects))
	for s := range subjects {
		names = append(names, s)
	}
	sort.Strings(names) // a deterministic layout, for reproducible benchmarks
	numPairs := len(pairNames)
	a.flags = make([]uint8, len(names)*numPairs)
	a.offsets = make([]uint32, 1, len(names)+1)
	a.grants = make([][]*grant, len(names))
	a.subjectIdx = make(map[string]uint32, len(names))

	var arena strings.Builder
	for _, s := range names {
		arena.WriteString(s)
	}
	all, at := arena.String(), 0
	for i, s := range names {
		sb := subjects[s]
		a.subjectIdx[all[at:at+len(s)]] = uint32(i)
		at += len(s)
		a.grants[i] = sb.grants
		flags := a.flags[i*numPairs : (i+1)*numPairs]
		for _, gr := range sb.grants {
			var flag uint8
			var ns, name uint32
			var err error
			switch sc := gr.scope; sc.Kind {
			case structs.ACLScopeGlobal:
				flag = hasGlobal
			case structs.ACLScopeNamespace:
				flag = hasNamespace
				if sc.Namespace == structs.ACLWildcard {
					flag = hasAnyNamespace
				}
				ns, err = intern(a.nsIDs, sc.Namespace)
			case structs.ACLScopeNamed:
				anyNS, anyName := sc.Namespace == structs.ACLWildcard, sc.Name == structs.ACLWildcard
				switch {
				case anyNS && anyName:
					flag = hasNamedAny
				case anyNS:
					flag = hasNamedAnyNS
				case anyName:
					flag = hasNamedAnyName
				default:
					flag = hasNamed
				}
				if ns, err = intern(a.nsIDs, sc.Namespace); err == nil {
					name, err = intern(a.nameIDs, sc.Name)
				}
			}
			if err != nil {
				return err
			}
			for _, p := range gr.pairs {
				flags[p] |= flag
				k := scopeKey(p, ns, name)
				if _, ok := sb.keys[k]; !ok {
					sb.keys[k] = gr.originIdx
				}
			}
		}
		start := len(a.keys)
		for k := range sb.keys {
			a.keys = append(a.keys, k)
		}
		slices.Sort(a.keys[start:])
		for _, k := range a.keys[start:] {
			a.origin = append(a.origin, sb.keys[k])
		}
		a.offsets = append(a.offsets, uint32(len(a.keys)))
	}
	return nil
}

// Authorize decides whether any of subjects may do action on resource in
// namespace ("" for cluster-wide objects, "*" for all namespaces at once)
// on the object called name ("" when none is named). It costs a map lookup
// for the pair, one per subject, and a binary search of the subject's
// few keys for each kind of scope its flags say it holds; it does not
// allocate. A pair that does not exist in structs.ACLResources is denied,
// even to admin, so that a typo in a handler fails closed. A nil
// Authorizer denies everything.
func (a *Authorizer) Authorize(subjects []string, resource, action, namespace, name string) Decision {
	if a == nil {
		return Decision{}
	}
	p, ok := pairIndex[pairName{resource, action}]
	if !ok {
		return Decision{}
	}
	q := query{pair: p, ns: namespace, name: name}
	for _, s := range subjects {
		i, ok := a.subjectIdx[s]
		if !ok {
			continue
		}
		if at, ok := a.match(i, &q); ok {
			o := &a.origins[a.origin[at]]
			return Decision{Allowed: true, Role: o.role, Binding: o.binding, Rule: o.rule}
		}
	}
	return Decision{}
}

// query is the request being decided. Its namespace and name numbers are
// looked up on first use and then serve every subject.
type query struct {
	pair         uint16
	ns, name     string
	nsID, nameID uint32
}

const hasAnyNamed = hasNamed | hasNamedAnyName | hasNamedAnyNS | hasNamedAny

// match returns the index (into keys and origin) of a scope of subject i
// that reaches q, if any.
func (a *Authorizer) match(i uint32, q *query) (uint32, bool) {
	f := a.flags[int(i)*len(pairNames)+int(q.pair)]
	if f == 0 {
		return 0, false
	}
	lo := a.offsets[i]
	keys := a.keys[lo:a.offsets[i+1]]
	find := func(ns, name uint32) (uint32, bool) {
		j, found := slices.BinarySearch(keys, scopeKey(q.pair, ns, name))
		return lo + uint32(j), found
	}
	if f&hasGlobal != 0 {
		return find(idNone, idNone)
	}
	if q.ns == "" {
		return 0, false // cluster-wide objects take a global grant
	}
	if f&hasAnyNamespace != 0 {
		return find(idWildcard, idNone)
	}
	if q.nsID == idNone {
		q.nsID = a.id(a.nsIDs, q.ns)
	}
	knownNS := q.nsID != idUnknown
	if f&hasNamespace != 0 && knownNS {
		if at, ok := find(q.nsID, idNone); ok {
			return at, true
		}
	}
	if q.name == "" || f&hasAnyNamed == 0 {
		return 0, false // named grants reach only requests that name an object
	}
	if q.nameID == idNone {
		q.nameID = a.id(a.nameIDs, q.name)
	}
	knownName := q.nameID != idUnknown
	if f&hasNamed != 0 && knownNS && knownName {
		if at, ok := find(q.nsID, q.nameID); ok {
			return at, true
		}
	}
	if f&hasNamedAnyName != 0 && knownNS {
		if at, ok := find(q.nsID, idWildcard); ok {
			return at, true
		}
	}
	if f&hasNamedAnyNS != 0 && knownName {
		if at, ok := find(idWildcard, q.nameID); ok {
			return at, true
		}
	}
	if f&hasNamedAny != 0 {
		return find(idWildcard, idWildcard)
	}
	return 0, false
}

// id returns the number of a request's namespace or name, or idUnknown if
// no grant mentions it. "*" in a request is number 1, the wildcard's, so a
// request about every namespace (or name) is reached only by grants of
// every namespace (or name).
func (a *Authorizer) id(ids map[string]uint32, s string) uint32 {
	if id, ok := ids[s]; ok {
		return id
	}
	return idUnknown
}

// Role returns a copy of the role called name as compiled (built-in ones
// included), or nil, so the server can check a binding with CheckGrant
// against exactly the rules the Authorizer enforces.
func (a *Authorizer) Role(name string) *structs.ACLRole {
	if a == nil || a.roles[name] == nil {
		return nil
	}
	return cloneRole(a.roles[name])
}

func cloneRole(r *structs.ACLRole) *structs.ACLRole {
	c := *r
	c.Rules = make([]structs.ACLRule, len(r.Rules))
	for i, rule := range r.Rules {
		c.Rules[i] = structs.ACLRule{
			Resources: append([]string(nil), rule.Resources...),
			Actions:   append([]string(nil), rule.Actions...),
			Scope:     rule.Scope,
		}
	}
	return &c
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
