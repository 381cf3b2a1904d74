package acl

import (
	"errors"
	"fmt"

	"github.com/hivesec/hive/structs"
)

// ErrEscalation is what every refused grant wraps: the grantor tried to
// give a permission it does not hold.
var ErrEscalation = errors.New("escalation refused")

// EscalationError names the first permission a grant would give that the
// grantor does not hold, so the API can say exactly what is missing.
type EscalationError struct {
	Role      string
	Namespace string // the binding's; "" for a global binding or a role change
	Rule      int    // 1-based index of the role's rule that grants it
	Resource  string
	Action    string
	Scope     string // as the binding would confine it
}

// Error names the role, where it would be bound and what is missing.
func (e *EscalationError) Error() string {
	where := "globally"
	if e.Namespace != "" {
		where = fmt.Sprintf("in namespace %q", e.Namespace)
	}
	return fmt.Sprintf("%v: granting role %q %s gives %s:%s @ %s (rule %d), which the grantor does not hold",
		ErrEscalation, e.Role, where, e.Resource, e.Action, e.Scope, e.Rule)
}

// Unwrap returns ErrEscalation.
func (e *EscalationError) Unwrap() error { return ErrEscalation }

// CheckGrant reports whether grantor (the caller's subjects) may create or
// change role, or bind it in namespace ("" = globally; also what to pass
// for a change to the role itself, whose rules then apply as written).
// Nobody may grant what they do not hold: for every resource and action
// each rule gives, at the scope the binding would confine it to, the
// grantor must hold a rule allowing that action on that resource at that
// scope or a wider one. Wildcards must be held as wildcards: granting
// resource "*" needs "*" (not every resource listed one by one, since "*"
// also covers resources added later), and granting namespace:* needs
// global or namespace:*. Pairs that do not exist (job:drain) grant nothing
// and need nothing. The error is an *EscalationError naming the first
// missing permission, in the role's order, or a validation error.
func (a *Authorizer) CheckGrant(grantor []string, role *structs.ACLRole, namespace string) error {
	if role == nil {
		return errors.New("check grant: no role")
	}
	if err := role.Validate(); err != nil {
		return fmt.Errorf("check grant: %w", err)
	}
	if namespace != "" {
		if err := structs.ValidateName("namespace", namespace); err != nil {
			return fmt.Errorf("check grant: %w", err)
		}
	}
	held := a.grantsOf(grantor)
	for i := range role.Rules {
		rule := &role.Rules[i]
		scope, _ := structs.ParseACLScope(rule.Scope) // validated above
		need, ok := confine(scope, namespace)
		if !ok {
			continue // the binding would not apply this rule at all
		}
		resources, actions := rule.Resources, rule.Actions
		if contains(resources, structs.ACLWildcard) {
			resources = []string{structs.ACLWildcard}
		}
		if contains(actions, structs.ACLWildcard) {
			actions = []string{structs.ACLWildcard}
		}
		for _, res := range resources {
			for _, act := range actions {
				if res != structs.ACLWildcard && act != structs.ACLWildcard && !structs.ValidACLAction(res, act) {
					continue
				}
				if !holds(held, res, act, need) {
					return &EscalationError{Role: role.Name, Namespace: namespace, Rule: i + 1,
						Resource: res, Action: act, Scope: need.String()}
				}
			}
		}
	}
	return nil
}

// grantsOf returns the grants of subjects, each once.
func (a *Authorizer) grantsOf(subjects []string) []*grant {
	if a == nil {
		return nil
	}
	var out []*grant
	seen := map[*grant]bool{}
	for _, s := range subjects {
		if i, ok := a.subjectIdx[s]; ok {
			for _, gr := range a.grants[i] {
				if !seen[gr] {
					seen[gr] = true
					out = append(out, gr)
				}
			}
		}
	}
	return out
}

// holds reports whether one of held allows act on res throughout need.
func holds(held []*grant, res, act string, need structs.ACLScope) bool {
	for _, h := range held {
		if (h.anyResource || (res != structs.ACLWildcard && contains(h.resources, res))) &&
			(h.anyAction || (act != structs.ACLWildcard && contains(h.actions, act))) &&
			scopeCovers(h.scope, need, res) {
			return true
		}
	}
	return false
}

// scopeCovers reports whether a grant of res at scope h reaches everything
// a grant of res at scope need reaches.
func scopeCovers(h, need structs.ACLScope, res string) bool {
	switch h.Kind {
	case structs.ACLScopeGlobal:
		return true
	case structs.ACLScopeNamespace:
		switch need.Kind {
		case structs.ACLScopeGlobal:
			return false // global also reaches cluster-wide objects
		case structs.ACLScopeNamespace, structs.ACLScopeNamed:
			return h.Namespace == structs.ACLWildcard || h.Namespace == need.Namespace
		}
	case structs.ACLScopeNamed:
		if need.Kind != structs.ACLScopeNamed {
			return false
		}
		// h reaches only its kind's family; a wildcard resource in need
		// means need's whole family, which h must include.
		kindOK := h.Covers(res)
		if res == structs.ACLWildcard {
			kindOK = h.Covers(need.Resource)
		}
		return kindOK && wildMatch(h.Namespace, need.Namespace) && wildMatch(h.Name, need.Name)
	}
	return false
}

// wildMatch reports whether pattern p ("*" or a value) matches v; a
// wildcard v is matched only by a wildcard.
func wildMatch(p, v string) bool { return p == structs.ACLWildcard || p == v }
