package jobspec

import (
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// schema lists what one kind of block may contain. Names outside it are
// errors, with a hint when close to a known name; names Nomad knows but
// Hive does not implement get a message saying so: ignored (with a
// warning) when dropping them cannot change what runs, refused otherwise.
type schema struct {
	name   string         // for messages: "update block"
	attrs  []string       // arguments
	maps   []string       // string maps, accepted as block or argument
	blocks map[string]int // block type → number of labels
	multi  []string       // block types (in blocks) that may repeat
	// ignored and refused map a Nomad name to the reason Hive drops or
	// refuses it.
	ignored map[string]string
	refused map[string]string
}

// content is a checked body: its arguments by name and blocks by type.
type content struct {
	attrs  map[string]*hclsyntax.Attribute
	blocks map[string][]*hclsyntax.Block
}

// block returns the only block of type t, or nil.
func (c *content) block(t string) *hclsyntax.Block {
	if bs := c.blocks[t]; len(bs) > 0 {
		return bs[0]
	}
	return nil
}

func (c *content) has(name string) bool {
	return c.attrs[name] != nil || len(c.blocks[name]) > 0
}

// sortedAttrs returns a body's arguments in source order (hclsyntax keeps
// them in a map).
func sortedAttrs(body *hclsyntax.Body) []*hclsyntax.Attribute {
	as := make([]*hclsyntax.Attribute, 0, len(body.Attributes))
	for _, a := range body.Attributes {
		as = append(as, a)
	}
	sort.Slice(as, func(i, j int) bool { return as[i].SrcRange.Start.Byte < as[j].SrcRange.Start.Byte })
	return as
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// content checks body against s and returns what it holds. Unknown or
// misused names are recorded as problems and left out.
func (d *decoder) content(body *hclsyntax.Body, s *schema) *content {
	c := &content{attrs: map[string]*hclsyntax.Attribute{}, blocks: map[string][]*hclsyntax.Block{}}
	for _, a := range sortedAttrs(body) {
		switch {
		case contains(s.attrs, a.Name) || contains(s.maps, a.Name):
			c.attrs[a.Name] = a
		case hasKey(s.blocks, a.Name):
			d.errorf(a.NameRange, "%q is a block, not an argument: write %s { ... } without \"=\"", a.Name, a.Name)
		default:
			d.unknown(a.NameRange, "argument", a.Name, s)
		}
	}
	for _, b := range body.Blocks {
		labels, isBlock := s.blocks[b.Type]
		switch {
		case contains(s.maps, b.Type):
			labels, isBlock = 0, true
		case contains(s.attrs, b.Type):
			d.errorf(b.TypeRange, "%q is an argument, not a block: write %s = ...", b.Type, b.Type)
			continue
		}
		if !isBlock {
			d.unknown(b.TypeRange, "block", b.Type, s)
			continue
		}
		if len(b.Labels) != labels {
			rng := b.TypeRange
			if len(b.Labels) > 0 {
				rng = b.LabelRanges[0]
			}
			switch labels {
			case 0:
				d.errorf(rng, "%s block takes no label", b.Type)
			default:
				d.errorf(rng, "%s block needs one label, its name: %s \"name\" { ... }", b.Type, b.Type)
			}
			continue
		}
		if prev := c.blocks[b.Type]; len(prev) > 0 && !contains(s.multi, b.Type) {
			first := prev[0].TypeRange.Start
			d.errorf(b.TypeRange, "duplicate %s block in %s; the first is at line %d", b.Type, s.name, first.Line)
			continue
		}
		if c.attrs[b.Type] != nil {
			d.errorf(b.TypeRange, "%s is set both as an argument and as a block", b.Type)
			continue
		}
		c.blocks[b.Type] = append(c.blocks[b.Type], b)
	}
	return c
}

func hasKey(m map[string]int, k string) bool {
	_, ok := m[k]
	return ok
}

// unknown reports a name the schema does not have.
func (d *decoder) unknown(rng hcl.Range, kind, name string, s *schema) {
	if why, ok := s.ignored[name]; ok {
		d.warnf(rng, "%s %q in %s is ignored: %s", kind, name, s.name, why)
		return
	}
	if why, ok := s.refused[name]; ok {
		d.errorf(rng, "%s %q in %s is not supported by Hive: %s", kind, name, s.name, why)
		return
	}
	known := append(append([]string{}, s.attrs...), s.maps...)
	for b := range s.blocks {
		known = append(known, b)
	}
	sort.Strings(known) // deterministic hint on ties
	msg := "unsupported " + kind + " \"" + name + "\" in " + s.name
	if hint := suggest(name, known); hint != "" {
		msg += "; did you mean \"" + hint + "\"?"
	} else if len(known) > 0 {
		msg += " (expected one of: " + strings.Join(known, ", ") + ")"
	}
	d.errorf(rng, "%s", msg)
}
