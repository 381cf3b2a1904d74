package jobspec

import (
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/hivesec/hive/structs"
)

var constraintSchema = &schema{
	name:  "constraint block",
	attrs: []string{"attribute", "operator", "value", "distinct_hosts"},
	refused: map[string]string{
		"distinct_property": "use spread, or distinct_hosts = true",
	},
}

// operators maps Nomad's operator spellings to the ones Hive's scheduler
// implements.
var operators = map[string]string{
	"=":                structs.ConstraintEqual,
	"==":               structs.ConstraintEqual,
	"is":               structs.ConstraintEqual,
	"!=":               structs.ConstraintNotEqual,
	"not":              structs.ConstraintNotEqual,
	"regexp":           structs.ConstraintRegex,
	"set_contains":     structs.ConstraintSetContains,
	"set_contains_all": structs.ConstraintSetContains,
	"version":          structs.ConstraintVersion,
	"semver":           structs.ConstraintVersion,
	"distinct_hosts":   structs.ConstraintDistinctHosts,
}

const operatorList = `"=", "!=", "regexp", "set_contains", "version" or "distinct_hosts"`

// constraint decodes a constraint block; nil when it is wrong or says
// nothing (distinct_hosts = false).
func (d *decoder) constraint(b *hclsyntax.Block) *structs.Constraint {
	before := len(d.diags)
	c := d.content(b.Body, constraintSchema)
	con := &structs.Constraint{Operand: structs.ConstraintEqual}
	d.str(c.attrs["attribute"], &con.LTarget)
	d.str(c.attrs["value"], &con.RTarget)
	if a := c.attrs["operator"]; a != nil {
		var op string
		if d.str(a, &op) {
			norm, ok := operators[op]
			if !ok {
				d.errorf(a.Expr.Range(), "constraint operator %q is not supported: use %s", op, operatorList)
				return nil
			}
			con.Operand = norm
		}
	}
	if a := c.attrs["distinct_hosts"]; a != nil {
		var on bool
		if !d.boolean(a, &on) {
			return nil
		}
		if c.has("attribute") || c.has("operator") || c.has("value") {
			d.errorf(a.NameRange, "distinct_hosts stands alone: put attribute, operator and value in another constraint block")
			return nil
		}
		if !on {
			return nil
		}
		return &structs.Constraint{Operand: structs.ConstraintDistinctHosts, RTarget: "true"}
	}
	if len(d.diags) > before {
		return nil
	}
	switch con.Operand {
	case structs.ConstraintDistinctHosts:
		if con.RTarget == "false" {
			return nil
		}
		return &structs.Constraint{Operand: structs.ConstraintDistinctHosts, RTarget: "true"}
	}
	if !d.targets(b, c, "constraint", con.LTarget, con.RTarget, con.Operand) {
		return nil
	}
	return con
}

// targets checks the attribute and value of a constraint or affinity.
func (d *decoder) targets(b *hclsyntax.Block, c *content, kind, l, r, op string) bool {
	if strings.TrimSpace(l) == "" {
		rng := b.TypeRange
		if a := c.attrs["attribute"]; a != nil {
			rng = a.Expr.Range()
		}
		d.errorf(rng, "%s needs an attribute, like attribute = \"${attr.kernel.name}\"", kind)
		return false
	}
	if c.attrs["value"] == nil {
		d.errorf(b.TypeRange, "%s on %s needs a value", kind, l)
		return false
	}
	switch op {
	case structs.ConstraintRegex:
		if _, err := regexp.Compile(r); err != nil {
			d.errorf(c.attrs["value"].Expr.Range(), "%s value %q is not a valid regexp: %v", kind, r, err)
			return false
		}
	case structs.ConstraintVersion, structs.ConstraintSetContains:
		if strings.TrimSpace(r) == "" {
			d.errorf(c.attrs["value"].Expr.Range(), "%s value cannot be empty with operator %q", kind, op)
			return false
		}
	}
	return true
}

var affinitySchema = &schema{
	name:  "affinity block",
	attrs: []string{"attribute", "operator", "value", "weight"},
}

func (d *decoder) affinity(b *hclsyntax.Block) *structs.Affinity {
	before := len(d.diags)
	c := d.content(b.Body, affinitySchema)
	aff := &structs.Affinity{Operand: structs.ConstraintEqual, Weight: 50}
	d.str(c.attrs["attribute"], &aff.LTarget)
	d.str(c.attrs["value"], &aff.RTarget)
	if a := c.attrs["operator"]; a != nil {
		var op string
		if d.str(a, &op) {
			norm, ok := operators[op]
			if !ok || norm == structs.ConstraintDistinctHosts {
				d.errorf(a.Expr.Range(), "affinity operator %q is not supported: use \"=\", \"!=\", \"regexp\", \"set_contains\" or \"version\"", op)
				return nil
			}
			aff.Operand = norm
		}
	}
	if a := c.attrs["weight"]; a != nil && d.integer(a, -100, 100, &aff.Weight) && aff.Weight == 0 {
		d.errorf(a.Expr.Range(), "affinity weight cannot be 0: use -100 to 100, negative to avoid")
	}
	if len(d.diags) > before || !d.targets(b, c, "affinity", aff.LTarget, aff.RTarget, aff.Operand) {
		return nil
	}
	return aff
}

var spreadSchema = &schema{
	name:   "spread block",
	attrs:  []string{"attribute", "weight"},
	blocks: map[string]int{"target": 1},
	multi:  []string{"target"},
}

var targetSchema = &schema{
	name:  "target block",
	attrs: []string{"percent"},
}

func (d *decoder) spread(b *hclsyntax.Block) *structs.Spread {
	before := len(d.diags)
	c := d.content(b.Body, spreadSchema)
	sp := &structs.Spread{Weight: 50}
	if a := c.attrs["attribute"]; a == nil {
		d.errorf(b.TypeRange, "spread needs an attribute, like attribute = \"${node.datacenter}\"")
	} else if d.str(a, &sp.Attribute) && strings.TrimSpace(sp.Attribute) == "" {
		d.errorf(a.Expr.Range(), "spread attribute cannot be empty")
	}
	d.integer(c.attrs["weight"], 0, 100, &sp.Weight)
	sum := 0
	seen := map[string]int{}
	for _, tb := range c.blocks["target"] {
		value := tb.Labels[0]
		if line, dup := seen[value]; dup {
			d.errorf(tb.LabelRanges[0], "duplicate spread target %q; the first is at line %d", value, line)
			continue
		}
		seen[value] = tb.TypeRange.Start.Line
		tc := d.content(tb.Body, targetSchema)
		t := structs.SpreadTarget{Value: value}
		if d.integer(tc.attrs["percent"], 0, 100, &t.Percent) {
			sum += t.Percent
			if sum > 100 {
				d.errorf(tc.attrs["percent"].Expr.Range(), "spread target percentages add up to %d, more than 100", sum)
			}
		}
		sp.Targets = append(sp.Targets, t)
	}
	if len(d.diags) > before {
		return nil
	}
	return sp
}
