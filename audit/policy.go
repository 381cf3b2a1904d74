package audit

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Policy decides the Level of each request: its rules are tried in order
// and the first that matches wins; when none matches the level is
// LevelMetadata, so that forgetting a rule never silences the log. A last
// rule with no matchers, `rule { level = "none" }`, changes that default.
type Policy struct {
	Rules []Rule
}

// Rule matches a request when every list it sets matches (an empty list
// matches anything). Patterns may contain '*', which matches any run of
// characters, '/' and ':' included.
type Rule struct {
	// Users match the subject. A pattern with a ':' is matched against the
	// whole subject ("sa:prod/ci", "node:*"); one without is matched
	// against a user's name ("alice" matches "user:alice") or a subject
	// with no kind ("anonymous"); "*" matches every subject.
	Users      []string
	Groups     []string // matches if any of the request's groups matches
	Resources  []string
	Actions    []string
	Namespaces []string
	Level      Level
}

// Level returns the level for a request. A nil Policy gives LevelMetadata.
func (p *Policy) Level(subject string, groups []string, resource, action, namespace string) Level {
	if p == nil {
		return LevelMetadata
	}
	for i := range p.Rules {
		if p.Rules[i].matches(subject, groups, resource, action, namespace) {
			return p.Rules[i].Level
		}
	}
	return LevelMetadata
}

func (r *Rule) matches(subject string, groups []string, resource, action, namespace string) bool {
	if len(r.Users) > 0 && !anyMatch(r.Users, subject, matchSubject) {
		return false
	}
	if len(r.Groups) > 0 {
		found := false
		for _, g := range groups {
			if anyMatch(r.Groups, g, glob) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return (len(r.Resources) == 0 || anyMatch(r.Resources, resource, glob)) &&
		(len(r.Actions) == 0 || anyMatch(r.Actions, action, glob)) &&
		(len(r.Namespaces) == 0 || anyMatch(r.Namespaces, namespace, glob))
}

func anyMatch(patterns []string, s string, match func(pattern, s string) bool) bool {
	for _, p := range patterns {
		if match(p, s) {
			return true
		}
	}
	return false
}

func matchSubject(pattern, subject string) bool {
	if pattern == "*" || strings.Contains(pattern, ":") {
		return glob(pattern, subject)
	}
	name, ok := strings.CutPrefix(subject, "user:")
	if !ok {
		if strings.Contains(subject, ":") {
			return false // a node or service account, not a user
		}
		name = subject
	}
	return glob(pattern, name)
}

// glob matches s against pattern, in which '*' stands for any run of
// characters. path.Match is not used because its '*' stops at '/', and
// "*" must match "secret/value".
func glob(pattern, s string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == s
	}
	parts := strings.Split(pattern, "*")
	first, last := parts[0], parts[len(parts)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	// Match the middle parts leftmost-first in what lies between the
	// fixed prefix and suffix; for '*'-only patterns that is exact.
	mid := s[len(first) : len(s)-len(last)]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(mid, p)
		if i < 0 {
			return false
		}
		mid = mid[i+len(p):]
	}
	return true
}

// PolicyError is returned by ParsePolicy. Its message lists each problem
// as "file:line:col: message", one a line.
type PolicyError struct {
	Diags hcl.Diagnostics
}

// Error lists the problems in file order.
func (e *PolicyError) Error() string {
	var lines []string
	for _, d := range e.Diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		if d.Subject != nil {
			msg = fmt.Sprintf("%s:%d:%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, msg)
		}
		lines = append(lines, msg)
	}
	return strings.Join(lines, "\n")
}

var policySchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{{Type: "rule"}},
}

var ruleSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "users"},
		{Name: "groups"},
		{Name: "resources"},
		{Name: "actions"},
		{Name: "namespaces"},
		{Name: "level", Required: true},
	},
}

// ParsePolicy parses an audit policy written in HCL:
//
//	rule {
//	  users      = ["alice"]
//	  groups     = ["ops"]
//	  resources  = ["secret/value"]
//	  actions    = ["read"]
//	  namespaces = ["prod"]
//	  level      = "request" # none | metadata | request | request-response
//	}
//
// Unknown attributes and blocks, non-literal values and bad levels are
// errors (a *PolicyError) that carry file:line:col.
func ParsePolicy(filename string, src []byte) (*Policy, error) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, &PolicyError{Diags: diags}
	}
	content, diags := file.Body.Content(policySchema)
	p := &Policy{}
	for _, b := range content.Blocks {
		r, ds := parseRule(b)
		diags = append(diags, ds...)
		p.Rules = append(p.Rules, r)
	}
	if diags.HasErrors() {
		// In file order, whichever pass found them.
		sort.SliceStable(diags, func(i, j int) bool {
			return diagOffset(diags[i]) < diagOffset(diags[j])
		})
		return nil, &PolicyError{Diags: diags}
	}
	return p, nil
}

func diagOffset(d *hcl.Diagnostic) int {
	if d.Subject == nil {
		return -1
	}
	return d.Subject.Start.Byte
}

func parseRule(b *hcl.Block) (Rule, hcl.Diagnostics) {
	var r Rule
	content, diags := b.Body.Content(ruleSchema)
	// A slice, not a map, so that problems come out in a stable order.
	lists := []struct {
		name string
		dst  *[]string
	}{
		{"users", &r.Users}, {"groups", &r.Groups}, {"resources", &r.Resources},
		{"actions", &r.Actions}, {"namespaces", &r.Namespaces},
	}
	for _, l := range lists {
		if a := content.Attributes[l.name]; a != nil {
			*l.dst, diags = stringList(a, diags)
		}
	}
	if a := content.Attributes["level"]; a != nil {
		v, ds := a.Expr.Value(nil)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			var s string
			if sv, err := convert.Convert(v, cty.String); err != nil || sv.IsNull() || !sv.IsKnown() {
				diags = append(diags, attrError(a, "level must be a string"))
			} else {
				s = sv.AsString()
				if lvl, err := ParseLevel(s); err != nil {
					diags = append(diags, attrError(a, fmt.Sprintf("unknown level %q: use none, metadata, request or request-response", s)))
				} else {
					r.Level = lvl
				}
			}
		}
	}
	return r, diags
}

func stringList(a *hcl.Attribute, diags hcl.Diagnostics) ([]string, hcl.Diagnostics) {
	v, ds := a.Expr.Value(nil)
	diags = append(diags, ds...)
	if ds.HasErrors() {
		return nil, diags
	}
	lv, err := convert.Convert(v, cty.List(cty.String))
	if err != nil || lv.IsNull() || !lv.IsWhollyKnown() {
		return nil, append(diags, attrError(a, a.Name+" must be a list of strings"))
	}
	if lv.LengthInt() == 0 {
		// An empty list would match nothing, which is never what was meant.
		return nil, append(diags, attrError(a, a.Name+" must not be empty: leave it out to match anything"))
	}
	var out []string
	for it := lv.ElementIterator(); it.Next(); {
		_, ev := it.Element()
		if ev.IsNull() || ev.AsString() == "" {
			return nil, append(diags, attrError(a, a.Name+" must not contain empty strings"))
		}
		out = append(out, ev.AsString())
	}
	return out, diags
}

func attrError(a *hcl.Attribute, msg string) *hcl.Diagnostic {
	rng := a.Expr.Range()
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: msg, Subject: &rng}
}
