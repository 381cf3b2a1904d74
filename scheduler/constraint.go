package scheduler

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/hivesec/hive/structs"
)

// resolveTarget turns a constraint target into a value for node n. Targets
// of the form ${...} name node fields; anything else is a literal.
// Supported: ${node.unique.id}, ${node.unique.name}, ${node.datacenter},
// ${node.pool}, ${attr.<key>} (fingerprint attributes) and ${meta.<key>}
// (node labels).
func resolveTarget(target string, n *structs.Node) (string, bool) {
	if !strings.HasPrefix(target, "${") || !strings.HasSuffix(target, "}") {
		return target, true
	}
	key := target[2 : len(target)-1]
	switch key {
	case "node.unique.id":
		return n.ID, true
	case "node.unique.name":
		return n.Name, true
	case "node.datacenter":
		v, ok := n.Labels["datacenter"]
		return v, ok
	case "node.pool":
		v, ok := n.Labels["node_pool"]
		return v, ok
	}
	if k, ok := strings.CutPrefix(key, "attr."); ok {
		v, ok := n.Attributes[k]
		return v, ok
	}
	if k, ok := strings.CutPrefix(key, "meta."); ok {
		v, ok := n.Labels[k]
		return v, ok
	}
	return "", false
}

// nodeCheck is a compiled constraint: cheap to run once per node.
type nodeCheck func(n *structs.Node) bool

// compileConstraint parses c once (regexp, version ranges) and returns the
// check. distinct_hosts is not a per-node property; callers handle it and
// get nil here.
func compileConstraint(c *structs.Constraint) (nodeCheck, error) {
	op := c.Operand
	if op == "" {
		op = structs.ConstraintEqual
	}
	l, r := c.LTarget, c.RTarget
	switch op {
	case structs.ConstraintDistinctHosts:
		return nil, nil
	case structs.ConstraintEqual, "==", "is":
		return func(n *structs.Node) bool {
			lv, lok := resolveTarget(l, n)
			rv, rok := resolveTarget(r, n)
			return lok && rok && lv == rv
		}, nil
	case structs.ConstraintNotEqual, "not":
		// As Nomad: a missing value differs from any present one.
		return func(n *structs.Node) bool {
			lv, lok := resolveTarget(l, n)
			rv, rok := resolveTarget(r, n)
			return lok != rok || lv != rv
		}, nil
	case "is_set":
		return func(n *structs.Node) bool { _, ok := resolveTarget(l, n); return ok }, nil
	case "is_not_set":
		return func(n *structs.Node) bool { _, ok := resolveTarget(l, n); return !ok }, nil
	case structs.ConstraintRegex:
		re, err := regexp.Compile(r)
		if err != nil {
			return nil, fmt.Errorf("constraint %q: bad regexp: %w", c.String(), err)
		}
		return func(n *structs.Node) bool {
			lv, ok := resolveTarget(l, n)
			return ok && re.MatchString(lv)
		}, nil
	case structs.ConstraintSetContains, "set_contains_all", "set_contains_any":
		want := splitSet(r)
		anyOf := op == "set_contains_any"
		return func(n *structs.Node) bool {
			lv, ok := resolveTarget(l, n)
			if !ok {
				return false
			}
			have := splitSet(lv)
			for _, w := range want {
				found := false
				for _, h := range have {
					if h == w {
						found = true
						break
					}
				}
				if found && anyOf {
					return true
				}
				if !found && !anyOf {
					return false
				}
			}
			return !anyOf
		}, nil
	case structs.ConstraintVersion, "semver":
		vc, err := parseVersionConstraint(r)
		if err != nil {
			return nil, fmt.Errorf("constraint %q: %w", c.String(), err)
		}
		return func(n *structs.Node) bool {
			lv, ok := resolveTarget(l, n)
			if !ok {
				return false
			}
			v, ok := parseVersion(lv)
			return ok && vc.check(v)
		}, nil
	case "<", "<=", ">", ">=":
		return func(n *structs.Node) bool {
			lv, lok := resolveTarget(l, n)
			rv, rok := resolveTarget(r, n)
			return lok && rok && compareOrdered(op, lv, rv)
		}, nil
	}
	return nil, fmt.Errorf("constraint %q: unknown operator %q", c.String(), op)
}

func splitSet(s string) []string {
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// compareOrdered compares numerically when both sides are numbers, else
// lexically, as Nomad's lexical/numeric operators do.
func compareOrdered(op, l, r string) bool {
	var c int
	lf, lerr := strconv.ParseFloat(l, 64)
	rf, rerr := strconv.ParseFloat(r, 64)
	switch {
	case lerr == nil && rerr == nil:
		c = cmpFloat(lf, rf)
	default:
		c = strings.Compare(l, r)
	}
	switch op {
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	}
	return c >= 0
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// version is a dotted numeric version. Anything after the numeric part
// ("-21-amd64" in a Debian kernel version, "+build", "-rc1") is ignored: on
// nodes those suffixes are packaging, not an older pre-release.
type version []int

func parseVersion(s string) (version, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	end := 0
	for end < len(s) && (s[end] == '.' || (s[end] >= '0' && s[end] <= '9')) {
		end++
	}
	s = strings.TrimSuffix(s[:end], ".")
	if s == "" {
		return nil, false
	}
	var v version
	for _, p := range strings.Split(s, ".") {
		if p == "" {
			return nil, false
		}
		x, err := strconv.Atoi(p)
		if err != nil {
			return nil, false
		}
		v = append(v, x)
	}
	return v, true
}

// compare treats missing trailing parts as zero: 1.2 == 1.2.0.
func (v version) compare(o version) int {
	for i := 0; i < len(v) || i < len(o); i++ {
		var a, b int
		if i < len(v) {
			a = v[i]
		}
		if i < len(o) {
			b = o[i]
		}
		if a != b {
			if a < b {
				return -1
			}
			return 1
		}
	}
	return 0
}

type versionTerm struct {
	op string
	v  version
}

// versionConstraint is a comma-separated conjunction of terms such as
// ">= 1.2, < 2.0" or "~> 5.10".
type versionConstraint []versionTerm

func parseVersionConstraint(s string) (versionConstraint, error) {
	var vc versionConstraint
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		op := "="
		for _, cand := range []string{">=", "<=", "!=", "~>", "==", ">", "<", "="} {
			if strings.HasPrefix(part, cand) {
				op, part = cand, strings.TrimSpace(part[len(cand):])
				break
			}
		}
		if op == "==" {
			op = "="
		}
		v, ok := parseVersion(part)
		if !ok {
			return nil, fmt.Errorf("bad version %q in %q", part, s)
		}
		vc = append(vc, versionTerm{op, v})
	}
	return vc, nil
}

func (vc versionConstraint) check(v version) bool {
	for _, t := range vc {
		c := v.compare(t.v)
		ok := false
		switch t.op {
		case "=":
			ok = c == 0
		case "!=":
			ok = c != 0
		case ">":
			ok = c > 0
		case ">=":
			ok = c >= 0
		case "<":
			ok = c < 0
		case "<=":
			ok = c <= 0
		case "~>":
			// Pessimistic: >= t.v and below the next release of its
			// second-to-last part (~> 1.2.3 means >= 1.2.3, < 1.3).
			ok = c >= 0
			if ok && len(t.v) > 1 {
				upper := append(version(nil), t.v[:len(t.v)-1]...)
				upper[len(upper)-1]++
				ok = v.compare(upper) < 0
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
