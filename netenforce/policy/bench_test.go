package policy

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/hivesec/hive/structs"
)

// benchCluster is a plausible large cluster: 10,000 endpoints in 100
// namespaces (labels team, env), 1,000 apps of 10 replicas each, and one
// policy per (app, variant): ingress from another app of the namespace on a
// port, every tenth also from a team's namespaces, every seventh from a
// CIDR with an exception, every fifth with egress to a port range.
func benchCluster(nEP, nPol int) ([]Endpoint, []structs.NetworkPolicy) {
	eps := make([]Endpoint, nEP)
	for i := range eps {
		app := i % 1000
		ns := app % 100
		eps[i] = Endpoint{
			ID:              fmt.Sprint("alloc-", i),
			Namespace:       fmt.Sprint("ns-", ns),
			Labels:          map[string]string{"app": fmt.Sprint("app-", app), "tier": []string{"web", "api", "db"}[app%3]},
			NamespaceLabels: map[string]string{"team": fmt.Sprint("t", ns%10), "env": []string{"prod", "dev"}[ns%2]},
			IP:              netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).Next(),
		}
	}
	pols := make([]structs.NetworkPolicy, nPol)
	for j := range pols {
		app := j % 1000
		p := structs.NetworkPolicy{
			Namespace: fmt.Sprint("ns-", app%100),
			Name:      fmt.Sprint("p-", j),
			Selector:  structs.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprint("app-", app)}},
		}
		rule := structs.NetpolIngressRule{
			From:  []structs.NetpolPeer{{PodSelector: &structs.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprint("app-", (app+100)%1000)}}}},
			Ports: []structs.NetpolPort{{Protocol: "TCP", Port: 8000 + j%50}},
		}
		if j%10 == 0 {
			rule.From = append(rule.From, structs.NetpolPeer{
				NamespaceSelector: &structs.LabelSelector{MatchLabels: map[string]string{"team": fmt.Sprint("t", j%10)}},
				PodSelector:       &structs.LabelSelector{MatchExpressions: []structs.LabelSelectorRequirement{{Key: "tier", Operator: "In", Values: []string{"web", "api"}}}},
			})
		}
		if j%7 == 0 {
			rule.From = append(rule.From, structs.NetpolPeer{IPBlock: &structs.IPBlock{
				CIDR: fmt.Sprintf("172.%d.0.0/16", 16+j%16), Except: []string{fmt.Sprintf("172.%d.%d.0/24", 16+j%16, j%256)}}})
		}
		p.Ingress = []structs.NetpolIngressRule{rule}
		if j%5 == 0 {
			p.PolicyTypes = []string{"Ingress", "Egress"}
			p.Egress = []structs.NetpolEgressRule{{
				To:    []structs.NetpolPeer{{NamespaceSelector: &structs.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}},
				Ports: []structs.NetpolPort{{Protocol: "UDP", Port: 5000, EndPort: 5100 + j%100}},
			}}
		}
		pols[j] = p
	}
	return eps, pols
}

func BenchmarkCompile(b *testing.B) {
	eps, pols := benchCluster(10000, 10000)
	admin := []structs.AdminNetworkPolicy{{
		Name: "deny-dev-to-prod", Priority: 10,
		Subject: structs.AdminNetpolSubject{NamespaceSelector: structs.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}},
		Ingress: []structs.AdminNetpolRule{{Action: "Deny", Peers: []structs.NetpolPeer{{NamespaceSelector: &structs.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}}}}},
	}}
	var r *Ruleset
	b.ReportAllocs()
	for b.Loop() {
		var err error
		r, err = Compile(eps, pols, admin)
		if err != nil {
			b.Fatal(err)
		}
	}
	elems := len(r.Ingress.AnyPort) + len(r.Egress.AnyPort)
	for _, d := range []*Direction{&r.Ingress, &r.Egress} {
		for _, v := range d.Ports {
			elems += len(v)
		}
		for _, v := range d.CIDRAny {
			elems += len(v)
		}
		for _, v := range d.CIDRPorts {
			for _, s := range v {
				elems += len(s.Ports)
			}
		}
	}
	b.ReportMetric(float64(len(r.Classes)), "classes")
	b.ReportMetric(float64(elems), "elements")
}

// BenchmarkEvaluate shows per-flow cost does not grow with policies: the
// same flows against 10 and 10,000 policies.
func BenchmarkEvaluate(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprint(n, "-policies"), func(b *testing.B) {
			eps, pols := benchCluster(10000, n)
			r, err := Compile(eps, pols, nil)
			if err != nil {
				b.Fatal(err)
			}
			flows := make([]Flow, 1024)
			for i := range flows {
				flows[i] = Flow{Src: eps[(i*7919)%len(eps)].IP, Dst: eps[(i*104729)%len(eps)].IP, Protocol: ProtoTCP, Port: uint16(8000 + i%50)}
			}
			i := 0
			for b.Loop() {
				r.Evaluate(flows[i%len(flows)])
				i++
			}
		})
	}
}
