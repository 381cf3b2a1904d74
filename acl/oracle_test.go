package acl

import (
	"errors"
	"flag"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hivesec/hive/structs"
)

// seed picks the random worlds of the oracle and property tests. It is
// fixed so a failure reproduces; run with -seed N to explore others.
var seed = flag.Uint64("seed", 1, "seed for the random worlds of the oracle tests")

// The naive reference: it knows nothing of pairs, flags, confinement or
// compiled tables. It walks every binding and every rule and matches the
// request against the rule's text, as the package comment describes.

// naiveReaches reports whether rule, bound in bindingNS, reaches
// (res, ns, name) by scope alone.
func naiveReaches(rule *structs.ACLRule, bindingNS, res, ns, name string) bool {
	if bindingNS != "" && ns != bindingNS {
		return false // a namespaced binding never leaves its namespace
	}
	scope := rule.Scope
	switch {
	case scope == "" || scope == "global":
		return true
	case strings.HasPrefix(scope, "namespace:") && !strings.Contains(scope, "/"):
		want := strings.TrimPrefix(scope, "namespace:")
		return ns != "" && (want == "*" || want == ns)
	default:
		kind, rest, _ := strings.Cut(scope, ":")
		wantNS, wantName, _ := strings.Cut(rest, "/")
		if ns == "" || name == "" {
			return false
		}
		if res != kind && !strings.HasPrefix(res, kind+"/") {
			return false
		}
		return (wantNS == "*" || wantNS == ns) && (wantName == "*" || wantName == name)
	}
}

func naiveListed(list []string, x string) bool {
	return slices.Contains(list, "*") || slices.Contains(list, x)
}

// naiveAuthorize returns the names of the bindings that allow q.
func naiveAuthorize(roles map[string]*structs.ACLRole, bindings []*structs.ACLBinding, q request) []string {
	if !structs.ValidACLAction(q.resource, q.action) {
		return nil
	}
	var by []string
	for _, b := range bindings {
		mine := false
		for _, s := range b.Subjects {
			mine = mine || slices.Contains(q.subjects, s)
		}
		if !mine {
			continue
		}
		role := roles[b.Role]
		for i := range role.Rules {
			rule := &role.Rules[i]
			if naiveListed(rule.Resources, q.resource) && naiveListed(rule.Actions, q.action) &&
				naiveReaches(rule, b.Namespace, q.resource, q.namespace, q.name) {
				by = append(by, b.Name)
				break
			}
		}
	}
	return by
}

func roleMap(roles []*structs.ACLRole) map[string]*structs.ACLRole {
	m := map[string]*structs.ACLRole{}
	for _, r := range append(BuiltinRoles(), roles...) {
		m[r.Name] = r
	}
	return m
}

// TestAuthorizeOracle checks Authorize against the naive evaluator on
// random worlds and requests: the same answer every time, and an allowed
// decision names a binding that does allow it, with that binding's role.
func TestAuthorizeOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(*seed, 2))
	const worlds, perWorld = 250, 1000 // 250,000 decisions
	var allowed, decisions int
	for w := range worlds {
		roles, bindings := randWorld(r, 1+r.IntN(8), 1+r.IntN(15))
		a, err := Compile(roles, bindings)
		if err != nil {
			t.Fatalf("world %d: %v", w, err)
		}
		byName := roleMap(roles)
		bindingRole := map[string]string{}
		for _, b := range bindings {
			bindingRole[b.Name] = b.Role
		}
		for range perWorld {
			q := randRequest(r)
			want := naiveAuthorize(byName, bindings, q)
			got := a.Authorize(q.subjects, q.resource, q.action, q.namespace, q.name)
			decisions++
			if got.Allowed != (len(want) > 0) {
				t.Fatalf("world %d: %+v: Authorize = %+v, naive allowed by %v\nroles: %s\nbindings: %s",
					w, q, got, want, dumpRoles(roles), dumpBindings(bindings))
			}
			if !got.Allowed {
				if got != (Decision{}) {
					t.Fatalf("denial carries a reason: %+v", got)
				}
				continue
			}
			allowed++
			if !slices.Contains(want, got.Binding) || bindingRole[got.Binding] != got.Role {
				t.Fatalf("world %d: %+v: decision %+v names a binding that does not allow it (naive: %v)", w, q, got, want)
			}
			if got.Rule == "" || !strings.Contains(got.Rule, " @ ") {
				t.Fatalf("decision rule %q is not human readable", got.Rule)
			}
		}
	}
	// The generator must exercise both answers, or the test proves little.
	if allowed < decisions/20 || allowed > decisions*19/20 {
		t.Fatalf("%d of %d decisions allowed: the generator is lopsided", allowed, decisions)
	}
	t.Logf("%d decisions, %d allowed", decisions, allowed)
}

func dumpRoles(roles []*structs.ACLRole) string {
	var sb strings.Builder
	for _, r := range roles {
		sb.WriteString("\n  " + r.Name + ":")
		for i := range r.Rules {
			sb.WriteString(" [" + r.Rules[i].String() + "]")
		}
	}
	return sb.String()
}

func dumpBindings(bs []*structs.ACLBinding) string {
	var sb strings.Builder
	for _, b := range bs {
		sb.WriteString("\n  " + b.Name + ": " + b.Role + " ns=" + b.Namespace + " " + strings.Join(b.Subjects, ","))
	}
	return sb.String()
}

// naiveCheckGrant is CheckGrant written from the specification without
// confine or scope algebra: a needed permission (res, act, scope) is held
// if some rule of the grantor names res and act (a wildcard only by a
// wildcard) and reaches every object the granted rule would reach. Scopes
// compare equal or wildcard against a few constants, so checking every
// combination of those constants, "", "*" and one value no rule mentions
// decides containment exactly.
func naiveCheckGrant(roles map[string]*structs.ACLRole, bindings []*structs.ACLBinding, grantor []string, role *structs.ACLRole, ns string) (rule int, res, act string, ok bool) {
	probeNS := append([]string{"", "*", "fresh-ns"}, genNamespaces...)
	probeNames := append([]string{"", "*", "fresh-name"}, genNames...)
	if ns != "" && !slices.Contains(probeNS, ns) {
		probeNS = append(probeNS, ns)
	}
	type held struct {
		rule *structs.ACLRule
		ns   string
	}
	var hs []held
	for _, b := range bindings {
		for _, s := range b.Subjects {
			if slices.Contains(grantor, s) {
				r := roles[b.Role]
				for i := range r.Rules {
					hs = append(hs, held{&r.Rules[i], b.Namespace})
				}
				break
			}
		}
	}
	for i := range role.Rules {
		need := &role.Rules[i]
		resources, actions := need.Resources, need.Actions
		if slices.Contains(resources, "*") {
			resources = []string{"*"}
		}
		if slices.Contains(actions, "*") {
			actions = []string{"*"}
		}
		for _, res := range resources {
			for _, act := range actions {
				if res != "*" && act != "*" && !structs.ValidACLAction(res, act) {
					continue
				}
				probeRes := []string{res}
				if res == "*" {
					probeRes = structs.ACLResourceNames()
				}
				// A rule that reaches nothing where it is bound grants
				// nothing and needs nothing.
				covered := true
				for _, pr := range probeRes {
					for _, pn := range probeNS {
						for _, pname := range probeNames {
							if naiveReaches(need, ns, pr, pn, pname) {
								covered = false
							}
						}
					}
				}
				for _, h := range hs {
					if res == "*" && !slices.Contains(h.rule.Resources, "*") ||
						res != "*" && !naiveListed(h.rule.Resources, res) ||
						act == "*" && !slices.Contains(h.rule.Actions, "*") ||
						act != "*" && !naiveListed(h.rule.Actions, act) {
						continue
					}
					contained := true
					for _, pr := range probeRes {
						for _, pn := range probeNS {
							for _, pname := range probeNames {
								if naiveReaches(need, ns, pr, pn, pname) && !naiveReaches(h.rule, h.ns, pr, pn, pname) {
									contained = false
								}
							}
						}
					}
					if contained {
						covered = true
						break
					}
				}
				if !covered {
					return i + 1, res, act, false
				}
			}
		}
	}
	return 0, "", "", true
}

// TestCheckGrantOracle checks CheckGrant against naiveCheckGrant, and that
// an accepted grant is no escalation: a fresh subject bound to the granted
// role can do nothing the grantor cannot.
func TestCheckGrantOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(*seed, 4))
	var accepted, refused int
	for w := range 3000 {
		roles, bindings := randWorld(r, 1+r.IntN(6), 1+r.IntN(10))
		a, err := Compile(roles, bindings)
		if err != nil {
			t.Fatal(err)
		}
		byName := roleMap(roles)
		grantor := randRequest(r).subjects
		var role *structs.ACLRole
		ns := ""
		if r.IntN(10) < 6 {
			ns = pick(r, genNamespaces)
		}
		if r.IntN(2) == 0 {
			role = randRole(r, "granted")
		} else {
			role = narrowedRole(r, byName, bindings, grantor, &ns)
		}
		rule, res, act, ok := naiveCheckGrant(byName, bindings, grantor, role, ns)
		err = a.CheckGrant(grantor, role, ns)
		if ok != (err == nil) {
			t.Fatalf("world %d: grantor %v, role %s in %q: CheckGrant = %v, naive ok=%v (rule %d %s:%s)\nroles: %s\nbindings: %s",
				w, grantor, dumpRoles([]*structs.ACLRole{role}), ns, err, ok, rule, res, act, dumpRoles(roles), dumpBindings(bindings))
		}
		if err != nil {
			refused++
			var ee *EscalationError
			if !errors.As(err, &ee) || !errors.Is(err, ErrEscalation) {
				t.Fatalf("error %v is not an escalation error", err)
			}
			if ee.Rule != rule || ee.Resource != res || ee.Action != act {
				t.Fatalf("world %d: CheckGrant names rule %d %s:%s, naive rule %d %s:%s\ngrantor %v role %s ns %q\nroles: %s\nbindings: %s", w, ee.Rule, ee.Resource, ee.Action, rule, res, act, grantor, dumpRoles([]*structs.ACLRole{role}), ns, dumpRoles(roles), dumpBindings(bindings))
			}
			continue
		}
		accepted++
		// No escalation: bind the role to a fresh subject and compare.
		withGrant, err := Compile(append(roles, role), append(bindings, &structs.ACLBinding{
			Name: "zz-granted", Role: role.Name, Subjects: []string{"user:grantee"}, Namespace: ns}))
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			q := randRequest(r)
			if withGrant.Authorize([]string{"user:grantee"}, q.resource, q.action, q.namespace, q.name).Allowed &&
				!a.Authorize(grantor, q.resource, q.action, q.namespace, q.name).Allowed {
				t.Fatalf("world %d: accepted grant of %s in %q lets the grantee do %+v, which grantor %v cannot",
					w, dumpRoles([]*structs.ACLRole{role}), ns, q, grantor)
			}
		}
	}
	if accepted < 300 || refused < 300 {
		t.Fatalf("%d accepted, %d refused: the generator is lopsided", accepted, refused)
	}
	t.Logf("%d accepted, %d refused", accepted, refused)
}

// narrowedRole returns a role made from one rule the grantor holds,
// sometimes narrowed, sometimes widened, so that many grants succeed and
// those that fail do so near the boundary.
func narrowedRole(r *rand.Rand, roles map[string]*structs.ACLRole, bindings []*structs.ACLBinding, grantor []string, ns *string) *structs.ACLRole {
	var mine []*structs.ACLBinding
	for _, b := range bindings {
		for _, s := range b.Subjects {
			if slices.Contains(grantor, s) {
				mine = append(mine, b)
				break
			}
		}
	}
	if len(mine) == 0 {
		return randRole(r, "granted")
	}
	b := pick(r, mine)
	src := pick(r, roles[b.Role].Rules)
	rule := structs.ACLRule{
		Resources: slices.Clone(src.Resources),
		Actions:   slices.Clone(src.Actions),
		Scope:     src.Scope,
	}
	*ns = b.Namespace
	if sc, err := structs.ParseACLScope(rule.Scope); err == nil && sc.Kind == structs.ACLScopeNamed && r.IntN(2) == 0 {
		// Another name or namespace for the same kind of object.
		if r.IntN(2) == 0 {
			sc.Name = pick(r, append([]string{"*"}, genNames...))
		} else {
			sc.Namespace = pick(r, append([]string{"*"}, genNamespaces...))
		}
		rule.Scope = sc.String()
	}
	switch r.IntN(6) {
	case 0: // bind it globally instead
		*ns = ""
	case 1: // widen the scope
		rule.Scope = pick(r, []string{"global", "namespace:*", "namespace:" + pick(r, genNamespaces)})
	case 2: // a wildcard action
		rule.Actions = []string{"*"}
	}
	if rule.Validate() != nil {
		return randRole(r, "granted")
	}
	return &structs.ACLRole{Name: "granted", Rules: []structs.ACLRule{rule}}
}
