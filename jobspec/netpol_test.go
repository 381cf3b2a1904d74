package jobspec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNetworkPoliciesGolden(t *testing.T) {
	path := filepath.Join("testdata", "netpol", "policies.hcl")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseNetworkPolicies(path, src)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	// The role block is not ours: it is neither read nor among the ranges.
	if len(got.Blocks) != 4 || got.Blocks[0].Start.Line != 10 || got.Blocks[3].End.Line != 89 {
		t.Errorf("block ranges = %v, want the four policy blocks, lines 10 to 89", got.Blocks)
	}
	for _, p := range got.Policies {
		if err := p.Validate(); err != nil {
			t.Errorf("policy %s/%s does not validate: %v", p.Namespace, p.Name, err)
		}
	}
	out := marshal(t, got)
	golden := filepath.Join("testdata", "netpol", "policies.golden.json")
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./jobspec -run TestNetworkPoliciesGolden -update to create it)", err)
	}
	if string(out) != string(want) {
		t.Errorf("%s differs from %s; run with -update if the change is intended\ngot:\n%s", path, golden, out)
	}
}

// np wraps the body of a network policy in shop; the body starts on line
// 3 (column 3 is its first column).
func np(body string) string {
	return "network_policy \"p\" {\n  namespace = \"shop\"\n" + body + "\n}\n"
}

func TestNetworkPolicyErrors(t *testing.T) {
	sel := "  selector {}\n"
	for _, tc := range []struct {
		name string
		src  string
		want []string // "line:col: substring"
	}{
		{"bad CIDR", np(sel + "  ingress {\n    from {\n      ip_block { cidr = \"10.0.0.0/33\" }\n    }\n  }"),
			[]string{`6:25: network_policy "p": ingress[0].from[0].cidr: invalid CIDR "10.0.0.0/33"`}},
		{"except outside", np(sel + "  ingress {\n    from {\n      ip_block {\n        cidr = \"10.0.0.0/8\"\n        except = [\"11.0.0.0/16\"]\n      }\n    }\n  }"),
			[]string{`8:18: network_policy "p": ingress[0].from[0].except[0]: 11.0.0.0/16 is not strictly inside cidr 10.0.0.0/8`}},
		{"port 0", np(sel + "  ingress {\n    ports { port = 0 }\n  }"),
			[]string{`5:20: network_policy "p": ingress[0].ports[0].port: port 0 is out of range 1-65535`}},
		{"port above 65535", np(sel + "  egress {\n    ports {\n      port = 80\n      end_port = 65536\n    }\n  }"),
			[]string{`7:18: network_policy "p": egress[0].ports[0].end_port: end_port 65536 is out of range 1-65535`}},
		{"missing port", np(sel + "  ingress {\n    ports { protocol = \"UDP\" }\n  }"),
			[]string{`5:5: ports block needs a port`}},
		{"unknown protocol", np(sel + "  ingress {\n    ports {\n      protocol = \"icmp\"\n      port = 1\n    }\n  }"),
			[]string{`6:18: network_policy "p": ingress[0].ports[0].protocol: unknown protocol "ICMP"`}},
		{"bad selector operator", np("  selector {\n    match_expressions {\n      key = \"app\"\n      operator = \"Like\"\n    }\n  }"),
			[]string{`6:18: network_policy "p": selector.match_expressions[0].operator: unknown operator "Like"`}},
		{"bad selector label", np("  selector {\n    match_labels = { \"a b\" = \"c\" }\n  }"),
			[]string{`4:20: network_policy "p": selector.match_labels: invalid label key "a b"`}},
		{"unknown argument", np(sel + "  podSelector = {}"), []string{`4:3: unsupported argument "podSelector" in network_policy block`}},
		{"unknown peer block with hint", np(sel + "  ingress {\n    from {\n      pod_selectr {}\n    }\n  }"),
			[]string{`6:7: unsupported block "pod_selectr" in from block; did you mean "pod_selector"?`}},
		{"empty peer", np(sel + "  ingress {\n    from {}\n  }"), []string{`5:5: from block needs pod_selector, namespace_selector or ip_block`}},
		{"ip_block and selector", np(sel + "  egress {\n    to {\n      pod_selector {}\n      ip_block { cidr = \"10.0.0.0/8\" }\n    }\n  }"),
			[]string{`7:7: a to block is either an ip_block or selectors, not both`}},
		{"ingress rules not isolated", np(sel + "  policy_types = [\"Egress\"]\n  ingress {}"),
			[]string{`5:3: network_policy "p": ingress: ingress rules given but policy_types does not include Ingress`}},
		{"bad namespace", "network_policy \"p\" {\n  namespace = \"Shop\"\n  selector {}\n}\n",
			[]string{`2:15: network_policy "p": namespace: invalid namespace name "Shop"`}},
		{"bad name", "network_policy \"P_1\" {\n  selector {}\n}\n", []string{`1:16: network_policy "P_1": name: invalid network policy name "P_1"`}},
		{"duplicate", np(sel) + np(sel), []string{`6:16: network_policy shop/p is already defined at line 1`}},
		{"variables are not allowed", np(sel + "  audit = var.audit"), []string{`4:11: Variables not allowed`}},
		{"functions are not allowed", np("  selector {\n    match_labels = { app = lower(\"WEB\") }\n  }"), []string{`4:28: Function calls not allowed`}},
		{"no label", "network_policy {\n}\n", []string{`1:1: network_policy block needs one label`}},
		{"port as a string list", np(sel + "  ingress {\n    ports { port = [80] }\n  }"), []string{`5:20: port: a number is required, got a list`}},
		{"several problems in order", np(sel+"  ingress {\n    ports { port = 0 }\n  }") + "admin_network_policy \"a\" {\n  priority = 2000\n  subject {}\n}\n",
			[]string{`5:20: network_policy "p": ingress[0].ports[0].port`, `9:14: admin_network_policy "a": priority: priority 2000 is out of range 0-1000`}},

		{"admin bad action", "admin_network_policy \"a\" {\n  subject {}\n  ingress {\n    action = \"drop\"\n    peers {\n      namespace_selector {}\n    }\n  }\n}\n",
			[]string{`4:14: admin_network_policy "a": ingress[0].action: unknown action "drop"`}},
		{"admin missing action", "admin_network_policy \"a\" {\n  subject {}\n  egress {\n    peers {\n      namespace_selector {}\n    }\n  }\n}\n",
			[]string{`3:3: egress rule needs an action`}},
		{"admin no peers", "admin_network_policy \"a\" {\n  subject {}\n  egress {\n    action = \"deny\"\n  }\n}\n",
			[]string{`3:3: admin_network_policy "a": egress[0].to: an admin rule needs at least one peer`}},
		{"admin missing subject", "admin_network_policy \"a\" {\n  priority = 1\n}\n", []string{`1:22: admin_network_policy "a" has no subject block`}},
		{"admin bad subject selector", "admin_network_policy \"a\" {\n  subject {\n    pod_selector {\n      match_expressions {\n        key = \"app\"\n        operator = \"Exists\"\n        values = [\"x\"]\n      }\n    }\n  }\n}\n",
			[]string{`7:18: admin_network_policy "a": subject.selector.match_expressions[0].values: operator Exists takes no values`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNetworkPolicies("bad.hcl", []byte(tc.src))
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("got %+v, %v; want an *Error", got, err)
			}
			ps := perr.Problems()
			if len(ps) != len(tc.want) {
				t.Fatalf("problems:\n%s\nwant %d: %q", err, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				pos, msg, _ := strings.Cut(w, ": ")
				if got := ps[i].String(); !strings.HasPrefix(got, "bad.hcl:"+pos+": ") || !strings.Contains(got, msg) {
					t.Errorf("problem %d = %q, want bad.hcl:%s: ...%s...", i, got, pos, msg)
				}
			}
		})
	}
}

func TestNetworkPolicyWithoutSelector(t *testing.T) {
	got, err := ParseNetworkPolicies("p.hcl", []byte(np("  policy_types = [\"Ingress\"]")))
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Policies[0]; !p.Selector.Empty() || p.Namespace != "shop" {
		t.Errorf("policy without a selector = %+v, want one selecting every allocation of shop", p)
	}
}

func TestNetworkPoliciesNone(t *testing.T) {
	got, err := ParseNetworkPolicies("rbac.hcl", []byte("role \"r\" {\n  rule {\n    resources = [\"job\"]\n    actions = [\"read\"]\n  }\n}\n"))
	if err != nil || len(got.Policies)+len(got.AdminPolicies)+len(got.Blocks) != 0 {
		t.Errorf("a file without policies: %+v, %v", got, err)
	}
}
