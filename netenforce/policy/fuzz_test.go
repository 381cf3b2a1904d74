package policy

import (
	"math/rand/v2"
	"testing"

	"github.com/hivesec/hive/structs"
)

// FuzzCompile feeds free-form fields through Validate and Compile: neither
// may panic, Compile must refuse what Validate refuses, and whatever
// compiles must agree with the oracle.
func FuzzCompile(f *testing.F) {
	f.Add(uint64(1), "10.0.0.0/23", "10.0.1.0/24", "TCP", 80, 81, "app", "In", "a", "allow")
	f.Add(uint64(2), "fd00::/120", "fd00::/124", "udp", 1, 0, "tier", "NotIn", "b", "pass")
	f.Add(uint64(3), "10.1.2.3/8", "", "ICMP", 0, 0, "-bad", "Equals", "", "drop")
	f.Add(uint64(4), "0.0.0.0/0", "0.0.0.0/1", "SCTP", 65535, 65535, "example.com/k", "Exists", "", "Deny")
	f.Fuzz(func(t *testing.T, seed uint64, cidr, except, proto string, port, endPort int, key, op, value, action string) {
		g := gen{rand.New(rand.NewPCG(seed, seed>>7))}
		w := g.world()
		var excepts []string
		if except != "" {
			excepts = []string{except}
		}
		var values []string
		if value != "" {
			values = []string{value}
		}
		sel := structs.LabelSelector{MatchExpressions: []structs.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
		peer := structs.NetpolPeer{IPBlock: &structs.IPBlock{CIDR: cidr, Except: excepts}}
		ports := []structs.NetpolPort{{Protocol: proto, Port: port, EndPort: endPort}}
		p := structs.NetworkPolicy{Namespace: "x", Name: "fuzz", Selector: sel,
			Ingress: []structs.NetpolIngressRule{{From: []structs.NetpolPeer{peer}, Ports: ports}},
			Egress:  []structs.NetpolEgressRule{{To: []structs.NetpolPeer{{PodSelector: &sel}}, Ports: ports}}}
		a := structs.AdminNetworkPolicy{Name: "fuzz", Priority: port % 1001, Subject: structs.AdminNetpolSubject{PodSelector: &sel},
			Egress: []structs.AdminNetpolRule{{Action: action, Peers: []structs.NetpolPeer{peer}, Ports: ports}}}
		valid := p.Validate() == nil && a.Validate() == nil
		policies := append(w.policies, p)
		admin := append(w.admin, a)
		r, err := Compile(w.eps, policies, admin)
		if (err == nil) != valid {
			t.Fatalf("Compile error %v but policies valid=%v", err, valid)
		}
		if err != nil {
			return
		}
		for range 50 {
			fl := g.flow(&w)
			if got, want := r.Evaluate(fl), Allowed(fl, w.eps, policies, admin); got != want {
				t.Fatalf("flow %+v: ruleset %v, oracle %v", fl, got, want)
			}
		}
	})
}
