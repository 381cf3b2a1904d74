package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/hivesec/hive/netenforce/policy"
	"github.com/hivesec/hive/structs"
)

// Acceptance tests for the network dataplane (issue 7), on 1 manager and 2
// workers running userspace WireGuard (this kernel has no module):
//
//  1. nine allocations (namespaces x, y, z × pods a, b, c; a and c on
//     worker 1, b on worker 2) get addresses in their workers' subnets of
//     the test cluster CIDR and reach each other with no policy, across
//     nodes only through hive-wg: a capture on worker 1's underlay during
//     a cross-node exchange sees only UDP between the workers' WireGuard
//     ports and never the payload;
//  2. for each of the Kubernetes network policy e2e standard cases, real
//     TCP and UDP probes on ports 80 and 81 between all nine allocations
//     match the oracle (policy.Allowed) on the policies the cluster holds;
//  3. invalid policies are refused with a clear error and change nothing;
//  4. quarantine cuts an open connection, and lifting it lets new ones
//     through;
//  5. a table outside inet hive on a worker is left exactly as it was.

var (
	netpolNamespaces = []string{"x", "y", "z"}
	netpolPods       = []string{"a", "b", "c"}
	netpolPorts      = []uint16{80, 81}
)

// netpolAlloc is one of the nine allocations the probes run between.
type netpolAlloc struct {
	ns, pod string
	id      string
	node    string
	addr    netip.Addr
	netns   netns.NsHandle
}

func (a *netpolAlloc) String() string { return a.ns + "/" + a.pod }

// inNetns runs f on an OS thread switched into ns; sockets f creates stay
// in ns.
func inNetns(ns netns.NsHandle, f func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("restore netns: %w", err) // thread stays locked and dies
	}
	runtime.UnlockOSThread()
	return ferr
}

// pinnedJob is a one-allocation sleep job in namespace ns, placed on node
// nodeID, with groupExtra (labels, a network block) in its group.
func pinnedJob(name, ns, nodeID, groupExtra string) string {
	return fmt.Sprintf(`job %q {
  namespace = %q
  labels = { tier = "test" }
  group "g" {
%s
    constraint {
      attribute = "${node.unique.id}"
      value     = %q
    }
    task "main" {
      driver = "containerd"
      config {
        image   = "docker.io/hive/busybox:test"
        command = "sleep"
        args    = ["3600"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
`, name, ns, groupExtra, nodeID)
}

func netpolJob(ns, pod, nodeID string) string {
	return pinnedJob(pod, ns, nodeID, fmt.Sprintf("    labels = { pod = %q }", pod))
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNetwork(t *testing.T) {
	c := newWorkerCluster(t, 2)
	w1, w2 := c.Workers()[0], c.Workers()[1]
	dir := t.TempDir()

	// A table of the node's own, which Hive must never touch.
	w1ns, err := netns.GetFromName(w1.NS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w1ns.Close() })
	if _, err := run("ip", "netns", "exec", w1.NS, "nft", "add table inet e2e-canary; add chain inet e2e-canary c { type filter hook input priority 10; policy accept; }; add rule inet e2e-canary c tcp dport 9 counter accept"); err != nil {
		t.Fatal(err)
	}
	canary := func() string {
		out, err := run("ip", "netns", "exec", w1.NS, "nft", "list", "table", "inet", "e2e-canary")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	canaryBefore := canary()

	for _, ns := range netpolNamespaces {
		c.MustCLI("namespace", "create", ns, "--label", "ns="+ns)
	}
	nodeFor := map[string]*Host{"a": w1, "b": w2, "c": w1}
	for _, ns := range netpolNamespaces {
		for _, pod := range netpolPods {
			f := writeFile(t, dir, ns+"-"+pod+".hcl", netpolJob(ns, pod, nodeFor[pod].NodeID()))
			c.MustCLI("job", "run", "--detach", f)
		}
	}

	// Wait for the nine allocations to run with their addresses.
	api := jobAPI(t, c)
	allocs := map[string]*netpolAlloc{}
	start := time.Now()
	c.WaitFor(3*time.Minute, "nine allocations running with addresses", func() error {
		for _, ns := range netpolNamespaces {
			for _, pod := range netpolPods {
				key := ns + "/" + pod
				if allocs[key] != nil {
					continue
				}
				list, _, err := api.Jobs().Allocations(ns, pod, nil)
				if err != nil {
					return err
				}
				for _, a := range live(list) {
					if a.ClientStatus == structs.AllocRunning && a.Address != "" {
						addr, err := netip.ParseAddr(a.Address)
						if err != nil {
							return fmt.Errorf("%s has address %q: %v", key, a.Address, err)
						}
						allocs[key] = &netpolAlloc{ns: ns, pod: pod, id: a.ID, node: a.NodeID, addr: addr}
					}
				}
				if allocs[key] == nil {
					return fmt.Errorf("%s not running with an address yet", key)
				}
			}
		}
		return nil
	})
	t.Logf("nine allocations running with addresses %v after job run", time.Since(start).Round(time.Millisecond))

	// Each worker's subnet is a distinct /24 of the cluster CIDR, and each
	// allocation's address lies in its worker's subnet.
	cidr := netip.MustParsePrefix(testClusterCIDR)
	subnets := map[string]netip.Prefix{}
	for _, w := range []*Host{w1, w2} {
		var n structs.NodePublic
		if err := c.CLIJSON(&n, "node", "status", w.NodeID()); err != nil {
			t.Fatal(err)
		}
		sn, err := netip.ParsePrefix(n.Subnet)
		if err != nil || sn.Bits() != 24 || !cidr.Contains(sn.Addr()) {
			t.Fatalf("%s has subnet %q, want a /24 of %s", w.Name, n.Subnet, cidr)
		}
		subnets[w.NodeID()] = sn
	}
	if subnets[w1.NodeID()] == subnets[w2.NodeID()] {
		t.Fatalf("both workers have subnet %s", subnets[w1.NodeID()])
	}
	ordered := make([]*netpolAlloc, 0, 9)
	for _, ns := range netpolNamespaces {
		for _, pod := range netpolPods {
			a := allocs[ns+"/"+pod]
			if want := nodeFor[pod].NodeID(); a.node != want {
				t.Fatalf("%s placed on %s, want %s", a, a.node, want)
			}
			if !subnets[a.node].Contains(a.addr) {
				t.Fatalf("%s has %s, outside its worker's subnet %s", a, a.addr, subnets[a.node])
			}
			ordered = append(ordered, a)
		}
	}

	// Open each allocation's network namespace (through its task's PID)
	// and start echo listeners on TCP and UDP 80 and 81 inside it.
	for _, a := range ordered {
		h := c.HostByNodeID(a.node)
		var pid string
		for task, st := range h.ctrTasks() {
			if strings.HasPrefix(task, a.id) {
				pid = st[0]
			}
		}
		if pid == "" {
			t.Fatalf("no task of %s (%s) on %s", a, a.id, h.Name)
		}
		ns, err := netns.GetFromPath("/proc/" + pid + "/ns/net")
		if err != nil {
			t.Fatalf("%s: open netns of pid %s: %v", a, pid, err)
		}
		a.netns = ns
		t.Cleanup(func() { _ = ns.Close() })
		startEchoServers(t, a)
	}

	// 1. No policy: everything reaches everything, across nodes through
	// hive-wg only.
	all := func(probe) bool { return true }
	expectTruthTable(t, ordered, "no policy", all)
	checkUnderlay(t, w1, w2, allocs["x/a"], allocs["x/b"])

	// 2. The standard cases, each alone.
	nsLabels := func(ns string) map[string]string {
		return map[string]string{"ns": ns, structs.LabelNamespace: ns}
	}
	eps := make([]policy.Endpoint, 0, len(ordered))
	for _, a := range ordered {
		eps = append(eps, policy.Endpoint{ID: a.id, Namespace: a.ns, IP: a.addr, NamespaceLabels: nsLabels(a.ns),
			Labels: map[string]string{"tier": "test", "pod": a.pod, structs.LabelJob: a.pod, structs.LabelGroup: "g"}})
	}
	w2subnet := subnets[w2.NodeID()].String()
	cases := []struct{ name, hcl string }{
		{"deny all ingress in x", `network_policy "deny-all" {
  namespace    = "x"
  policy_types = ["Ingress"]
}`},
		{"allow from the same namespace", `network_policy "same-ns" {
  namespace    = "x"
  policy_types = ["Ingress"]
  ingress {
    from {
      pod_selector {}
    }
  }
}`},
		{"allow x/a from namespace y by label", `network_policy "from-y" {
  namespace = "x"
  selector {
    match_labels = { pod = "a" }
  }
  policy_types = ["Ingress"]
  ingress {
    from {
      namespace_selector {
        match_labels = { ns = "y" }
      }
    }
  }
}`},
		{"x/a egress to TCP ports 81-90 only", `network_policy "egress-range" {
  namespace = "x"
  selector {
    match_labels = { pod = "a" }
  }
  policy_types = ["Egress"]
  egress {
    ports {
      protocol = "TCP"
      port     = 81
      end_port = 90
    }
  }
}`},
		{"x/a ingress from the cluster CIDR except worker 2's subnet", fmt.Sprintf(`network_policy "cidr-except" {
  namespace = "x"
  selector {
    match_labels = { pod = "a" }
  }
  policy_types = ["Ingress"]
  ingress {
    from {
      ip_block {
        cidr   = %q
        except = [%q]
      }
    }
  }
}`, testClusterCIDR, w2subnet)},
	}
	// An audit-mode policy: nothing is denied (the oracle ignores audit
	// policies too), but what it would deny is logged and counted.
	cases = append(cases, struct{ name, hcl string }{"audit-only deny all ingress in y", `network_policy "audit-y" {
  namespace    = "y"
  policy_types = ["Ingress"]
  audit        = true
}`})
	for i, tc := range cases {
		f := writeFile(t, dir, fmt.Sprintf("netpol-%d.hcl", i), tc.hcl)
		c.MustCLI("apply", "-f", f)
		var pols []structs.NetworkPolicy
		if err := c.CLIJSON(&pols, "netpol", "ls", "-A"); err != nil {
			t.Fatal(err)
		}
		if len(pols) != 1 {
			t.Fatalf("%s: %d policies in the cluster, want 1", tc.name, len(pols))
		}
		oracle := func(p probe) bool {
			return policy.Allowed(policy.Flow{Src: p.src.addr, Dst: p.dst.addr, Protocol: p.proto, Port: p.port}, eps, pols, nil)
		}
		expectTruthTable(t, ordered, tc.name, oracle)
		switch {
		case i == 0:
			checkDenyTelemetry(t, c, "x/deny-all", "drop", "netpol-denied")
		case pols[0].Audit:
			checkDenyTelemetry(t, c, "y/audit-y", "audit", "netpol-audit")
		}
		c.MustCLI("netpol", "delete", pols[0].Namespace+"/"+pols[0].Name)
	}
	expectTruthTable(t, ordered, "policies deleted", all)

	// Namespace isolation: z accepts traffic only from z, through the
	// policy the managers generate for it.
	c.MustCLI("namespace", "update", "z", "--isolation")
	isolated := []structs.NetworkPolicy{structs.NamespaceIsolationPolicy("z")}
	expectTruthTable(t, ordered, "namespace z isolated", func(p probe) bool {
		return policy.Allowed(policy.Flow{Src: p.src.addr, Dst: p.dst.addr, Protocol: p.proto, Port: p.port}, eps, isolated, nil)
	})
	c.MustCLI("namespace", "update", "z", "--isolation=false")
	expectTruthTable(t, ordered, "namespace z no longer isolated", all)

	checkPublishedPort(t, c, dir, w1)

	// 3. Invalid policies: a clear error, and nothing stored.
	bad := []struct{ name, hcl, want string }{
		{"bad CIDR", `network_policy "bad" {
  namespace = "x"
  ingress {
    from {
      ip_block { cidr = "198.19.0.0/33" }
    }
  }
}`, "cidr"},
		{"port 0", `network_policy "bad" {
  namespace = "x"
  ingress {
    ports { port = 0 }
  }
}`, "port"},
		{"port 70000", `network_policy "bad" {
  namespace = "x"
  ingress {
    ports { port = 70000 }
  }
}`, "port"},
		{"unknown protocol", `network_policy "bad" {
  namespace = "x"
  ingress {
    ports {
      protocol = "ICMPX"
      port     = 80
    }
  }
}`, "protocol"},
		{"bad selector operator", `network_policy "bad" {
  namespace = "x"
  selector {
    match_expressions {
      key      = "pod"
      operator = "Near"
      values   = ["a"]
    }
  }
}`, "operator"},
	}
	for i, b := range bad {
		f := writeFile(t, dir, fmt.Sprintf("bad-%d.hcl", i), b.hcl)
		_, stderr, err := c.CLI("apply", "-f", f)
		if err == nil {
			t.Fatalf("%s: apply succeeded", b.name)
		}
		if !strings.Contains(strings.ToLower(stderr), b.want) {
			t.Fatalf("%s: error %q does not name %q", b.name, stderr, b.want)
		}
		t.Logf("%s refused: %s", b.name, strings.TrimSpace(stderr))
	}
	var pols []structs.NetworkPolicy
	if err := c.CLIJSON(&pols, "netpol", "ls", "-A"); err != nil || len(pols) != 0 {
		t.Fatalf("after invalid policies: %d stored (%v)", len(pols), err)
	}

	// 4. Quarantine cuts an open connection within its node's next sync.
	xa, yb := allocs["x/a"], allocs["y/b"]
	conn, err := dialIn(xa, yb, 80)
	if err != nil {
		t.Fatalf("open %s -> %s: %v", xa, yb, err)
	}
	defer conn.Close()
	if err := echoOnce(conn, "before"); err != nil {
		t.Fatalf("echo before quarantine: %v", err)
	}
	// Echo every 20ms, each allowed 100ms, from the moment the command is
	// issued: the first echo that fails marks the cut (to within ~100ms).
	cutAt := make(chan time.Duration, 1)
	qStart := time.Now()
	go func() {
		for time.Since(qStart) < 30*time.Second {
			_ = conn.SetDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := conn.Write([]byte("q")); err == nil {
				b := make([]byte, 1)
				if _, err = io.ReadFull(conn, b); err == nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
			}
			cutAt <- time.Since(qStart)
			return
		}
		cutAt <- -1
	}()
	c.MustCLI("alloc", "quarantine", xa.id)
	cmdDone := time.Since(qStart)
	cut := <-cutAt
	if cut < 0 {
		t.Fatal("the open connection still echoes 30s after quarantine")
	}
	t.Logf("quarantine: command returned after %v; the open connection stopped echoing %v after the command started (%v after it returned; echo timeout 100ms)",
		cmdDone.Round(time.Millisecond), cut.Round(time.Millisecond), (cut - cmdDone).Round(time.Millisecond))
	quarantined := func(p probe) bool { return p.src != xa && p.dst != xa }
	expectTruthTable(t, ordered, "x/a quarantined", quarantined)
	c.MustCLI("alloc", "unquarantine", xa.id)
	expectTruthTable(t, ordered, "quarantine lifted", all)

	// 5. The node's own table is as it was.
	if after := canary(); after != canaryBefore {
		t.Fatalf("table inet e2e-canary changed:\nbefore:\n%s\nafter:\n%s", canaryBefore, after)
	}

	// 6. Each worker has the other as its one WireGuard peer, in
	// userspace; removing worker 2 removes its peer from worker 1.
	var n2 structs.NodePublic
	if err := c.CLIJSON(&n2, "node", "status", w2.NodeID()); err != nil {
		t.Fatal(err)
	}
	var st structs.NodeNetworkStatus
	if err := c.CLIJSON(&st, "node", "network", w1.NodeID()); err != nil {
		t.Fatal(err)
	}
	if st.Mode != "userspace" || len(st.Peers) != 1 || st.Peers[0].PublicKey != n2.WireGuardKey ||
		st.Peers[0].LastHandshake.IsZero() || len(st.Peers[0].AllowedIPs) != 1 || st.Peers[0].AllowedIPs[0] != n2.Subnet {
		t.Fatalf("%s's dataplane: mode %q, peers %+v; want userspace with %s (%s) for %s after a handshake", w1.Name, st.Mode, st.Peers, w2.Name, n2.WireGuardKey, n2.Subnet)
	}
	if len(st.Allocations) != 7 { // a and c of x, y, z, and the published one
		t.Fatalf("%s reports %d allocation networks, want 7", w1.Name, len(st.Allocations))
	}
	rmStart := time.Now()
	c.MustCLI("node", "remove", w2.NodeID())
	c.WaitFor(30*time.Second, w2.Name+"'s peer gone from "+w1.Name, func() error {
		var st structs.NodeNetworkStatus
		if err := c.CLIJSON(&st, "node", "network", w1.NodeID()); err != nil {
			return err
		}
		if len(st.Peers) != 0 {
			return fmt.Errorf("%s still has %d peers", w1.Name, len(st.Peers))
		}
		return nil
	})
	t.Logf("removing %s: its peer left %s's hive-wg within %v", w2.Name, w1.Name, time.Since(rmStart).Round(time.Millisecond))
}

// checkPublishedPort runs a job that publishes port "http" (to 80) on w1
// and reaches it from outside the cluster (the test's own namespace, on
// the hosts' bridge) at w1's address and the port the worker picked.
func checkPublishedPort(t *testing.T, c *Cluster, dir string, w1 *Host) {
	t.Helper()
	f := writeFile(t, dir, "published.hcl", pinnedJob("published", "default", w1.NodeID(), `    network {
      port "http" {
        to = 80
      }
    }`))
	c.MustCLI("job", "run", "--detach", f)
	api := jobAPI(t, c)
	var a *structs.Allocation
	c.WaitFor(time.Minute, "the published allocation running with its port", func() error {
		list, _, err := api.Jobs().Allocations("default", "published", nil)
		if err != nil {
			return err
		}
		for _, x := range live(list) {
			if x.ClientStatus == structs.AllocRunning && len(x.Published) == 1 {
				a = x
				return nil
			}
		}
		return fmt.Errorf("not running with a published port yet")
	})
	p := a.Published[0]
	if p.Label != "http" || p.To != 80 || p.HostPort < 20000 || p.HostPort > 32000 {
		t.Fatalf("published %+v, want http -> 80 from the dynamic range", p)
	}
	addr, err := netip.ParseAddr(a.Address)
	if err != nil {
		t.Fatal(err)
	}
	pa := &netpolAlloc{ns: "default", pod: "published", id: a.ID, node: a.NodeID, addr: addr}
	var pid string
	for task, st := range w1.ctrTasks() {
		if strings.HasPrefix(task, a.ID) {
			pid = st[0]
		}
	}
	ns, err := netns.GetFromPath("/proc/" + pid + "/ns/net")
	if err != nil {
		t.Fatalf("netns of the published allocation (pid %q): %v", pid, err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	pa.netns = ns
	startEchoServers(t, pa)
	target := net.JoinHostPort(w1.IP, strconv.Itoa(p.HostPort))
	c.WaitFor(30*time.Second, "an echo through "+target, func() error {
		conn, err := net.DialTimeout("tcp", target, probeTimeout)
		if err != nil {
			return err
		}
		defer conn.Close()
		return echoOnce(conn, "published")
	})
	t.Logf("published port: %s reaches %s:80 (allocation %s)", target, a.Address, a.ID)
}

// checkDenyTelemetry waits until the denials of policy show with verdict
// in hive_netpol_packets_total on /v1/metrics and as events of eventType.
func checkDenyTelemetry(t *testing.T, c *Cluster, policy, verdict, eventType string) {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(c.CACert)
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("CA %s: %v", c.CACert, err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	series := fmt.Sprintf(`policy=%q,verdict=%q`, policy, verdict)
	c.WaitFor(30*time.Second, "drops of "+policy+" on /v1/metrics", func() error {
		req, err := http.NewRequest(http.MethodGet, c.Host(0).URL()+"/v1/metrics", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.AdminToken)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		total := 0.0
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, "hive_netpol_packets_total{") && strings.Contains(line, series) {
				f := strings.Fields(line)
				v, err := strconv.ParseFloat(f[len(f)-1], 64)
				if err != nil {
					return fmt.Errorf("%q: %v", line, err)
				}
				total += v
			}
		}
		if total == 0 {
			return fmt.Errorf("no %s verdicts counted for %s yet", verdict, policy)
		}
		t.Logf("/v1/metrics: %v new flows with verdict %s by %s across the workers", total, verdict, policy)
		return nil
	})
	c.WaitFor(30*time.Second, eventType+" events naming "+policy, func() error {
		var events []structs.Event
		if err := c.CLIJSON(&events, "event", "ls"); err != nil {
			return err
		}
		for _, e := range events {
			if e.Type == eventType && strings.Contains(e.Meta["policies"], policy) {
				t.Logf("event: %s", e.Message)
				return nil
			}
		}
		return fmt.Errorf("no %s event for %s among %d events", eventType, policy, len(events))
	})
}

// startEchoServers listens on TCP and UDP netpolPorts inside a's netns and
// echoes what it gets.
func startEchoServers(t *testing.T, a *netpolAlloc) {
	t.Helper()
	for _, port := range netpolPorts {
		var l net.Listener
		var pc net.PacketConn
		err := inNetns(a.netns, func() (err error) {
			addr := netip.AddrPortFrom(a.addr, port).String()
			if l, err = net.Listen("tcp", addr); err != nil {
				return err
			}
			pc, err = net.ListenPacket("udp", addr)
			return err
		})
		if err != nil {
			t.Fatalf("%s: listen on %d: %v", a, port, err)
		}
		t.Cleanup(func() { _ = l.Close(); _ = pc.Close() })
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
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo(buf[:n], from)
			}
		}()
	}
}

const probeTimeout = 1500 * time.Millisecond

type probe struct {
	src, dst *netpolAlloc
	proto    uint8
	port     uint16
}

func (p probe) String() string {
	name := "tcp"
	if p.proto == policy.ProtoUDP {
		name = "udp"
	}
	return fmt.Sprintf("%s->%s %s/%d", p.src, p.dst, name, p.port)
}

func dialIn(src, dst *netpolAlloc, port uint16) (net.Conn, error) {
	var c net.Conn
	err := inNetns(src.netns, func() (err error) {
		d := net.Dialer{Timeout: probeTimeout}
		c, err = d.Dial("tcp", netip.AddrPortFrom(dst.addr, port).String())
		return err
	})
	return c, err
}

func echoOnce(c net.Conn, msg string) error {
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

// run probes p once: a TCP connect and echo, or a UDP datagram and its
// echo.
func (p probe) run() bool {
	if p.proto == policy.ProtoTCP {
		c, err := dialIn(p.src, p.dst, p.port)
		if err != nil {
			return false
		}
		defer c.Close()
		return echoOnce(c, "tcp-probe") == nil
	}
	var c net.Conn
	err := inNetns(p.src.netns, func() (err error) {
		c, err = net.Dial("udp", netip.AddrPortFrom(p.dst.addr, p.port).String())
		return err
	})
	if err != nil {
		return false
	}
	defer c.Close()
	return echoOnce(c, "udp-probe") == nil
}

// expectTruthTable probes every ordered pair of allocations on TCP and UDP
// 80 and 81 until the results match want (policy reaches the workers
// through Raft and a long poll, so a few rounds may see the old state),
// and fails with the differences if they never do.
func expectTruthTable(t *testing.T, allocs []*netpolAlloc, name string, want func(probe) bool) {
	t.Helper()
	var probes []probe
	for _, s := range allocs {
		for _, d := range allocs {
			if s == d {
				continue
			}
			for _, proto := range []uint8{policy.ProtoTCP, policy.ProtoUDP} {
				for _, port := range netpolPorts {
					probes = append(probes, probe{s, d, proto, port})
				}
			}
		}
	}
	start := time.Now()
	var diffs []string
	allowed := 0
	for round := 1; ; round++ {
		got := make([]bool, len(probes))
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		for i, p := range probes {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				got[i] = p.run()
			}()
		}
		wg.Wait()
		diffs, allowed = nil, 0
		for i, p := range probes {
			w := want(p)
			if w {
				allowed++
			}
			if got[i] != w {
				diffs = append(diffs, fmt.Sprintf("%s: got %v, want %v", p, got[i], w))
			}
		}
		if len(diffs) == 0 {
			t.Logf("%s: %d probes match the oracle (%d allowed) after %d round(s), %v", name, len(probes), allowed, round, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 45*time.Second {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	sort.Strings(diffs)
	if len(diffs) > 40 {
		diffs = append(diffs[:40], fmt.Sprintf("... and %d more", len(diffs)-40))
	}
	t.Fatalf("%s: %d of %d probes disagree with the oracle after 45s:\n%s", name, len(diffs), len(probes), strings.Join(diffs, "\n"))
}

// checkUnderlay captures on w1's underlay interface while src (on w1)
// and dst (on w2) exchange a marker over TCP and UDP: every packet between
// the two workers must be WireGuard (UDP to or from its port) or their own
// Serf gossip, no frame may carry an overlay address in its IP header, and
// none the marker.
func checkUnderlay(t *testing.T, w1, w2 *Host, src, dst *netpolAlloc) {
	t.Helper()
	ns, err := netns.GetFromName(w1.NS)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var fd, eth0 int
	err = inNetns(ns, func() error {
		var err error
		// Protocol 0 receives nothing until the bind below names the
		// interface: a socket opened for ETH_P_ALL would queue frames of
		// every interface (allocation veths included) in the meantime.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		eth0 = ifi.Index
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatalf("capture on %s eth0: %v", w1.Name, err)
	}
	defer unix.Close(fd)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})

	marker := []byte(fmt.Sprintf("HIVE-MARKER-%d", time.Now().UnixNano()))
	done := make(chan struct{})
	var frames, wgPackets, gossip int
	overlay := netip.MustParsePrefix(testClusterCIDR)
	var problems []string
	capDone := make(chan struct{})
	go func() {
		defer close(capDone)
		buf := make([]byte, 65536)
		a1, a2 := netip.MustParseAddr(w1.IP), netip.MustParseAddr(w2.IP)
		for {
			select {
			case <-done:
				return
			default:
			}
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Ifindex != eth0 {
				continue
			}
			frame := buf[:n]
			frames++
			if bytes.Contains(frame, marker) {
				problems = append(problems, "a frame on the underlay carries the payload in clear")
			}
			if n < 34 || binary.BigEndian.Uint16(frame[12:14]) != unix.ETH_P_IP {
				continue
			}
			ip := frame[14:]
			s, _ := netip.AddrFromSlice(ip[12:16])
			d, _ := netip.AddrFromSlice(ip[16:20])
			if overlay.Contains(s) || overlay.Contains(d) {
				problems = append(problems, fmt.Sprintf("an overlay packet %s -> %s on the underlay", s, d))
				continue
			}
			if !(s == a1 && d == a2 || s == a2 && d == a1) {
				continue
			}
			ihl := int(ip[0]&0xf) * 4
			if len(ip) < ihl+4 {
				continue
			}
			sp, dp := binary.BigEndian.Uint16(ip[ihl:]), binary.BigEndian.Uint16(ip[ihl+2:])
			switch {
			case ip[9] == unix.IPPROTO_UDP && (sp == structs.DefaultWireGuardPort || dp == structs.DefaultWireGuardPort):
				wgPackets++
			case (ip[9] == unix.IPPROTO_UDP || ip[9] == unix.IPPROTO_TCP) && (sp == structs.DefaultSerfPort || dp == structs.DefaultSerfPort):
				gossip++ // the workers' own (encrypted) membership gossip
			default:
				problems = append(problems, fmt.Sprintf("IP protocol %d %d -> %d between the workers", ip[9], sp, dp))
			}
		}
	}()
	for _, proto := range []uint8{policy.ProtoTCP, policy.ProtoUDP} {
		p := probe{src, dst, proto, 80}
		var c net.Conn
		var err error
		if proto == policy.ProtoTCP {
			c, err = dialIn(src, dst, 80)
		} else {
			err = inNetns(src.netns, func() (err error) {
				c, err = net.Dial("udp", netip.AddrPortFrom(dst.addr, 80).String())
				return err
			})
		}
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if err := echoOnce(c, string(marker)); err != nil {
			t.Fatalf("%s: echo: %v", p, err)
		}
		_ = c.Close()
	}
	time.Sleep(300 * time.Millisecond)
	close(done)
	<-capDone
	if wgPackets == 0 {
		t.Fatalf("captured %d frames on %s's underlay, none of them WireGuard between the workers: the exchange did not cross it", frames, w1.Name)
	}
	if len(problems) > 0 {
		t.Fatalf("underlay capture on %s: %s", w1.Name, strings.Join(problems, "; "))
	}
	t.Logf("underlay of %s: %d frames, %d WireGuard packets and %d gossip packets between the workers, no overlay address and no payload in clear", w1.Name, frames, wgPackets, gossip)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
