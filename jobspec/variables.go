package jobspec

import (
	"fmt"
	"maps"
	"os"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// variable is a declared input of a job file: variable "name" { ... }.
type variable struct {
	name  string
	block *hclsyntax.Block
	typ   cty.Type
	value cty.Value
	set   bool
	// failed is set when a value was given but was wrong; that problem
	// is reported, not a missing value.
	failed bool
	// from is where the value came from, for validation errors (nil for
	// -var).
	from *hcl.Range
	// validations are validation { condition, error_message } blocks.
	validations []*content
}

var variableSchema = &schema{
	name:   "variable block",
	attrs:  []string{"type", "default", "description", "sensitive"},
	blocks: map[string]int{"validation": 0},
	multi:  []string{"validation"},
}

var validationSchema = &schema{
	name:  "validation block",
	attrs: []string{"condition", "error_message"},
}

// constCtx evaluates defaults and var-file values: functions, but no
// variables, as those are what is being defined.
func constCtx() *hcl.EvalContext {
	return &hcl.EvalContext{Functions: functions()}
}

// variables decodes the variable blocks and gives each its value, from (in
// rising precedence) its default, the var files and opts.Vars.
func (d *decoder) variables(blocks []*hclsyntax.Block, opts Options) map[string]cty.Value {
	vars := map[string]*variable{}
	var order []*variable
	cd := &decoder{ctx: constCtx()}
	for _, b := range blocks {
		name := b.Labels[0]
		if !hclsyntax.ValidIdentifier(name) {
			d.errorf(b.LabelRanges[0], "invalid variable name %q: use letters, digits, '_' and '-', starting with a letter", name)
			continue
		}
		if prev := vars[name]; prev != nil {
			d.errorf(b.LabelRanges[0], "variable %q is declared twice; the first is at line %d", name, prev.block.DefRange().Start.Line)
			continue
		}
		v := &variable{name: name, block: b, typ: cty.DynamicPseudoType}
		vars[name] = v
		order = append(order, v)
		c := d.content(b.Body, variableSchema)
		if a := c.attrs["type"]; a != nil {
			ty, diags := typeexpr.TypeConstraint(a.Expr)
			if diags.HasErrors() {
				d.diags = append(d.diags, diags...)
			} else {
				v.typ = ty
			}
		}
		if a := c.attrs["description"]; a != nil {
			var s string
			cd.str(a, &s)
		}
		if a := c.attrs["sensitive"]; a != nil {
			var s bool
			cd.boolean(a, &s)
		}
		if a := c.attrs["default"]; a != nil {
			val, diags := a.Expr.Value(cd.ctx)
			if diags.HasErrors() {
				d.diags = append(d.diags, diags...)
				v.failed = true
			} else if cv, err := convert.Convert(val, v.typ); err != nil {
				d.errorf(a.Expr.Range(), "default for variable %q: %s", name, convertMessage(err))
				v.failed = true
			} else {
				v.value, v.set, v.from = cv, true, a.Expr.Range().Ptr()
			}
		}
		for _, vb := range c.blocks["validation"] {
			vc := d.content(vb.Body, validationSchema)
			if vc.attrs["condition"] == nil {
				d.errorf(vb.TypeRange, "validation block needs a condition")
				continue
			}
			v.validations = append(v.validations, vc)
		}
	}
	d.diags = append(d.diags, cd.diags...)

	for _, path := range opts.VarFiles {
		d.varFile(path, vars)
	}

	names := make([]string, 0, len(opts.Vars))
	for k := range opts.Vars {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := vars[k]
		if v == nil {
			d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagError,
				Summary: fmt.Sprintf("-var %s: the job file declares no variable %q", k, k)})
			continue
		}
		raw := opts.Vars[k]
		if v.typ == cty.String || v.typ == cty.DynamicPseudoType {
			v.value, v.set, v.from = cty.StringVal(raw), true, nil
			continue
		}
		// Other types are written as HCL on the command line, as in
		// Terraform and Nomad: -var 'ports=[80, 443]'.
		expr, diags := hclsyntax.ParseExpression([]byte(raw), "-var "+k, hcl.InitialPos)
		if diags.HasErrors() {
			d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagError,
				Summary: fmt.Sprintf("-var %s: %q is not a valid %s", k, raw, v.typ.FriendlyName())})
			v.failed = true
			continue
		}
		val, diags := expr.Value(constCtx())
		cv, err := convert.Convert(val, v.typ)
		if diags.HasErrors() || err != nil {
			d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagError,
				Summary: fmt.Sprintf("-var %s: %q is not a valid %s", k, raw, v.typ.FriendlyName())})
			v.failed = true
			continue
		}
		v.value, v.set, v.from = cv, true, nil
	}

	out := map[string]cty.Value{}
	for _, v := range order {
		if v.failed && !v.set {
			continue
		}
		if !v.set {
			d.errorf(v.block.DefRange(), "variable %q is required: give it a value with -var %s=... or in a var file", v.name, v.name)
			continue
		}
		if d.validate(v) {
			out[v.name] = v.value
		}
	}
	return out
}

// varFile reads a file of name = value lines.
func (d *decoder) varFile(path string, vars map[string]*variable) {
	src, err := os.ReadFile(path)
	if err != nil {
		d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagError,
			Summary: fmt.Sprintf("var file: %v", err)})
		return
	}
	f, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		d.diags = append(d.diags, diags...)
		return
	}
	body := f.Body.(*hclsyntax.Body)
	for _, b := range body.Blocks {
		d.errorf(b.TypeRange, "a var file holds only name = value lines, not blocks")
	}
	for _, a := range sortedAttrs(body) {
		v := vars[a.Name]
		if v == nil {
			d.errorf(a.NameRange, "the job file declares no variable %q", a.Name)
			continue
		}
		val, diags := a.Expr.Value(constCtx())
		if diags.HasErrors() {
			d.diags = append(d.diags, diags...)
			v.failed = true
			continue
		}
		cv, err := convert.Convert(val, v.typ)
		if err != nil {
			d.errorf(a.Expr.Range(), "variable %q: %s", a.Name, convertMessage(err))
			v.failed = true
			continue
		}
		v.value, v.set, v.from = cv, true, a.Expr.Range().Ptr()
	}
}

// validate runs a variable's validation blocks against its value.
func (d *decoder) validate(v *variable) bool {
	ok := true
	for _, vc := range v.validations {
		ctx := constCtx()
		ctx.Variables = map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{v.name: v.value})}
		cond := vc.attrs["condition"]
		res, diags := cond.Expr.Value(ctx)
		if diags.HasErrors() {
			d.diags = append(d.diags, diags...)
			ok = false
			continue
		}
		if res, err := convert.Convert(res, cty.Bool); err != nil || res.IsNull() || !res.IsKnown() {
			d.errorf(cond.Expr.Range(), "validation condition for variable %q must be true or false", v.name)
			ok = false
			continue
		} else if res.True() {
			continue
		}
		msg := "the value fails its validation condition"
		if a := vc.attrs["error_message"]; a != nil {
			if m, diags := a.Expr.Value(constCtx()); !diags.HasErrors() && m.Type() == cty.String && m.IsKnown() && !m.IsNull() {
				msg = m.AsString()
			}
		}
		if v.from == nil {
			d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagError,
				Summary: fmt.Sprintf("-var %s: invalid value: %s", v.name, msg)})
		} else {
			d.errorf(*v.from, "invalid value for variable %q: %s", v.name, msg)
		}
		ok = false
	}
	return ok
}

// locals evaluates locals { name = expr } blocks. A local may use
// variables and other locals in any order; they are evaluated as their
// references resolve.
func (d *decoder) locals(blocks []*hclsyntax.Block) map[string]cty.Value {
	defs := map[string]*hclsyntax.Attribute{}
	var pending []*hclsyntax.Attribute
	for _, b := range blocks {
		for _, nb := range b.Body.Blocks {
			d.errorf(nb.TypeRange, "locals block takes only name = value lines, not blocks")
		}
		for _, a := range sortedAttrs(b.Body) {
			if prev := defs[a.Name]; prev != nil {
				d.errorf(a.NameRange, "local %q is defined twice; the first is at line %d", a.Name, prev.NameRange.Start.Line)
				continue
			}
			defs[a.Name] = a
			pending = append(pending, a)
		}
	}
	vals := map[string]cty.Value{}
	failed := map[string]bool{}
	for len(pending) > 0 {
		var next []*hclsyntax.Attribute
	attrs:
		for _, a := range pending {
			for _, tr := range a.Expr.Variables() {
				if tr.RootName() != "local" || len(tr) < 2 {
					continue
				}
				ref, ok := tr[1].(hcl.TraverseAttr)
				if !ok {
					continue
				}
				if defs[ref.Name] == nil {
					d.errorf(tr.SourceRange(), "there is no local named %q", ref.Name)
					failed[a.Name] = true
					continue attrs
				}
				if failed[ref.Name] {
					failed[a.Name] = true // already reported where it failed
					continue attrs
				}
				if _, done := vals[ref.Name]; !done {
					next = append(next, a)
					continue attrs
				}
			}
			ctx := d.ctx.NewChild()
			ctx.Variables = map[string]cty.Value{"local": cty.ObjectVal(maps.Clone(vals))}
			v, diags := evalExpr(ctx, a.Expr)
			if diags.HasErrors() {
				d.diags = append(d.diags, diags...)
				failed[a.Name] = true
				continue
			}
			vals[a.Name] = v
		}
		if len(next) == len(pending) {
			for _, a := range next {
				d.errorf(a.NameRange, "local %q depends on itself through other locals", a.Name)
			}
			break
		}
		pending = next
	}
	return vals
}

// convertMessage words a cty conversion error for a job file author.
func convertMessage(err error) string {
	return err.Error()
}
