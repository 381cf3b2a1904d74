package jobspec

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/hivesec/hive/structs"
)

// Network policy files, for `hive apply -f`:
//
//	network_policy "allow-web" {
//	  namespace    = "shop"            # default "default"
//	  policy_types = ["Ingress"]       # optional: inferred as in Kubernetes
//	  audit        = false             # true: log what would be denied, deny nothing
//	  selector {                       # absent or empty: every allocation of the namespace
//	    match_labels = { app = "web" }
//	    match_expressions {
//	      key      = "tier"
//	      operator = "In"              # In, NotIn, Exists, DoesNotExist
//	      values   = ["front"]
//	    }
//	  }
//	  ingress {
//	    from {
//	      pod_selector { match_labels = { app = "lb" } }
//	      namespace_selector { match_labels = { team = "shop" } }
//	    }
//	    from {
//	      ip_block {
//	        cidr   = "10.0.0.0/8"
//	        except = ["10.1.0.0/16"]
//	      }
//	    }
//	    ports {
//	      protocol = "TCP"             # TCP (default), UDP or SCTP
//	      port     = 80
//	      end_port = 90                # optional: a range
//	    }
//	  }
//	  egress {
//	    to { ... }
//	    ports { ... }
//	  }
//	}
//
//	admin_network_policy "deny-metadata" {
//	  priority = 10                    # 0 (first) to 1000
//	  subject {                        # required
//	    namespace_selector { }         # empty or absent: every namespace
//	    pod_selector { match_labels = { app = "web" } }
//	  }
//	  egress {
//	    name   = "metadata"
//	    action = "deny"                # allow, deny or pass
//	    peers {
//	      ip_block { cidr = "169.254.169.254/32" }
//	    }
//	    ports { ... }
//	  }
//	}
//
// As role and binding files, these are declarations: variables, functions
// and runtime references are not available.

// Block types of network policy files.
const (
	NetworkPolicyBlock      = "network_policy"
	AdminNetworkPolicyBlock = "admin_network_policy"
)

// NetworkPolicies is what the network policy blocks of a file declare, in
// file order.
type NetworkPolicies struct {
	Policies      []*structs.NetworkPolicy
	AdminPolicies []*structs.AdminNetworkPolicy
	// Blocks are the source ranges of the blocks read, so that a caller
	// handing the rest of the file to another parser (hive apply gives
	// roles and bindings to the acl package's) can leave them out.
	Blocks []hcl.Range
}

// ParseNetworkPolicies reads the network_policy and admin_network_policy
// blocks of src, read from filename (for messages), and checks each
// policy as the managers will. Other top-level blocks and arguments are
// left alone: they are another parser's. On any problem it returns nil and
// an *Error listing every problem, each at its file:line:col.
func ParseNetworkPolicies(filename string, src []byte) (*NetworkPolicies, error) {
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		sortDiags(diags)
		return nil, &Error{Diags: diags}
	}
	d := &decoder{ctx: &hcl.EvalContext{}, static: true}
	out := &NetworkPolicies{}
	seen := map[string]hcl.Range{}
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		if b.Type != NetworkPolicyBlock && b.Type != AdminNetworkPolicyBlock {
			continue
		}
		out.Blocks = append(out.Blocks, b.Range())
		if len(b.Labels) != 1 {
			rng := b.TypeRange
			if len(b.Labels) > 0 {
				rng = b.LabelRanges[1]
			}
			d.errorf(rng, "%s block needs one label, its name: %s \"name\" { ... }", b.Type, b.Type)
			continue
		}
		nd := &netpolDecoder{d: d, at: map[string]hcl.Range{"name": b.LabelRanges[0]}, def: b.LabelRanges[0]}
		var key string
		switch b.Type {
		case NetworkPolicyBlock:
			p := nd.policy(b)
			if p == nil {
				continue
			}
			key = b.Type + " " + p.Namespace + "/" + p.Name
			if !nd.dup(seen, key, b) {
				out.Policies = append(out.Policies, p)
			}
		case AdminNetworkPolicyBlock:
			p := nd.admin(b)
			if p == nil {
				continue
			}
			key = b.Type + " " + p.Name
			if !nd.dup(seen, key, b) {
				out.AdminPolicies = append(out.AdminPolicies, p)
			}
		}
	}
	if d.diags.HasErrors() {
		sortDiags(d.diags)
		return nil, &Error{Diags: d.diags}
	}
	return out, nil
}

// netpolDecoder decodes one policy block, remembering where each field
// came from so that a validation error (a structs.FieldError whose field
// is a path such as "ingress[0].from[1].cidr") points at it.
type netpolDecoder struct {
	d   *decoder
	at  map[string]hcl.Range
	def hcl.Range // the block's label: where problems without a place go
}

func (nd *netpolDecoder) dup(seen map[string]hcl.Range, key string, b *hclsyntax.Block) bool {
	if first, ok := seen[key]; ok {
		nd.d.errorf(b.LabelRanges[0], "%s is already defined at line %d", key, first.Start.Line)
		return true
	}
	seen[key] = b.LabelRanges[0]
	return false
}

// fail reports a validation error at the field it names, or at the
// nearest enclosing field that was written.
func (nd *netpolDecoder) fail(what string, err error) {
	rng := nd.def
	var fe *structs.FieldError
	if errors.As(err, &fe) {
		for f := fe.Field; f != ""; {
			if r, ok := nd.at[f]; ok {
				rng = r
				break
			}
			if i := strings.LastIndexAny(f, ".["); i >= 0 {
				f = f[:i]
			} else {
				f = ""
			}
		}
	}
	nd.d.errorf(rng, "%s: %v", what, err)
}

func (nd *netpolDecoder) attr(path string, a *hclsyntax.Attribute) *hclsyntax.Attribute {
	if a != nil {
		nd.at[path] = a.Expr.Range()
	}
	return a
}

func blocksSchema(name string, attrs []string, blocks ...string) *schema {
	s := &schema{name: name, attrs: attrs, blocks: map[string]int{}}
	for _, b := range blocks {
		s.blocks[b] = 0
	}
	return s
}

var (
	netpolSchema = func() *schema {
		s := blocksSchema("network_policy block", []string{"namespace", "policy_types", "audit"}, "selector", "ingress", "egress")
		s.multi = []string{"ingress", "egress"}
		return s
	}()
	adminNetpolSchema = func() *schema {
		s := blocksSchema("admin_network_policy block", []string{"priority"}, "subject", "ingress", "egress")
		s.multi = []string{"ingress", "egress"}
		return s
	}()
	// selectorSchemas are the selector blocks' schemas, by block type (the
	// type names the block in messages).
	selectorSchemas = func() map[string]*schema {
		m := map[string]*schema{}
		for _, n := range []string{"selector", "pod_selector", "namespace_selector"} {
			s := blocksSchema(n+" block", nil, "match_expressions")
			s.maps, s.multi = []string{"match_labels"}, []string{"match_expressions"}
			m[n] = s
		}
		return m
	}()
	matchExprSchema = blocksSchema("match_expressions block", []string{"key", "operator", "values"})
	ipBlockSchema   = blocksSchema("ip_block block", []string{"cidr", "except"})
	portsSchema     = blocksSchema("ports block", []string{"protocol", "port", "end_port"})
	subjectSchema   = blocksSchema("subject block", nil, "namespace_selector", "pod_selector")
)

func (nd *netpolDecoder) policy(b *hclsyntax.Block) *structs.NetworkPolicy {
	before := len(nd.d.diags)
	p := &structs.NetworkPolicy{Name: b.Labels[0], Namespace: structs.DefaultNamespace}
	c := nd.d.content(b.Body, netpolSchema)
	nd.d.str(nd.attr("namespace", c.attrs["namespace"]), &p.Namespace)
	nd.d.boolean(nd.attr("audit", c.attrs["audit"]), &p.Audit)
	if a := nd.attr("policy_types", c.attrs["policy_types"]); a != nil && nd.d.strings(a, &p.PolicyTypes) {
		for i, t := range p.PolicyTypes {
			for _, known := range []string{structs.PolicyTypeIngress, structs.PolicyTypeEgress} {
				if strings.EqualFold(t, known) {
					p.PolicyTypes[i] = known
				}
			}
		}
	}
	// No selector selects every allocation of the namespace, as an empty
	// podSelector does in Kubernetes.
	if sb := c.block("selector"); sb != nil {
		p.Selector = *nd.selector(sb, "selector")
	}
	// Whole directions are refused when their policy type is left out.
	for _, dir := range []string{"ingress", "egress"} {
		if bs := c.blocks[dir]; len(bs) > 0 {
			nd.at[dir] = bs[0].TypeRange
		}
	}
	for i, ib := range c.blocks["ingress"] {
		path := fmt.Sprintf("ingress[%d]", i)
		nd.at[path] = ib.TypeRange
		ic := nd.d.content(ib.Body, blocksSchema("ingress block", nil, "from", "ports").withMulti("from", "ports"))
		p.Ingress = append(p.Ingress, structs.NetpolIngressRule{
			From:  nd.peers(ic.blocks["from"], path+".from", "from"),
			Ports: nd.ports(ic.blocks["ports"], path+".ports"),
		})
	}
	for i, eb := range c.blocks["egress"] {
		path := fmt.Sprintf("egress[%d]", i)
		nd.at[path] = eb.TypeRange
		ec := nd.d.content(eb.Body, blocksSchema("egress block", nil, "to", "ports").withMulti("to", "ports"))
		p.Egress = append(p.Egress, structs.NetpolEgressRule{
			To:    nd.peers(ec.blocks["to"], path+".to", "to"),
			Ports: nd.ports(ec.blocks["ports"], path+".ports"),
		})
	}
	if len(nd.d.diags) > before {
		return nil // checking a half-read policy would only add noise
	}
	if err := p.Validate(); err != nil {
		nd.fail(fmt.Sprintf("network_policy %q", p.Name), err)
		return nil
	}
	return p
}

func (nd *netpolDecoder) admin(b *hclsyntax.Block) *structs.AdminNetworkPolicy {
	before := len(nd.d.diags)
	p := &structs.AdminNetworkPolicy{Name: b.Labels[0]}
	c := nd.d.content(b.Body, adminNetpolSchema)
	nd.d.integer(nd.attr("priority", c.attrs["priority"]), math.MinInt32, math.MaxInt32, &p.Priority)
	if sb := c.block("subject"); sb != nil {
		nd.at["subject"] = sb.TypeRange
		sc := nd.d.content(sb.Body, subjectSchema)
		if nb := sc.block("namespace_selector"); nb != nil {
			p.Subject.NamespaceSelector = *nd.selector(nb, "subject.namespace_selector")
		}
		if pb := sc.block("pod_selector"); pb != nil {
			p.Subject.PodSelector = nd.selector(pb, "subject.selector")
		}
	} else {
		nd.d.errorf(b.LabelRanges[0], "admin_network_policy %q has no subject block; write subject { namespace_selector {} } to apply it to every namespace", p.Name)
	}
	for _, dir := range []struct {
		name, peerPath string
		rules          *[]structs.AdminNetpolRule
	}{{"ingress", "from", &p.Ingress}, {"egress", "to", &p.Egress}} {
		for i, rb := range c.blocks[dir.name] {
			path := fmt.Sprintf("%s[%d]", dir.name, i)
			nd.at[path] = rb.TypeRange
			rc := nd.d.content(rb.Body, blocksSchema(dir.name+" block", []string{"name", "action"}, "peers", "ports").withMulti("peers", "ports"))
			var r structs.AdminNetpolRule
			nd.d.str(nd.attr(path+".name", rc.attrs["name"]), &r.Name)
			if a := nd.attr(path+".action", rc.attrs["action"]); a == nil {
				nd.d.errorf(rb.TypeRange, "%s rule needs an action: allow, deny or pass", dir.name)
			} else if nd.d.str(a, &r.Action) && r.ActionName() != "" {
				r.Action = r.ActionName()
			}
			r.Peers = nd.peers(rc.blocks["peers"], path+"."+dir.peerPath, "peers")
			r.Ports = nd.ports(rc.blocks["ports"], path+".ports")
			*dir.rules = append(*dir.rules, r)
		}
	}
	if len(nd.d.diags) > before {
		return nil
	}
	if err := p.Validate(); err != nil {
		nd.fail(fmt.Sprintf("admin_network_policy %q", p.Name), err)
		return nil
	}
	return p
}

func (s *schema) withMulti(types ...string) *schema {
	s.multi = types
	return s
}

// selector decodes a label selector block; path is its field path in
// validation errors.
func (nd *netpolDecoder) selector(b *hclsyntax.Block, path string) *structs.LabelSelector {
	nd.at[path] = b.TypeRange
	c := nd.d.content(b.Body, selectorSchemas[b.Type])
	sel := &structs.LabelSelector{}
	if a := c.attrs["match_labels"]; a != nil {
		nd.at[path+".match_labels"] = a.Expr.Range()
	} else if mb := c.block("match_labels"); mb != nil {
		nd.at[path+".match_labels"] = mb.TypeRange
	}
	sel.MatchLabels = nd.d.stringMap(c, "match_labels")
	for i, eb := range c.blocks["match_expressions"] {
		epath := fmt.Sprintf("%s.match_expressions[%d]", path, i)
		nd.at[epath] = eb.TypeRange
		ec := nd.d.content(eb.Body, matchExprSchema)
		var r structs.LabelSelectorRequirement
		nd.d.str(nd.attr(epath+".key", ec.attrs["key"]), &r.Key)
		nd.d.str(nd.attr(epath+".operator", ec.attrs["operator"]), &r.Operator)
		nd.d.strings(nd.attr(epath+".values", ec.attrs["values"]), &r.Values)
		sel.MatchExpressions = append(sel.MatchExpressions, r)
	}
	return sel
}

// peers decodes from, to or peers blocks: each is an ip_block, or one or
// both selectors.
func (nd *netpolDecoder) peers(blocks []*hclsyntax.Block, path, kind string) []structs.NetpolPeer {
	var out []structs.NetpolPeer
	for i, pb := range blocks {
		ppath := fmt.Sprintf("%s[%d]", path, i)
		nd.at[ppath] = pb.TypeRange
		before := len(nd.d.diags)
		c := nd.d.content(pb.Body, blocksSchema(kind+" block", nil, "pod_selector", "namespace_selector", "ip_block"))
		misspelt := len(nd.d.diags) > before
		var peer structs.NetpolPeer
		if sb := c.block("pod_selector"); sb != nil {
			peer.PodSelector = nd.selector(sb, ppath+".selector")
		}
		if sb := c.block("namespace_selector"); sb != nil {
			peer.NamespaceSelector = nd.selector(sb, ppath+".namespace_selector")
		}
		if ib := c.block("ip_block"); ib != nil {
			peer.IPBlock = &structs.IPBlock{}
			ic := nd.d.content(ib.Body, ipBlockSchema)
			nd.at[ppath+".cidr"] = ib.TypeRange
			if a := nd.attr(ppath+".cidr", ic.attrs["cidr"]); a == nil {
				nd.d.errorf(ib.TypeRange, "ip_block needs a cidr, such as cidr = \"10.0.0.0/8\"")
			} else {
				nd.d.str(a, &peer.IPBlock.CIDR)
			}
			nd.d.strings(nd.attr(ppath+".except", ic.attrs["except"]), &peer.IPBlock.Except)
			if peer.PodSelector != nil || peer.NamespaceSelector != nil {
				nd.d.errorf(ib.TypeRange, "a %s block is either an ip_block or selectors, not both; write them as two %s blocks", kind, kind)
			}
		}
		if peer.IPBlock == nil && peer.PodSelector == nil && peer.NamespaceSelector == nil && !misspelt {
			nd.d.errorf(pb.TypeRange, "%s block needs pod_selector, namespace_selector or ip_block", kind)
		}
		out = append(out, peer)
	}
	return out
}

func (nd *netpolDecoder) ports(blocks []*hclsyntax.Block, path string) []structs.NetpolPort {
	var out []structs.NetpolPort
	for i, pb := range blocks {
		ppath := fmt.Sprintf("%s[%d]", path, i)
		nd.at[ppath] = pb.TypeRange
		c := nd.d.content(pb.Body, portsSchema)
		var port structs.NetpolPort
		if nd.d.str(nd.attr(ppath+".protocol", c.attrs["protocol"]), &port.Protocol) {
			port.Protocol = strings.ToUpper(port.Protocol)
		}
		if a := nd.attr(ppath+".port", c.attrs["port"]); a == nil {
			nd.d.errorf(pb.TypeRange, "ports block needs a port (1-65535); leave ports out to allow every port")
		} else {
			nd.d.integer(a, math.MinInt32, math.MaxInt32, &port.Port)
		}
		nd.d.integer(nd.attr(ppath+".end_port", c.attrs["end_port"]), math.MinInt32, math.MaxInt32, &port.EndPort)
		out = append(out, port)
	}
	return out
}
