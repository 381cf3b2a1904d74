package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/hivesec/hive/structs"
)

func TestValidateNetworkPolicy(t *testing.T) {
	base := func() structs.NetworkPolicy {
		return structs.NetworkPolicy{Namespace: "web", Name: "p"}
	}
	withPeer := func(p structs.NetpolPeer) structs.NetworkPolicy {
		np := base()
		np.Ingress = []structs.NetpolIngressRule{{From: []structs.NetpolPeer{p}}}
		return np
	}
	withPort := func(p structs.NetpolPort) structs.NetworkPolicy {
		np := base()
		np.Ingress = []structs.NetpolIngressRule{{Ports: []structs.NetpolPort{p}}}
		return np
	}
	block := func(cidr string, except ...string) structs.NetworkPolicy {
		return withPeer(structs.NetpolPeer{IPBlock: &structs.IPBlock{CIDR: cidr, Except: except}})
	}
	expr := func(key, op string, values ...string) structs.NetworkPolicy {
		np := base()
		np.Selector.MatchExpressions = []structs.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}
		return np
	}
	tests := []struct {
		name  string
		p     structs.NetworkPolicy
		field string // "" means valid
		msg   string
	}{
		{"minimal", base(), "", ""},
		{"bad namespace", structs.NetworkPolicy{Namespace: "Web", Name: "p"}, "namespace", "invalid namespace name"},
		{"bad name", structs.NetworkPolicy{Namespace: "web", Name: ""}, "name", "invalid network policy name"},
		{"cidr ok", block("10.0.0.0/8", "10.1.0.0/16"), "", ""},
		{"cidr v6 ok", block("fd00::/64", "fd00::/96"), "", ""},
		{"bad cidr", block("10.0.0/8"), "ingress[0].from[0].cidr", "invalid CIDR"},
		{"cidr without length", block("10.0.0.0"), "ingress[0].from[0].cidr", "invalid CIDR"},
		{"cidr host bits", block("10.1.2.3/8"), "ingress[0].from[0].cidr", "did you mean 10.0.0.0/8"},
		{"cidr mapped", block("::ffff:10.0.0.0/104"), "ingress[0].from[0].cidr", "IPv4 form"},
		{"except outside", block("10.0.0.0/16", "10.1.0.0/24"), "ingress[0].from[0].except[0]", "not strictly inside"},
		{"except equal", block("10.0.0.0/16", "10.0.0.0/16"), "ingress[0].from[0].except[0]", "not strictly inside"},
		{"except wider", block("10.0.0.0/16", "10.0.0.0/8"), "ingress[0].from[0].except[0]", "not strictly inside"},
		{"except other family", block("10.0.0.0/8", "fd00::/64"), "ingress[0].from[0].except[0]", "not strictly inside"},
		{"bad except", block("10.0.0.0/8", "nope"), "ingress[0].from[0].except[0]", "invalid CIDR"},
		{"peer empty", withPeer(structs.NetpolPeer{}), "ingress[0].from[0]", "needs cidr"},
		{"peer both", withPeer(structs.NetpolPeer{IPBlock: &structs.IPBlock{CIDR: "10.0.0.0/8"}, PodSelector: &structs.LabelSelector{}}), "ingress[0].from[0]", "not both"},
		{"port ok", withPort(structs.NetpolPort{Protocol: "udp", Port: 53}), "", ""},
		{"port range ok", withPort(structs.NetpolPort{Port: 80, EndPort: 65535}), "", ""},
		{"port 0", withPort(structs.NetpolPort{Port: 0}), "ingress[0].ports[0].port", "out of range"},
		{"port high", withPort(structs.NetpolPort{Port: 65536}), "ingress[0].ports[0].port", "out of range"},
		{"port negative", withPort(structs.NetpolPort{Port: -1}), "ingress[0].ports[0].port", "out of range"},
		{"end below port", withPort(structs.NetpolPort{Port: 80, EndPort: 79}), "ingress[0].ports[0].end_port", "below port"},
		{"end high", withPort(structs.NetpolPort{Port: 80, EndPort: 70000}), "ingress[0].ports[0].end_port", "out of range"},
		{"unknown protocol", withPort(structs.NetpolPort{Protocol: "ICMP", Port: 1}), "ingress[0].ports[0].protocol", "unknown protocol"},
		{"expr ok", expr("app", "In", "a", "b"), "", ""},
		{"expr exists ok", expr("app", "Exists"), "", ""},
		{"bad operator", expr("app", "Equals", "a"), "selector.match_expressions[0].operator", "unknown operator"},
		{"lowercase operator", expr("app", "in", "a"), "selector.match_expressions[0].operator", "unknown operator"},
		{"in without values", expr("app", "In"), "selector.match_expressions[0].values", "at least one value"},
		{"exists with values", expr("app", "Exists", "a"), "selector.match_expressions[0].values", "takes no values"},
		{"bad key", expr("-app", "Exists"), "selector.match_expressions[0].key", "invalid label key"},
		{"bad prefix", expr("Example.com/app", "Exists"), "selector.match_expressions[0].key", "prefix"},
		{"prefixed key ok", expr("example.com/app", "Exists"), "", ""},
		{"bad value", expr("app", "In", "a b"), "selector.match_expressions[0].values", "invalid label value"},
		{"bad match label", structs.NetworkPolicy{Namespace: "web", Name: "p", Selector: structs.LabelSelector{MatchLabels: map[string]string{"app": "-x"}}}, "selector.match_labels", "invalid label value"},
		{"peer selector bad", withPeer(structs.NetpolPeer{NamespaceSelector: &structs.LabelSelector{MatchExpressions: []structs.LabelSelectorRequirement{{Key: "ns", Operator: "NotIn"}}}}), "ingress[0].from[0].namespace_selector.match_expressions[0].values", "at least one value"},
		{"unknown policy type", structs.NetworkPolicy{Namespace: "web", Name: "p", PolicyTypes: []string{"ingress"}}, "policy_types", "unknown policy type"},
		{"duplicate policy type", structs.NetworkPolicy{Namespace: "web", Name: "p", PolicyTypes: []string{"Ingress", "Ingress"}}, "policy_types", "twice"},
		{"egress rules without type", structs.NetworkPolicy{Namespace: "web", Name: "p", PolicyTypes: []string{"Ingress"}, Egress: []structs.NetpolEgressRule{{}}}, "egress", "ignored"},
		{"ingress rules without type", structs.NetworkPolicy{Namespace: "web", Name: "p", PolicyTypes: []string{"Egress"}, Ingress: []structs.NetpolIngressRule{{}}}, "ingress", "ignored"},
		{"egress port error path", structs.NetworkPolicy{Namespace: "web", Name: "p", Egress: []structs.NetpolEgressRule{{}, {Ports: []structs.NetpolPort{{Port: 1}, {Port: 99999}}}}}, "egress[1].ports[1].port", "out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkValidation(t, tc.p.Validate(), tc.field, tc.msg)
			// Compile must refuse exactly what Validate refuses.
			_, err := Compile(nil, []structs.NetworkPolicy{tc.p}, nil)
			if (err == nil) != (tc.field == "") {
				t.Errorf("Compile error %v, want error: %v", err, tc.field != "")
			}
		})
	}
}

func checkValidation(t *testing.T, err error, field, msg string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var fe *structs.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("got %v (%T), want a FieldError on %s", err, err, field)
	}
	if fe.Field != field {
		t.Errorf("field %q, want %q (error: %v)", fe.Field, field, err)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q does not say %q", err, msg)
	}
}

func TestValidateAdminNetworkPolicy(t *testing.T) {
	peer := []structs.NetpolPeer{{NamespaceSelector: &structs.LabelSelector{}}}
	base := func() structs.AdminNetworkPolicy {
		return structs.AdminNetworkPolicy{Name: "a", Priority: 10,
			Ingress: []structs.AdminNetpolRule{{Action: "deny", Peers: peer}}}
	}
	mod := func(f func(*structs.AdminNetworkPolicy)) structs.AdminNetworkPolicy {
		p := base()
		f(&p)
		return p
	}
	tests := []struct {
		name  string
		p     structs.AdminNetworkPolicy
		field string
		msg   string
	}{
		{"ok", base(), "", ""},
		{"bad name", mod(func(p *structs.AdminNetworkPolicy) { p.Name = "A_" }), "name", "invalid"},
		{"priority negative", mod(func(p *structs.AdminNetworkPolicy) { p.Priority = -1 }), "priority", "out of range"},
		{"priority high", mod(func(p *structs.AdminNetworkPolicy) { p.Priority = 1001 }), "priority", "out of range"},
		{"bad action", mod(func(p *structs.AdminNetworkPolicy) { p.Ingress[0].Action = "drop" }), "ingress[0].action", "unknown action"},
		{"no peers", mod(func(p *structs.AdminNetworkPolicy) { p.Egress = []structs.AdminNetpolRule{{Action: "Allow"}} }), "egress[0].to", "at least one peer"},
		{"bad subject", mod(func(p *structs.AdminNetworkPolicy) {
			p.Subject.NamespaceSelector.MatchExpressions = []structs.LabelSelectorRequirement{{Key: "k", Operator: "Bogus"}}
		}), "subject.namespace_selector.match_expressions[0].operator", "unknown operator"},
		{"bad cidr", mod(func(p *structs.AdminNetworkPolicy) {
			p.Egress = []structs.AdminNetpolRule{{Action: "Deny", Peers: []structs.NetpolPeer{{IPBlock: &structs.IPBlock{CIDR: "300.0.0.0/8"}}}}}
		}), "egress[0].to[0].cidr", "invalid CIDR"},
		{"bad port", mod(func(p *structs.AdminNetworkPolicy) {
			p.Ingress[0].Ports = []structs.NetpolPort{{Protocol: "TCP", Port: 0}}
		}), "ingress[0].ports[0].port", "out of range"},
		{"too many rules", mod(func(p *structs.AdminNetworkPolicy) {
			for range structs.MaxAdminRulesPerDirection {
				p.Ingress = append(p.Ingress, p.Ingress[0])
			}
		}), "ingress", "at most"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkValidation(t, tc.p.Validate(), tc.field, tc.msg)
		})
	}
}

func TestCompileRejects(t *testing.T) {
	ip := modelIP("xa")
	if _, err := Compile([]Endpoint{{ID: "a", IP: ip}, {ID: "b", IP: ip}}, nil, nil); err == nil || !strings.Contains(err.Error(), "also endpoint a") {
		t.Errorf("duplicate address: %v", err)
	}
	if _, err := Compile([]Endpoint{{ID: "a"}}, nil, nil); err == nil || !strings.Contains(err.Error(), "invalid address") {
		t.Errorf("missing address: %v", err)
	}
	a := structs.AdminNetworkPolicy{Name: "same"}
	if _, err := Compile(nil, nil, []structs.AdminNetworkPolicy{a, a}); err == nil || !strings.Contains(err.Error(), "defined twice") {
		t.Errorf("duplicate admin name: %v", err)
	}
	bad := structs.NetworkPolicy{Namespace: "x", Name: "p", Ingress: []structs.NetpolIngressRule{{Ports: []structs.NetpolPort{{Port: 0}}}}}
	if _, err := Compile(nil, []structs.NetworkPolicy{bad}, nil); err == nil || !strings.Contains(err.Error(), "network policy x/p: ingress[0].ports[0].port") {
		t.Errorf("invalid policy: %v", err)
	}
}
