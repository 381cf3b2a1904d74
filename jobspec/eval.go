package jobspec

import (
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// functions is the function set job files may call. It leaves out what
// could read the machine the parser runs on (file, env, timestamp) so a
// job means the same wherever it is parsed, and what could make one short
// expression allocate without bound (range).
func functions() map[string]function.Function {
	return map[string]function.Function{
		"abs":        stdlib.AbsoluteFunc,
		"ceil":       stdlib.CeilFunc,
		"chomp":      stdlib.ChompFunc,
		"coalesce":   coalesceFunc,
		"compact":    stdlib.CompactFunc,
		"concat":     stdlib.ConcatFunc,
		"contains":   stdlib.ContainsFunc,
		"distinct":   stdlib.DistinctFunc,
		"element":    stdlib.ElementFunc,
		"flatten":    stdlib.FlattenFunc,
		"floor":      stdlib.FloorFunc,
		"format":     boundedFormat(stdlib.FormatFunc),
		"formatlist": boundedFormat(stdlib.FormatListFunc),
		"join":       stdlib.JoinFunc,
		"jsondecode": stdlib.JSONDecodeFunc,
		"jsonencode": stdlib.JSONEncodeFunc,
		"keys":       stdlib.KeysFunc,
		"length":     lengthFunc,
		"lookup":     stdlib.LookupFunc,
		"lower":      stdlib.LowerFunc,
		"max":        stdlib.MaxFunc,
		"merge":      stdlib.MergeFunc,
		"min":        stdlib.MinFunc,
		"regex":      stdlib.RegexFunc,
		"regexall":   stdlib.RegexAllFunc,
		"replace":    stdlib.ReplaceFunc,
		"reverse":    stdlib.ReverseListFunc,
		"slice":      stdlib.SliceFunc,
		"sort":       stdlib.SortFunc,
		"split":      stdlib.SplitFunc,
		"strlen":     stdlib.StrlenFunc,
		"substr":     stdlib.SubstrFunc,
		"tobool":     stdlib.MakeToFunc(cty.Bool),
		"tolist":     stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap":      stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"tonumber":   stdlib.MakeToFunc(cty.Number),
		"toset":      stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tostring":   stdlib.MakeToFunc(cty.String),
		"trim":       stdlib.TrimFunc,
		"trimprefix": stdlib.TrimPrefixFunc,
		"trimspace":  stdlib.TrimSpaceFunc,
		"trimsuffix": stdlib.TrimSuffixFunc,
		"upper":      stdlib.UpperFunc,
		"values":     stdlib.ValuesFunc,
	}
}

// lengthFunc is length() as Terraform and Nomad users know it: it also
// counts the characters of a string and the attributes of an object, which
// cty's LengthFunc refuses.
var lengthFunc = function.New(&function.Spec{
	Description: "Returns the number of elements of a collection or characters of a string.",
	Params: []function.Parameter{{
		Name:             "value",
		Type:             cty.DynamicPseudoType,
		AllowDynamicType: true,
		AllowUnknown:     true,
	}},
	Type: function.StaticReturnType(cty.Number),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		v := args[0]
		if !v.IsKnown() {
			return cty.UnknownVal(cty.Number), nil
		}
		if v.IsNull() {
			return cty.NilVal, fmt.Errorf("argument must not be null")
		}
		switch ty := v.Type(); {
		case ty == cty.String:
			return stdlib.Strlen(v)
		case ty.IsObjectType():
			return cty.NumberIntVal(int64(len(ty.AttributeTypes()))), nil
		case ty.IsListType(), ty.IsSetType(), ty.IsMapType(), ty.IsTupleType():
			return v.Length(), nil
		}
		return cty.NilVal, fmt.Errorf("cannot take the length of %s", v.Type().FriendlyName())
	},
})

// maxFormatWidth bounds the width and precision in format verbs: the
// manager parses job files users send, and format("%999999999d", 1)
// would otherwise allocate a gigabyte.
const maxFormatWidth = 1000

// boundedFormat wraps format or formatlist to refuse wider verbs than
// maxFormatWidth.
func boundedFormat(f function.Function) function.Function {
	return function.New(&function.Spec{
		Description: f.Description(),
		Params:      f.Params(),
		VarParam:    f.VarParam(),
		Type: func(args []cty.Value) (cty.Type, error) {
			return f.ReturnTypeForValues(args)
		},
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if len(args) > 0 && args[0].IsKnown() && !args[0].IsNull() && args[0].Type() == cty.String {
				if err := checkFormatWidth(args[0].AsString()); err != nil {
					return cty.NilVal, function.NewArgError(0, err)
				}
			}
			return f.Call(args)
		},
	})
}

// checkFormatWidth refuses a number longer than 3 digits inside a verb.
func checkFormatWidth(format string) error {
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		digits := 0
		for i++; i < len(format); i++ {
			c := format[i]
			switch {
			case c >= '0' && c <= '9':
				digits++
				if digits > 3 {
					return fmt.Errorf("format widths and precisions are limited to %d", maxFormatWidth)
				}
				continue
			case c == '.' || c == '-' || c == '+' || c == '#' || c == ' ' || c == '[' || c == ']' || c == '*':
				digits = 0
				continue
			}
			break
		}
	}
	return nil
}

// coalesceFunc is coalesce() as Terraform and Nomad users know it: the
// first argument that is neither null nor an empty string. cty's
// CoalesceFunc skips only nulls.
var coalesceFunc = function.New(&function.Spec{
	Description: "Returns the first argument that is not null or an empty string.",
	VarParam: &function.Parameter{
		Name:             "vals",
		Type:             cty.DynamicPseudoType,
		AllowNull:        true,
		AllowUnknown:     true,
		AllowDynamicType: true,
	},
	Type: func(args []cty.Value) (cty.Type, error) {
		types := make([]cty.Type, len(args))
		for i, a := range args {
			types[i] = a.Type()
		}
		ty, _ := convert.UnifyUnsafe(types)
		if ty == cty.NilType {
			return cty.NilType, fmt.Errorf("all arguments must have the same type")
		}
		return ty, nil
	},
	Impl: func(args []cty.Value, ty cty.Type) (cty.Value, error) {
		for _, a := range args {
			v, err := convert.Convert(a, ty)
			if err != nil {
				return cty.NilVal, err
			}
			if !v.IsKnown() {
				return cty.UnknownVal(ty), nil
			}
			if v.IsNull() || (v.Type() == cty.String && v.AsString() == "") {
				continue
			}
			return v, nil
		}
		return cty.NilVal, fmt.Errorf("no argument is set: all are null or empty strings")
	},
})

// Runtime references. Nomad job files say "${attr.kernel.name}" in
// constraints and "${NOMAD_PORT_http}" in env and args; in HCL2 those are
// interpolations. As in Nomad, references rooted at these names evaluate
// to their own "${...}" text, so they reach the scheduler and the worker
// unchanged.
var runtimeRoots = map[string]bool{"attr": true, "node": true, "meta": true, "env": true}

func isRuntimeRoot(name string) bool {
	return runtimeRoots[name] || strings.HasPrefix(name, "NOMAD_")
}

// refTree collects the runtime references of one expression so they can
// be given values that render back to their source text.
type refTree struct {
	text     string
	children map[string]*refTree
}

func (t *refTree) add(path []string) {
	n := t
	for i, name := range path {
		if n.children == nil {
			n.children = map[string]*refTree{}
		}
		c := n.children[name]
		if c == nil {
			c = &refTree{}
			n.children[name] = c
		}
		n = c
		if i == len(path)-1 {
			n.text = "${" + strings.Join(path, ".") + "}"
		}
	}
}

func (t *refTree) value() cty.Value {
	// A path that is both a leaf and a prefix of another (attr.a and
	// attr.a.b in one expression) keeps its children; the leaf use then
	// fails to convert, which is reported, not a crash.
	if len(t.children) == 0 {
		return cty.StringVal(t.text)
	}
	attrs := make(map[string]cty.Value, len(t.children))
	for k, c := range t.children {
		attrs[k] = c.value()
	}
	return cty.ObjectVal(attrs)
}

// runtimePath returns the names along a runtime reference, stopping at the
// first step that is not a plain name (a numeric index, a splat).
func runtimePath(tr hcl.Traversal) []string {
	path := []string{tr.RootName()}
	for _, step := range tr[1:] {
		switch s := step.(type) {
		case hcl.TraverseAttr:
			path = append(path, s.Name)
		case hcl.TraverseIndex:
			if s.Key.Type() != cty.String || !s.Key.IsKnown() || s.Key.IsNull() {
				return path
			}
			path = append(path, s.Key.AsString())
		default:
			return path
		}
	}
	return path
}

// evalExpr evaluates expr in ctx with runtime references rendered back to
// their text.
func evalExpr(ctx *hcl.EvalContext, expr hcl.Expression) (cty.Value, hcl.Diagnostics) {
	var refs *refTree
	for _, tr := range expr.Variables() {
		if !isRuntimeRoot(tr.RootName()) {
			continue
		}
		if refs == nil {
			refs = &refTree{}
		}
		refs.add(runtimePath(tr))
	}
	if refs != nil {
		ctx = ctx.NewChild()
		ctx.Variables = make(map[string]cty.Value, len(refs.children))
		for k, c := range refs.children {
			ctx.Variables[k] = c.value()
		}
	}
	v, diags := expr.Value(ctx)
	if !diags.HasErrors() && !v.IsWhollyKnown() {
		diags = diags.Append(&hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "value is not known when the job is parsed",
			Subject:  expr.Range().Ptr(),
		})
	}
	return v, diags
}

// decoder turns HCL bodies into structs, collecting every problem rather
// than stopping at the first, so one run of `hive job plan` shows them all.
type decoder struct {
	ctx   *hcl.EvalContext
	diags hcl.Diagnostics
	warns hcl.Diagnostics
	// static files (network policies) are declarations: no variables,
	// functions or runtime references, so what they allow reads as
	// written.
	static bool
}

func (d *decoder) errorf(rng hcl.Range, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	})
}

func (d *decoder) warnf(rng hcl.Range, format string, args ...any) {
	d.warns = append(d.warns, &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	})
}

// value evaluates an attribute, converted to ty. ok is false when the
// attribute is absent, null, or wrong (the problem is then recorded).
func (d *decoder) value(a *hclsyntax.Attribute, ty cty.Type, what string) (cty.Value, bool) {
	if a == nil {
		return cty.NilVal, false
	}
	var v cty.Value
	var diags hcl.Diagnostics
	if d.static {
		v, diags = a.Expr.Value(nil)
	} else {
		v, diags = evalExpr(d.ctx, a.Expr)
	}
	if diags.HasErrors() {
		d.diags = append(d.diags, diags...)
		return cty.NilVal, false
	}
	if v.IsNull() {
		return cty.NilVal, false
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		d.errorf(a.Expr.Range(), "%s: %s is required, got %s", a.Name, what, typeName(v.Type()))
		return cty.NilVal, false
	}
	return cv, true
}

func typeName(ty cty.Type) string {
	switch {
	case ty == cty.String:
		return "a string"
	case ty == cty.Number:
		return "a number"
	case ty == cty.Bool:
		return "a bool"
	case ty.IsTupleType() || ty.IsListType() || ty.IsSetType():
		return "a list"
	case ty.IsObjectType() || ty.IsMapType():
		return "an object"
	}
	return ty.FriendlyName()
}

func (d *decoder) str(a *hclsyntax.Attribute, dst *string) bool {
	v, ok := d.value(a, cty.String, "a string")
	if ok {
		*dst = v.AsString()
	}
	return ok
}

func (d *decoder) boolean(a *hclsyntax.Attribute, dst *bool) bool {
	v, ok := d.value(a, cty.Bool, "a bool")
	if ok {
		*dst = v.True()
	}
	return ok
}

// integer decodes a whole number in [lo, hi].
func (d *decoder) integer(a *hclsyntax.Attribute, lo, hi int, dst *int) bool {
	v, ok := d.value(a, cty.Number, "a number")
	if !ok {
		return false
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		d.errorf(a.Expr.Range(), "%s must be a whole number, got %s", a.Name, bf.Text('g', 10))
		return false
	}
	if bf.Cmp(big.NewFloat(float64(lo))) < 0 {
		d.errorf(a.Expr.Range(), "%s must be at least %d, got %s", a.Name, lo, bf.Text('g', 10))
		return false
	}
	if bf.Cmp(big.NewFloat(float64(hi))) > 0 {
		d.errorf(a.Expr.Range(), "%s must be at most %d, got %s", a.Name, hi, bf.Text('g', 10))
		return false
	}
	i, _ := bf.Int64()
	*dst = int(i)
	return true
}

// duration decodes a Go duration string ("30s", "1h30m"), not negative.
func (d *decoder) duration(a *hclsyntax.Attribute, dst *time.Duration) bool {
	if a == nil {
		return false
	}
	v, diags := evalExpr(d.ctx, a.Expr)
	if diags.HasErrors() {
		d.diags = append(d.diags, diags...)
		return false
	}
	if v.IsNull() {
		return false
	}
	if v.Type() != cty.String {
		d.errorf(a.Expr.Range(), "%s: a duration string like \"30s\" or \"5m\" is required, got %s", a.Name, typeName(v.Type()))
		return false
	}
	dur, err := time.ParseDuration(v.AsString())
	if err != nil {
		d.errorf(a.Expr.Range(), "%s: invalid duration %q: use a number and a unit, like \"30s\", \"5m\" or \"1h\"", a.Name, v.AsString())
		return false
	}
	if dur < 0 {
		d.errorf(a.Expr.Range(), "%s cannot be negative, got %q", a.Name, v.AsString())
		return false
	}
	*dst = dur
	return true
}

func (d *decoder) strings(a *hclsyntax.Attribute, dst *[]string) bool {
	v, ok := d.value(a, cty.List(cty.String), "a list of strings")
	if !ok {
		return false
	}
	out := make([]string, 0, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() {
			d.errorf(a.Expr.Range(), "%s: list elements cannot be null", a.Name)
			return false
		}
		out = append(out, e.AsString())
	}
	*dst = out
	return true
}

// stringMap decodes a map of strings given as an attribute (env = {...})
// or a block (env { ... }); Nomad files use both.
func (d *decoder) stringMap(c *content, name string) map[string]string {
	if a := c.attrs[name]; a != nil {
		v, ok := d.value(a, cty.Map(cty.String), "a map of strings")
		if !ok {
			return nil
		}
		out := map[string]string{}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			if e.IsNull() {
				d.errorf(a.Expr.Range(), "%s: value of %q cannot be null", name, k.AsString())
				continue
			}
			out[k.AsString()] = e.AsString()
		}
		return out
	}
	b := c.block(name)
	if b == nil {
		return nil
	}
	for _, nb := range b.Body.Blocks {
		d.errorf(nb.TypeRange, "%s block takes only arguments (KEY = \"value\"), not a %s block", name, nb.Type)
	}
	out := map[string]string{}
	for _, a := range sortedAttrs(b.Body) {
		var s string
		if d.str(a, &s) {
			out[a.Name] = s
		}
	}
	return out
}
