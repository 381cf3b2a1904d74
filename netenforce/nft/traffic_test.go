package nft

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hivesec/hive/netenforce/policy"
	"github.com/hivesec/hive/structs"
)

// probeTimeout bounds one TCP connect. Allowed connects finish in well
// under a millisecond on veths; a dropped SYN never completes, so the
// timeout only decides how long a denied probe takes.
const probeTimeout = 1500 * time.Millisecond

var probePorts = []uint16{8080, 8081}

// topology is a "node" namespace routing /32s to endpoint namespaces over
// veth pairs, without a bridge, as Hive's worker does.
type topology struct {
	node *testNS
	eps  []*testNS
	ips  []netip.Addr
}

const gateway = "198.18.0.1"

func newTopology(t *testing.T, ips []netip.Addr) *topology {
	t.Helper()
	tp := &topology{node: newNS(t), ips: ips}
	tp.node.exec(t, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	for i, ip := range ips {
		e := newNS(t)
		tp.eps = append(tp.eps, e)
		host := fmt.Sprintf("hv%d", i)
		// Created inside the namespaces, so removing them removes the veths.
		run(t, "ip", "-n", tp.node.name, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", e.name)
		run(t, "ip", "-n", tp.node.name, "addr", "add", gateway+"/32", "dev", host)
		run(t, "ip", "-n", tp.node.name, "link", "set", host, "up")
		run(t, "ip", "-n", tp.node.name, "route", "add", ip.String()+"/32", "dev", host)
		run(t, "ip", "-n", e.name, "addr", "add", ip.String()+"/32", "dev", "eth0")
		run(t, "ip", "-n", e.name, "link", "set", "eth0", "up")
		run(t, "ip", "-n", e.name, "route", "add", gateway, "dev", "eth0", "scope", "link")
		run(t, "ip", "-n", e.name, "route", "add", "default", "via", gateway, "dev", "eth0")
	}
	return tp
}

// listen starts an echo server on every probe port of every endpoint.
func (tp *topology) listen(t *testing.T) {
	t.Helper()
	for i, e := range tp.eps {
		for _, port := range probePorts {
			var l net.Listener
			err := e.do(func() (err error) {
				l, err = net.Listen("tcp", netip.AddrPortFrom(tp.ips[i], port).String())
				return err
			})
			if err != nil {
				t.Fatalf("listen in %s: %v", e.name, err)
			}
			t.Cleanup(func() { _ = l.Close() })
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						_, _ = io.Copy(c, c)
					}()
				}
			}()
		}
	}
}

// dial connects from endpoint i to addr.
func (tp *topology) dial(i int, addr netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := tp.eps[i].do(func() (err error) {
		d := net.Dialer{Timeout: probeTimeout, LocalAddr: &net.TCPAddr{IP: tp.ips[i].AsSlice()}}
		c, err = d.Dial("tcp", addr.String())
		return err
	})
	return c, err
}

type probe struct {
	src, dst int
	port     uint16
}

// observe probes every ordered pair of endpoints on every probe port in
// parallel and reports which connects succeeded.
func (tp *topology) observe(t *testing.T) map[probe]bool {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	got := map[probe]bool{}
	for s := range tp.eps {
		for d := range tp.eps {
			if s == d {
				continue
			}
			for _, port := range probePorts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p := probe{s, d, port}
					c, err := tp.dial(s, netip.AddrPortFrom(tp.ips[d], port))
					ok := err == nil
					if ok {
						ok = echo(c, "ping") == nil
						_ = c.Close()
					} else if !errors.Is(err, os.ErrDeadlineExceeded) && !isTimeout(err) {
						t.Errorf("probe %v: unexpected error %v", p, err)
					}
					mu.Lock()
					got[p] = ok
					mu.Unlock()
				}()
			}
		}
	}
	wg.Wait()
	return got
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// echo writes msg and expects it back within probeTimeout.
func echo(c net.Conn, msg string) error {
	if err := c.SetDeadline(time.Now().Add(probeTimeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo: got %q, want %q", buf, msg)
	}
	return nil
}

// TestTrafficMatchesOracle applies rulesets in the node namespace and
// checks real TCP connects between three endpoints against policy.Allowed.
func TestTrafficMatchesOracle(t *testing.T) {
	requirePrereqs(t)
	eps := []policy.Endpoint{
		ep("a", "x", "a", "198.19.0.10"),
		ep("b", "x", "b", "198.19.0.11"),
		ep("c", "y", "c", "198.19.0.12"),
	}
	ips := make([]netip.Addr, len(eps))
	for i := range eps {
		ips[i] = eps[i].IP
	}
	tp := newTopology(t, ips)
	tp.listen(t)
	a := New(WithNetNS(int(tp.node.h)))
	t.Cleanup(func() {
		if err := a.Delete(); err != nil {
			t.Errorf("delete: %v", err)
		}
	})

	denyAllIngress := structs.NetworkPolicy{Namespace: "x", Name: "deny-all"}
	egressToC := structs.NetworkPolicy{
		Namespace: "x", Name: "b-egress-only-c-8081", Selector: structs.LabelSelector{MatchLabels: map[string]string{"app": "b"}},
		PolicyTypes: []string{"Egress"},
		Egress: []structs.NetpolEgressRule{{
			To:    []structs.NetpolPeer{{NamespaceSelector: &structs.LabelSelector{MatchLabels: map[string]string{"name": "y"}}}},
			Ports: []structs.NetpolPort{{Protocol: "TCP", Port: 8081}},
		}},
	}
	cases := []struct {
		name       string
		pols       []structs.NetworkPolicy
		admin      []structs.AdminNetworkPolicy
		quarantine string
	}{
		{name: "no-policy"},
		{name: "deny-all-ingress", pols: []structs.NetworkPolicy{denyAllIngress}},
		{name: "allow-from-label", pols: []structs.NetworkPolicy{allowFrom("x", "a", "b", 8080)}},
		{name: "allow-from-label+deny-all+egress", pols: []structs.NetworkPolicy{denyAllIngress, allowFrom("x", "a", "b", 8080), egressToC}},
		{name: "allow-from-cidr-except", pols: []structs.NetworkPolicy{{
			Namespace: "x", Name: "cidr", Selector: structs.LabelSelector{MatchLabels: map[string]string{"app": "a"}},
			Ingress: []structs.NetpolIngressRule{{
				From:  []structs.NetpolPeer{{IPBlock: &structs.IPBlock{CIDR: "198.19.0.8/29", Except: []string{"198.19.0.11/32"}}}},
				Ports: []structs.NetpolPort{{Protocol: "TCP", Port: 8081}},
			}},
		}}},
		{name: "admin-deny-pass", pols: []structs.NetworkPolicy{denyAllIngress}, admin: []structs.AdminNetworkPolicy{
			{Name: "pass-b", Priority: 1, Subject: structs.AdminNetpolSubject{NamespaceSelector: structs.LabelSelector{}},
				Ingress: []structs.AdminNetpolRule{{Action: "Pass", Peers: []structs.NetpolPeer{{PodSelector: &structs.LabelSelector{MatchLabels: map[string]string{"app": "b"}}}}}}},
			{Name: "allow-8080", Priority: 2, Subject: structs.AdminNetpolSubject{NamespaceSelector: structs.LabelSelector{}},
				Ingress: []structs.AdminNetpolRule{{Action: "Allow", Peers: []structs.NetpolPeer{{NamespaceSelector: &structs.LabelSelector{}}},
					Ports: []structs.NetpolPort{{Protocol: "TCP", Port: 8080}}}}},
			{Name: "deny-from-y", Priority: 3, Subject: structs.AdminNetpolSubject{NamespaceSelector: structs.LabelSelector{}},
				Egress: []structs.AdminNetpolRule{{Action: "Deny", Peers: []structs.NetpolPeer{{IPBlock: &structs.IPBlock{CIDR: "198.19.0.12/32"}}}}}},
		}},
		{name: "quarantine", quarantine: "c"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eps := append([]policy.Endpoint(nil), eps...)
			qi := -1
			for i := range eps {
				if eps[i].ID == tc.quarantine {
					eps[i].Quarantined, qi = true, i
				}
			}
			// Quarantine must cut an established flow: open one first.
			var open net.Conn
			if qi >= 0 {
				if err := a.Apply(mustCompile(t, eps[:0:0], nil, nil)); err != nil {
					t.Fatal(err)
				}
				var err error
				open, err = tp.dial((qi+1)%len(eps), netip.AddrPortFrom(ips[qi], 8080))
				if err != nil {
					t.Fatalf("open a connection to %s before quarantine: %v", tc.quarantine, err)
				}
				defer open.Close()
				if err := echo(open, "before"); err != nil {
					t.Fatalf("echo before quarantine: %v", err)
				}
			}
			r := mustCompile(t, eps, tc.pols, tc.admin)
			if err := a.Apply(r); err != nil {
				t.Fatal(err)
			}
			if open != nil {
				if err := echo(open, "after"); err == nil {
					t.Errorf("established connection to quarantined %s still passes traffic", tc.quarantine)
				}
			}
			got := tp.observe(t)
			var table strings.Builder
			allowed := 0
			for p, ok := range got {
				f := policy.Flow{Src: ips[p.src], Dst: ips[p.dst], Protocol: policy.ProtoTCP, Port: p.port}
				want := policy.Allowed(f, eps, tc.pols, tc.admin)
				if ev := r.Evaluate(f); ev != want {
					t.Errorf("%s→%s:%d: Ruleset.Evaluate = %v, Allowed = %v", eps[p.src].ID, eps[p.dst].ID, p.port, ev, want)
				}
				if ok != want {
					t.Errorf("%s→%s:%d: connected = %v, policy.Allowed = %v", eps[p.src].ID, eps[p.dst].ID, p.port, ok, want)
				}
				if want {
					allowed++
				}
				fmt.Fprintf(&table, " %s→%s:%d=%v", eps[p.src].ID, eps[p.dst].ID, p.port, ok)
			}
			if tc.name != "no-policy" && (allowed == 0 || allowed == len(got)) {
				t.Errorf("case allows %d of %d probes; want a mix so that it tests something", allowed, len(got))
			}
			if t.Failed() {
				t.Logf("observed:%s\n%s", table.String(), tp.node.exec(t, "nft", "list", "table", "inet", "hive"))
			}
		})
	}
}
