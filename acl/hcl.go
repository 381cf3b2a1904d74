package acl

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/hivesec/hive/structs"
)

// Spec is what one file for `hive apply -f` declares: roles and bindings,
// in file order. A binding may name a role defined elsewhere (a built-in
// one, or one already in the cluster); the server checks that it exists.
type Spec struct {
	Roles    []*structs.ACLRole
	Bindings []*structs.ACLBinding
}

// The file format:
//
//	role "deployer" {
//	  description = "deploys web"
//	  rule {
//	    resources = ["job", "alloc"]
//	    actions   = ["read", "list", "create"]
//	    scope     = "namespace:web"   # optional; global by default
//	  }
//	}
//	binding "alice-deploys" {
//	  role      = "deployer"
//	  subjects  = ["user:alice", "group:ops"]
//	  namespace = "web"                # optional; global by default
//	}
var (
	fileSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "role", LabelNames: []string{"name"}},
		{Type: "binding", LabelNames: []string{"name"}},
	}}
	roleSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "description"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "rule"}},
	}
	ruleSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "resources", Required: true},
		{Name: "actions", Required: true},
		{Name: "scope"},
	}}
	bindingSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "role", Required: true},
		{Name: "subjects", Required: true},
		{Name: "namespace"},
	}}
)

// ParseFile parses and validates roles and bindings from src, read from
// filename (used in messages only). Variables and functions are not
// available: these files are declarations, and what they grant should be
// readable as written. On any problem it returns nil and an *Error listing
// every problem found, each with file:line:col.
func ParseFile(filename string, src []byte) (*Spec, error) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, newError(diags)
	}
	p := &parser{}
	content, diags := file.Body.Content(fileSchema)
	p.diags = append(p.diags, diags...)
	spec := &Spec{}
	roleAt := map[string]hcl.Range{}
	bindingAt := map[string]hcl.Range{}
	for _, b := range content.Blocks {
		name, nameRange := b.Labels[0], b.LabelRanges[0]
		seen := roleAt
		if b.Type == "binding" {
			seen = bindingAt
		}
		if first, dup := seen[name]; dup {
			p.errorf(nameRange, "%s %q is already defined at line %d", b.Type, name, first.Start.Line)
			continue
		}
		seen[name] = nameRange
		switch b.Type {
		case "role":
			if r := p.role(b); r != nil {
				spec.Roles = append(spec.Roles, r)
			}
		case "binding":
			if bd := p.binding(b); bd != nil {
				spec.Bindings = append(spec.Bindings, bd)
			}
		}
	}
	if p.diags.HasErrors() {
		return nil, newError(p.diags)
	}
	return spec, nil
}

type parser struct {
	diags hcl.Diagnostics
}

func (p *parser) errorf(rng hcl.Range, format string, args ...any) {
	p.diags = append(p.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	})
}

// fail records a validation error at the argument it is about, or at
// fallback when it names no argument the block has.
func (p *parser) fail(err error, attrs hcl.Attributes, labelRange, fallback hcl.Range) {
	var fe *structs.FieldError
	if errors.As(err, &fe) {
		// Pointing at the argument says which one; the message need not.
		if fe.Field == "name" {
			p.errorf(labelRange, "%v", fe.Err)
			return
		}
		if a := attrs[fe.Field]; a != nil {
			p.errorf(a.Expr.Range(), "%v", fe.Err)
			return
		}
	}
	p.errorf(fallback, "%v", err)
}

func (p *parser) role(b *hcl.Block) *structs.ACLRole {
	content, diags := b.Body.Content(roleSchema)
	p.diags = append(p.diags, diags...)
	r := &structs.ACLRole{Name: b.Labels[0]}
	if isBuiltin(r.Name) {
		p.errorf(b.LabelRanges[0], "role %q is built in and cannot be redefined; bind it, or define a role with another name", r.Name)
		return nil
	}
	ok := p.str(content.Attributes["description"], &r.Description)
	if len(content.Blocks) == 0 {
		p.errorf(b.DefRange, "role %q has no rule blocks; a role must grant something", r.Name)
		return nil
	}
	for _, rb := range content.Blocks {
		rule, rok := p.rule(rb)
		ok = ok && rok
		r.Rules = append(r.Rules, rule)
	}
	if !ok {
		return nil
	}
	// Rules were checked one by one, at their own arguments; what is left
	// is the role's own fields.
	if err := r.Validate(); err != nil {
		p.fail(err, content.Attributes, b.LabelRanges[0], b.DefRange)
		return nil
	}
	return r
}

func (p *parser) rule(b *hcl.Block) (structs.ACLRule, bool) {
	content, diags := b.Body.Content(ruleSchema)
	p.diags = append(p.diags, diags...)
	if diags.HasErrors() {
		return structs.ACLRule{}, false
	}
	var r structs.ACLRule
	ok := p.strs(content.Attributes["resources"], &r.Resources)
	ok = p.strs(content.Attributes["actions"], &r.Actions) && ok
	ok = p.str(content.Attributes["scope"], &r.Scope) && ok
	if !ok {
		return r, false
	}
	if err := r.Validate(); err != nil {
		p.fail(err, content.Attributes, b.DefRange, b.DefRange)
		return r, false
	}
	return r, true
}

func (p *parser) binding(b *hcl.Block) *structs.ACLBinding {
	content, diags := b.Body.Content(bindingSchema)
	p.diags = append(p.diags, diags...)
	if diags.HasErrors() {
		return nil
	}
	bd := &structs.ACLBinding{Name: b.Labels[0]}
	ok := p.str(content.Attributes["role"], &bd.Role)
	ok = p.strs(content.Attributes["subjects"], &bd.Subjects) && ok
	ok = p.str(content.Attributes["namespace"], &bd.Namespace) && ok
	if !ok {
		return nil
	}
	if err := bd.Validate(); err != nil {
		p.fail(err, content.Attributes, b.LabelRanges[0], b.DefRange)
		return nil
	}
	return bd
}

// value evaluates a, with no variables or functions, as type ty. It
// reports false (having recorded why) if a is present but not a known,
// non-null value of that type; an absent a is fine and leaves ok true with
// a null value.
func (p *parser) value(a *hcl.Attribute, ty cty.Type, what string) (cty.Value, bool) {
	if a == nil {
		return cty.NullVal(ty), true
	}
	v, diags := a.Expr.Value(nil)
	p.diags = append(p.diags, diags...)
	if diags.HasErrors() {
		return cty.NilVal, false
	}
	if v.IsNull() || !v.IsWhollyKnown() {
		p.errorf(a.Expr.Range(), "%s must be %s", a.Name, what)
		return cty.NilVal, false
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		p.errorf(a.Expr.Range(), "%s must be %s, not %s", a.Name, what, v.Type().FriendlyName())
		return cty.NilVal, false
	}
	return cv, true
}

func (p *parser) str(a *hcl.Attribute, dst *string) bool {
	v, ok := p.value(a, cty.String, "a string")
	if ok && !v.IsNull() {
		*dst = v.AsString()
	}
	return ok
}

func (p *parser) strs(a *hcl.Attribute, dst *[]string) bool {
	v, ok := p.value(a, cty.List(cty.String), "a list of strings")
	if !ok || v.IsNull() {
		return ok
	}
	out := make([]string, 0, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() {
			p.errorf(a.Expr.Range(), "%s: list elements cannot be null", a.Name)
			return false
		}
		out = append(out, e.AsString())
	}
	*dst = out
	return true
}

// Problem is one error in a file, with the place it refers to. Line and
// Col are 1-based; both are 0 when the problem has no place.
type Problem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Message string `json:"message"`
}

// String renders the problem as "file:line:col: message".
func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Message)
	}
	if p.File != "" {
		return p.File + ": " + p.Message
	}
	return p.Message
}

// Error is what ParseFile returns for a bad file. Its text lists every
// problem as "file:line:col: message", one a line, in file order; Diags
// keeps the HCL diagnostics for callers that render source snippets.
type Error struct {
	Diags hcl.Diagnostics
}

func newError(diags hcl.Diagnostics) *Error {
	var errs hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errs = append(errs, d)
		}
	}
	sort.SliceStable(errs, func(i, j int) bool {
		return pos(errs[i]) < pos(errs[j])
	})
	return &Error{Diags: errs}
}

func pos(d *hcl.Diagnostic) int {
	if d.Subject == nil {
		return -1
	}
	return d.Subject.Start.Byte
}

// Error lists every problem, one a line.
func (e *Error) Error() string {
	ps := e.Problems()
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Problems returns the errors as positioned problems.
func (e *Error) Problems() []Problem {
	ps := make([]Problem, 0, len(e.Diags))
	for _, d := range e.Diags {
		msg := d.Summary
		// hcl's own diagnostics put the useful part in Detail; ours put
		// everything in Summary.
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		p := Problem{Message: msg}
		if d.Subject != nil {
			p.File, p.Line, p.Col = d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column
		}
		ps = append(ps, p)
	}
	return ps
}
