package nft

import (
	"net/netip"
	"testing"
	"time"

	"github.com/hivesec/hive/netenforce/nflog"
	"github.com/hivesec/hive/netenforce/policy"
	"github.com/hivesec/hive/structs"
)

// TestDeniedFlowsAreLogged reads the NFLOG group while a connect is
// denied by a namespace policy, by an admin policy and by quarantine: each
// denial arrives with the dropping chain as prefix, which DropSource maps
// back to the policy, and with the flow's addresses and port.
func TestDeniedFlowsAreLogged(t *testing.T) {
	eps, ips, tp, a := applierWorld(t, 3)
	r, err := nflog.Open(LogGroup, int(tp.node.h))
	if err != nil {
		t.Fatalf("open nflog: %v", err)
	}
	defer r.Close()
	packets := make(chan nflog.Packet, 64)
	go func() {
		for {
			ps, err := r.Read()
			if err != nil {
				close(packets)
				return
			}
			for _, p := range ps {
				packets <- p
			}
		}
	}()

	pols := []structs.NetworkPolicy{{Namespace: "x", Name: "deny-b", PolicyTypes: []string{"Ingress"},
		Selector: structs.LabelSelector{MatchLabels: map[string]string{"app": "b"}}}}
	admin := []structs.AdminNetworkPolicy{{Name: "no-8081", Priority: 1,
		Subject: structs.AdminNetpolSubject{NamespaceSelector: structs.LabelSelector{MatchLabels: map[string]string{"name": "y"}}},
		Ingress: []structs.AdminNetpolRule{{Action: "Deny", Peers: []structs.NetpolPeer{{NamespaceSelector: &structs.LabelSelector{}}},
			Ports: []structs.NetpolPort{{Protocol: "TCP", Port: 8081}}}}}}
	cases := []struct {
		name       string
		quarantine bool
		to         int
		port       uint16
		policy     string
	}{
		{"namespace policy", false, 1, 8080, "x/deny-b"},
		{"admin policy", false, 2, 8081, "admin:no-8081"},
		{"quarantine", true, 2, 8080, "quarantine"},
	}
	for _, tc := range cases {
		eps[2].Quarantined = tc.quarantine
		rs, err := policy.Compile(eps, pols, admin)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Apply(rs); err != nil {
			t.Fatal(err)
		}
		if c, err := tp.dial(0, netip.AddrPortFrom(ips[tc.to], tc.port)); err == nil {
			c.Close()
			t.Fatalf("%s: connect allowed", tc.name)
		}
		deadline := time.After(5 * time.Second)
	wait:
		for {
			select {
			case p, ok := <-packets:
				if !ok {
					t.Fatal("nflog reader stopped")
				}
				f, ok := p.Flow()
				src, ok2 := a.DropSource(p.Prefix)
				if !ok || !ok2 || f.Dst != ips[tc.to] || f.Port != tc.port {
					continue // an earlier case's retransmission
				}
				if f.Src != ips[0] || f.Protocol != policy.ProtoTCP || len(src.Policies) != 1 || src.Policies[0] != tc.policy {
					t.Fatalf("%s: logged %+v from %q (%+v)", tc.name, f, p.Prefix, src)
				}
				t.Logf("%s: logged %s -> %s:%d by %q (%v)", tc.name, f.Src, f.Dst, f.Port, p.Prefix, src.Policies)
				break wait
			case <-deadline:
				t.Fatalf("%s: no denied flow logged within 5s", tc.name)
			}
		}
	}
}

// TestAuditPolicyLogsButPasses applies an audit-mode policy that would
// isolate b: connects to b still succeed, and each is logged and counted
// as an audit verdict under that policy.
func TestAuditPolicyLogsButPasses(t *testing.T) {
	eps, ips, tp, a := applierWorld(t, 2)
	r, err := nflog.Open(LogGroup, int(tp.node.h))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pols := []structs.NetworkPolicy{{Namespace: "x", Name: "would-isolate-b", PolicyTypes: []string{"Ingress"}, Audit: true,
		Selector: structs.LabelSelector{MatchLabels: map[string]string{"app": "b"}}}}
	rs, err := policy.Compile(eps, pols, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Audit == nil {
		t.Fatal("no audit view compiled")
	}
	if err := a.Apply(rs); err != nil {
		t.Fatal(err)
	}
	c, err := tp.dial(0, netip.AddrPortFrom(ips[1], 8080))
	if err != nil {
		t.Fatalf("a -> b refused under an audit-only policy: %v", err)
	}
	if err := echo(c, "x"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	got := make(chan DropSource, 1)
	go func() {
		for {
			ps, err := r.Read()
			if err != nil {
				return
			}
			for _, p := range ps {
				if src, ok := a.DropSource(p.Prefix); ok {
					got <- src
					return
				}
			}
		}
	}()
	select {
	case src := <-got:
		if !src.Audit || src.Direction != "ingress" || len(src.Policies) != 1 || src.Policies[0] != "x/would-isolate-b" {
			t.Fatalf("logged %+v", src)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no audit log entry within 5s")
	}
	cs, err := a.Counters()
	if err != nil {
		t.Fatal(err)
	}
	var audited uint64
	for _, c := range cs {
		if c.Policy == "x/would-isolate-b" && c.Verdict == VerdictAudit {
			audited = c.Packets
		}
		if c.Verdict == VerdictDrop && c.Packets > 0 {
			t.Errorf("a drop was counted under an audit-only policy: %+v", c)
		}
	}
	if audited == 0 {
		t.Fatalf("no audit verdict counted: %+v", cs)
	}
}
