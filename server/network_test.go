package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hivesec/hive/api"
	"github.com/hivesec/hive/audit"
	"github.com/hivesec/hive/identity"
	"github.com/hivesec/hive/structs"
)

func wgKey(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

func webPolicy(ns, name string) structs.NetworkPolicy {
	return structs.NetworkPolicy{
		Namespace: ns, Name: name,
		Selector:    structs.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		PolicyTypes: []string{structs.PolicyTypeIngress},
		Ingress: []structs.NetpolIngressRule{{
			From:  []structs.NetpolPeer{{PodSelector: &structs.LabelSelector{MatchLabels: map[string]string{"app": "lb"}}}},
			Ports: []structs.NetpolPort{{Protocol: "TCP", Port: 80}},
		}},
	}
}

// roleToken issues a token that holds only role, in namespace ns.
func roleToken(t *testing.T, c *rawCaller, admin, role, ns string) string {
	t.Helper()
	var out structs.TokenSecret
	r := postJSON(t, c, admin, "POST", "/v1/tokens", structs.TokenCreateRequest{Name: role + "-" + ns, Role: role, Namespace: ns}, &out)
	if r.status != http.StatusOK {
		t.Fatalf("create %s token in %s: %s", role, ns, r)
	}
	return out.Secret
}

func mustStatus(t *testing.T, what string, r *reply, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: %s, want %d", what, r, status)
	}
}

func TestNetworkPolicyAPI(t *testing.T) {
	tc := startCluster(t, 1)
	s := tc.leader(t)
	c := newRawCaller(t, s.APIAddr(), tc.boot.CACertPEM, nil, true)
	admin := tc.boot.AdminToken
	for _, ns := range []string{"web", "db"} {
		mustStatus(t, "create namespace "+ns, postJSON(t, c, admin, "PUT", "/v1/namespace/"+ns, nil, nil), http.StatusOK)
	}

	var stored structs.NetworkPolicy
	mustStatus(t, "put web/allow-web", postJSON(t, c, admin, "PUT", "/v1/netpols", webPolicy("web", "allow-web"), &stored), http.StatusOK)
	if stored.CreateIndex == 0 || !reflect.DeepEqual(stored.Ingress, webPolicy("web", "allow-web").Ingress) {
		t.Errorf("stored policy = %+v", stored)
	}
	// The namespace may come from ?namespace= instead of the body.
	noNS := webPolicy("", "deny-all")
	noNS.Ingress = nil
	mustStatus(t, "put with ?namespace=db", postJSON(t, c, admin, "PUT", "/v1/netpols?namespace=db", noNS, nil), http.StatusOK)
	wantError(t, "body and ?namespace= disagree", postJSON(t, c, admin, "PUT", "/v1/netpols?namespace=db", webPolicy("web", "x"), nil), http.StatusBadRequest, "bad_request")

	var all, inDB []structs.NetworkPolicy
	mustStatus(t, "list all", postJSON(t, c, admin, "GET", "/v1/netpols", nil, &all), http.StatusOK)
	mustStatus(t, "list db", postJSON(t, c, admin, "GET", "/v1/netpols?namespace=db", nil, &inDB), http.StatusOK)
	if len(all) != 2 || len(inDB) != 1 || inDB[0].Name != "deny-all" || inDB[0].Namespace != "db" {
		t.Errorf("all = %d policies, db = %+v", len(all), inDB)
	}
	mustStatus(t, "get", postJSON(t, c, admin, "GET", "/v1/netpol/web/allow-web", nil, nil), http.StatusOK)
	wantError(t, "get missing", postJSON(t, c, admin, "GET", "/v1/netpol/web/nope", nil, nil), http.StatusNotFound, "not_found")

	anp := structs.AdminNetworkPolicy{Name: "deny-metadata", Priority: 5, Egress: []structs.AdminNetpolRule{{
		Name: "metadata", Action: "Deny", Peers: []structs.NetpolPeer{{IPBlock: &structs.IPBlock{CIDR: "169.254.169.254/32"}}},
	}}}
	mustStatus(t, "put admin policy", postJSON(t, c, admin, "PUT", "/v1/admin-netpols", anp, nil), http.StatusOK)
	var anps []structs.AdminNetworkPolicy
	mustStatus(t, "list admin policies", postJSON(t, c, admin, "GET", "/v1/admin-netpols", nil, &anps), http.StatusOK)
	if len(anps) != 1 || anps[0].Priority != 5 {
		t.Errorf("admin policies = %+v", anps)
	}

	// A namespace's own admin reaches its policies and nothing else: the
	// namespace authorized is the one in the body, however its key is
	// spelled.
	webAdmin := roleToken(t, c, admin, "admin", "web")
	body := mustJSON(t, webPolicy("db", "sneaky"))
	body = bytes.Replace(body, []byte(`"Namespace"`), []byte(`"namespace"`), 1)
	wantError(t, "web admin writes a db policy", c.call(t, "PUT", "/v1/netpols", bearer(webAdmin), body), http.StatusForbidden, "forbidden")
	wantError(t, "web admin writes a db policy via ?namespace=", postJSON(t, c, webAdmin, "PUT", "/v1/netpols?namespace=db", noNS, nil), http.StatusForbidden, "forbidden")
	mustStatus(t, "web admin writes a web policy", postJSON(t, c, webAdmin, "PUT", "/v1/netpols", webPolicy("web", "mine"), nil), http.StatusOK)
	wantError(t, "web admin lists every namespace", postJSON(t, c, webAdmin, "GET", "/v1/netpols", nil, nil), http.StatusForbidden, "forbidden")
	mustStatus(t, "web admin lists web", postJSON(t, c, webAdmin, "GET", "/v1/netpols?namespace=web", nil, nil), http.StatusOK)
	wantError(t, "web admin writes an admin policy", postJSON(t, c, webAdmin, "PUT", "/v1/admin-netpols", anp, nil), http.StatusForbidden, "forbidden")
	wantError(t, "web admin relabels its namespace", postJSON(t, c, webAdmin, "PATCH", "/v1/namespace/web", structs.NamespaceUpdateRequest{SetLabels: map[string]string{"tier": "trusted"}}, nil), http.StatusForbidden, "forbidden")

	// A developer reads its namespace's policies and changes none.
	dev := roleToken(t, c, admin, "developer", "web")
	mustStatus(t, "developer reads web", postJSON(t, c, dev, "GET", "/v1/netpol/web/allow-web", nil, nil), http.StatusOK)
	wantError(t, "developer reads db", postJSON(t, c, dev, "GET", "/v1/netpol/db/deny-all", nil, nil), http.StatusForbidden, "forbidden")
	wantError(t, "developer writes", postJSON(t, c, dev, "PUT", "/v1/netpols", webPolicy("web", "dev"), nil), http.StatusForbidden, "forbidden")
	wantError(t, "developer deletes", postJSON(t, c, dev, "DELETE", "/v1/netpol/web/allow-web", nil, nil), http.StatusForbidden, "forbidden")
	wantError(t, "developer reads admin policies", postJSON(t, c, dev, "GET", "/v1/admin-netpols", nil, nil), http.StatusForbidden, "forbidden")

	// A viewer may see admin policies.
	viewer := roleToken(t, c, admin, "viewer", "")
	mustStatus(t, "viewer lists admin policies", postJSON(t, c, viewer, "GET", "/v1/admin-netpols", nil, nil), http.StatusOK)
	wantError(t, "viewer deletes an admin policy", postJSON(t, c, viewer, "DELETE", "/v1/admin-netpol/deny-metadata", nil, nil), http.StatusForbidden, "forbidden")

	mustStatus(t, "delete", postJSON(t, c, admin, "DELETE", "/v1/netpol/web/allow-web", nil, nil), http.StatusOK)
	wantError(t, "delete again", postJSON(t, c, admin, "DELETE", "/v1/netpol/web/allow-web", nil, nil), http.StatusNotFound, "not_found")
	mustStatus(t, "delete admin policy", postJSON(t, c, admin, "DELETE", "/v1/admin-netpol/deny-metadata", nil, nil), http.StatusOK)
	wantError(t, "get deleted admin policy", postJSON(t, c, admin, "GET", "/v1/admin-netpol/deny-metadata", nil, nil), http.StatusNotFound, "not_found")
}

// TestInvalidNetworkPoliciesChangeNothing sends policies with one mistake
// each: each is refused with a 4xx that names the field, and the state does
// not move.
func TestInvalidNetworkPoliciesChangeNothing(t *testing.T) {
	tc := startCluster(t, 1)
	s := tc.leader(t)
	c := newRawCaller(t, s.APIAddr(), tc.boot.CACertPEM, nil, true)
	admin := tc.boot.AdminToken
	mustStatus(t, "create namespace", postJSON(t, c, admin, "PUT", "/v1/namespace/web", nil, nil), http.StatusOK)
	mustStatus(t, "existing policy", postJSON(t, c, admin, "PUT", "/v1/netpols", webPolicy("web", "allow-web"), nil), http.StatusOK)

	np := func(mod func(*structs.NetworkPolicy)) []byte {
		p := webPolicy("web", "p")
		p.Ingress[0].From = append(p.Ingress[0].From, structs.NetpolPeer{IPBlock: &structs.IPBlock{CIDR: "10.0.0.0/8"}})
		mod(&p)
		return mustJSON(t, p)
	}
	anp := func(mod func(*structs.AdminNetworkPolicy)) []byte {
		p := structs.AdminNetworkPolicy{Name: "a", Priority: 1, Ingress: []structs.AdminNetpolRule{{Name: "r", Action: "deny",
			Peers: []structs.NetpolPeer{{NamespaceSelector: &structs.LabelSelector{}}}}}}
		mod(&p)
		return mustJSON(t, p)
	}
	for _, tc := range []struct {
		name, path string
		body       []byte
		status     int
		field      string
	}{
		{"bad CIDR", "/v1/netpols", np(func(p *structs.NetworkPolicy) { p.Ingress[0].From[1].IPBlock.CIDR = "10.0.0.0/40" }), 400, "ingress[0].from[1].cidr"},
		{"CIDR with host bits", "/v1/netpols", np(func(p *structs.NetworkPolicy) { p.Ingress[0].From[1].IPBlock.CIDR = "10.1.2.3/8" }), 400, "ingress[0].from[1].cidr"},
		{"except outside", "/v1/netpols", np(func(p *structs.NetworkPolicy) { p.Ingress[0].From[1].IPBlock.Except = []string{"192.168.0.0/16"} }), 400, "ingress[0].from[1].except[0]"},
		{"port 0", "/v1/netpols", np(func(p *structs.NetworkPolicy) { p.Ingress[0].Ports[0].Port = 0 }), 400, "ingress[0].ports[0].port"},
		{"port above 65535", "/v1/netpols", np(func(p *structs.NetworkPolicy) { p.Ingress[0].Ports[0].Port = 65536 }), 400, "ingress[0].ports[0].port"},
		{"end_port above 65535", "/v1/netpols", np(func(p *structs.NetworkPolicy) { p.Ingress[0].Ports[0].EndPort = 70000 }), 400, "ingress[0].ports[0].end_port"},
		{"unknown protocol", "/v1/netpols", np(func(p *structs.NetworkPolicy) { p.Ingress[0].Ports[0].Protocol = "ICMP" }), 400, "ingress[0].ports[0].protocol"},
		{"bad selector operator", "/v1/netpols", np(func(p *structs.NetworkPolicy) {
			p.Selector.MatchExpressions = []structs.LabelSelectorRequirement{{Key: "app", Operator: "Like", Values: []string{"w"}}}
		}), 400, "selector.match_expressions[0].operator"},
		{"bad selector key", "/v1/netpols", np(func(p *structs.NetworkPolicy) { p.Selector.MatchLabels = map[string]string{"-app": "web"} }), 400, "selector.match_labels"},
		{"In without values", "/v1/netpols", np(func(p *structs.NetworkPolicy) {
			p.Ingress[0].From[0].PodSelector.MatchExpressions = []structs.LabelSelectorRequirement{{Key: "app", Operator: "In"}}
		}), 400, "ingress[0].from[0].selector.match_expressions[0].values"},
		{"unknown policy type", "/v1/netpols", np(func(p *structs.NetworkPolicy) { p.PolicyTypes = []string{"Sideways"} }), 400, "policy_types"},
		{"ignored egress rules", "/v1/netpols", np(func(p *structs.NetworkPolicy) { p.Egress = []structs.NetpolEgressRule{{}} }), 400, "egress"},
		{"unknown namespace", "/v1/netpols", np(func(p *structs.NetworkPolicy) { p.Namespace = "nope" }), 404, "namespace"},
		{"bad name", "/v1/netpols", np(func(p *structs.NetworkPolicy) { p.Name = "Not_A_Name" }), 400, "name"},
		{"reserved name", "/v1/netpols", np(func(p *structs.NetworkPolicy) { p.Name = structs.NamespaceIsolationPolicyName }), 400, "name"},
		{"unknown field", "/v1/netpols", []byte(`{"Namespace":"web","Name":"p","Colour":"red"}`), 400, "Colour"},
		{"port as a string", "/v1/netpols", []byte(`{"Namespace":"web","Name":"p","Ingress":[{"Ports":[{"Port":"80"}]}]}`), 400, "Port"},
		{"admin bad action", "/v1/admin-netpols", anp(func(p *structs.AdminNetworkPolicy) { p.Ingress[0].Action = "drop" }), 400, "ingress[0].action"},
		{"admin priority", "/v1/admin-netpols", anp(func(p *structs.AdminNetworkPolicy) { p.Priority = 1001 }), 400, "priority"},
		{"admin rule without peers", "/v1/admin-netpols", anp(func(p *structs.AdminNetworkPolicy) { p.Ingress[0].Peers = nil }), 400, "ingress[0].from"},
		{"admin bad port", "/v1/admin-netpols", anp(func(p *structs.AdminNetworkPolicy) { p.Ingress[0].Ports = []structs.NetpolPort{{Port: 99999}} }), 400, "ingress[0].ports[0].port"},
	} {
		before := stateIndex(s)
		r := c.call(t, "PUT", tc.path, bearer(admin), tc.body)
		wantError(t, tc.name, r, tc.status, "")
		var e structs.ErrorResponse
		_ = json.Unmarshal(r.body, &e)
		if !strings.Contains(e.Error, tc.field) {
			t.Errorf("%s: error %q does not name %s", tc.name, e.Error, tc.field)
		}
		if after := stateIndex(s); after != before {
			t.Errorf("%s: state index moved from %d to %d", tc.name, before, after)
		}
	}
	var ps []structs.NetworkPolicy
	postJSON(t, c, admin, "GET", "/v1/netpols", nil, &ps)
	if len(ps) != 1 || ps[0].Name != "allow-web" {
		t.Errorf("policies after the refused writes: %+v", ps)
	}
}

func TestInitClusterCIDR(t *testing.T) {
	cfg := testConfig(t)
	cfg.ClusterCIDR, cfg.SubnetBits = "10.0.0.0/24", 24
	_, _, err := Init(cfg)
	if err == nil || !strings.Contains(err.Error(), "use a length from /25 to /30") {
		t.Fatalf("init with subnets as large as the range: %v", err)
	}
	if _, err := identity.Load(cfg.DataDir); !errors.Is(err, identity.ErrNoIdentity) {
		t.Errorf("a refused init left an identity: %v", err)
	}
	cfg.ClusterCIDR, cfg.SubnetBits = "2001:db8::/48", 64
	if _, _, err := Init(cfg); err == nil || !strings.Contains(err.Error(), "only IPv4") {
		t.Errorf("init with an IPv6 range: %v", err)
	}
}

// netCluster is a manager made with cluster CIDR 198.19.0.0/16 and /24
// subnets, as the e2e tests run it.
func netCluster(t *testing.T) *testCluster {
	t.Helper()
	cfg := testConfig(t)
	cfg.ClusterCIDR = "198.19.0.0/16"
	s, boot, err := Init(cfg)
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	tc := &testCluster{servers: []*Server{s}, boot: boot}
	t.Cleanup(s.Shutdown)
	// The test's workers do not heartbeat; keep them ready.
	s.liveness.mu.Lock()
	s.liveness.ttl = time.Hour
	s.liveness.mu.Unlock()
	return tc
}

// registerAgent registers w's agent with a WireGuard key and resources.
func registerAgent(t *testing.T, s *Server, w *testWorker, key string) {
	t.Helper()
	_, err := w.client(t, s).NodeAgent().Register(context.Background(), &structs.NodeRegisterRequest{
		Resources: structs.Resources{CPU: 4000, MemoryMB: 4096}, WireGuardKey: key, WireGuardPort: structs.DefaultWireGuardPort,
	})
	if err != nil {
		t.Fatalf("register %s: %v", w.node.ID, err)
	}
}

func TestNodeNetwork(t *testing.T) {
	tc := netCluster(t)
	s := tc.leader(t)
	c := newRawCaller(t, s.APIAddr(), tc.boot.CACertPEM, nil, true)
	admin := tc.boot.AdminToken
	ctx := context.Background()
	if cl := s.fsm.State().Snapshot().Cluster(nil); cl.ClusterCIDR != "198.19.0.0/16" || cl.SubnetBits != 24 {
		t.Fatalf("cluster config records %q /%d", cl.ClusterCIDR, cl.SubnetBits)
	}

	w1 := joinWorker(t, s.APIAddr(), tc.boot.WorkerToken, "")
	w2 := joinWorker(t, s.APIAddr(), tc.boot.WorkerToken, "")
	registerAgent(t, s, w1, wgKey(1))
	registerAgent(t, s, w2, wgKey(2))
	node := func(id string) *structs.Node { return s.fsm.State().Snapshot().Node(nil, id) }
	n1, n2 := node(w1.node.ID), node(w2.node.ID)
	if n1.Subnet != "198.19.0.0/24" || n2.Subnet != "198.19.1.0/24" || n1.WireGuardKey != wgKey(1) || n1.WireGuardPort != 51820 {
		t.Fatalf("workers: %s %s %q:%d, %s %s", n1.ID, n1.Subnet, n1.WireGuardKey, n1.WireGuardPort, n2.ID, n2.Subnet)
	}

	var pub structs.NodePublic
	mustStatus(t, "node status", postJSON(t, c, admin, "GET", "/v1/node/"+n1.ID, nil, &pub), http.StatusOK)
	if pub.Subnet != n1.Subnet || pub.WireGuardKey != wgKey(1) || pub.WireGuardPort != 51820 {
		t.Errorf("GET /v1/node/%s shows subnet %q, key %q, port %d", n1.ID, pub.Subnet, pub.WireGuardKey, pub.WireGuardPort)
	}

	// A malformed mesh identity is refused and changes nothing.
	before := stateIndex(s)
	for _, req := range []structs.NodeRegisterRequest{
		{WireGuardKey: "c2hvcnQ=", WireGuardPort: 51820},
		{WireGuardKey: wgKey(3), WireGuardPort: 0},
		{WireGuardKey: wgKey(3), WireGuardPort: 65536},
		{WireGuardPort: 51820},
	} {
		_, err := w1.client(t, s).NodeAgent().Register(ctx, &req)
		if apiStatus(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "wireguard_") {
			t.Errorf("register %+v: %v, want 400 naming the field", req, err)
		}
	}
	_, err := w1.client(t, s).NodeAgent().Register(ctx, &structs.NodeRegisterRequest{WireGuardKey: wgKey(2), WireGuardPort: 51820})
	if apiStatus(err) != http.StatusConflict {
		t.Errorf("register w2's key on w1: %v, want 409", err)
	}
	if after := stateIndex(s); after != before {
		t.Errorf("refused registrations moved the state from %d to %d", before, after)
	}

	// A namespace with labels and isolation, a job whose group carries
	// labels (count 0: nothing is scheduled), and an allocation of it
	// placed by hand on w1.
	mustStatus(t, "create web", postJSON(t, c, admin, "PUT", "/v1/namespace/web", structs.NamespaceRequest{Labels: map[string]string{"team": "a"}, Isolation: true}, nil), http.StatusOK)
	job := jobSpec("shop", "busybox", 0)
	job.Namespace, job.Labels, job.Groups[0].Labels = "web", map[string]string{"app": "shop", "tier": "x"}, map[string]string{"tier": "front"}
	mustStatus(t, "register job", postJSON(t, c, admin, "POST", "/v1/jobs", structs.JobRegisterRequest{Job: job}, nil), http.StatusOK)
	var alloc structs.Allocation
	mustStatus(t, "place allocation", postJSON(t, c, admin, "POST", "/v1/allocations", structs.AllocCreateRequest{
		Namespace: "web", NodeID: w1.node.ID, JobID: "shop", Group: "web",
		Tasks: []*structs.Task{{Name: "web", Config: structs.TaskConfig{Image: "busybox"}}},
	}, &alloc), http.StatusOK)
	mustStatus(t, "put policy", postJSON(t, c, admin, "PUT", "/v1/netpols", webPolicy("web", "allow-web"), nil), http.StatusOK)

	// Addresses: w1 may report one in its subnet, not outside it, and not
	// for another node's allocation.
	report := func(w *testWorker, addr string) error {
		return w.client(t, s).NodeAgent().UpdateAllocs(ctx, []structs.AllocUpdate{{ID: alloc.ID, ClientStatus: structs.AllocRunning, Address: addr}})
	}
	before = stateIndex(s)
	if err := report(w1, "198.19.1.5"); apiStatus(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "outside its node's subnet") {
		t.Errorf("address in w2's subnet: %v, want 400", err)
	}
	if err := report(w2, "198.19.1.5"); apiStatus(err) != http.StatusForbidden {
		t.Errorf("w2 reports w1's allocation: %v, want 403", err)
	}
	if after := stateIndex(s); after != before {
		t.Errorf("refused reports moved the state from %d to %d", before, after)
	}
	if err := report(w1, "198.19.0.5"); err != nil {
		t.Fatalf("report address: %v", err)
	}

	net2, meta, err := w2.client(t, s).NodeAgent().Network(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if net2.ClusterCIDR != "198.19.0.0/16" || net2.Subnet != "198.19.1.0/24" {
		t.Errorf("w2's view: cluster %s subnet %s", net2.ClusterCIDR, net2.Subnet)
	}
	wantPeer := structs.NetworkPeer{NodeID: w1.node.ID, PublicKey: wgKey(1), Subnet: "198.19.0.0/24",
		Endpoint: net.JoinHostPort(n1.Address, strconv.Itoa(structs.DefaultWireGuardPort))}
	if len(net2.Peers) != 1 || net2.Peers[0] != wantPeer {
		t.Errorf("w2's peers = %+v, want only %+v", net2.Peers, wantPeer)
	}
	wantEP := structs.NetworkEndpoint{
		AllocID: alloc.ID, NodeID: w1.node.ID, Namespace: "web", Address: "198.19.0.5",
		Labels:          map[string]string{"app": "shop", "tier": "front", structs.LabelJob: "shop", structs.LabelGroup: "web"},
		NamespaceLabels: map[string]string{"team": "a", structs.LabelNamespace: "web"},
	}
	if len(net2.Endpoints) != 1 || !reflect.DeepEqual(net2.Endpoints[0], wantEP) {
		t.Errorf("endpoints = %+v, want only %+v", net2.Endpoints, wantEP)
	}
	var names []string
	for _, p := range net2.Policies {
		names = append(names, p.Namespace+"/"+p.Name)
		if p.Name == structs.NamespaceIsolationPolicyName && !reflect.DeepEqual(p, structs.NamespaceIsolationPolicy("web")) {
			t.Errorf("generated policy = %+v", p)
		}
	}
	if !reflect.DeepEqual(names, []string{"web/allow-web", "web/" + structs.NamespaceIsolationPolicyName}) {
		t.Errorf("policies = %v, want the stored one and the isolation one", names)
	}
	// w1's own view lists w2 as its peer.
	net1, _, err := w1.client(t, s).NodeAgent().Network(ctx, nil)
	if err != nil || len(net1.Peers) != 1 || net1.Peers[0].NodeID != w2.node.ID || net1.Subnet != "198.19.0.0/24" {
		t.Errorf("w1's view: %+v, %v", net1, err)
	}

	// Long polls answer when something they are made of changes:
	// quarantine, then an admin policy, then a peer leaving. Each poll runs
	// beside the change; it loops over answers caused by other writes.
	type result struct {
		idx uint64
		err error
	}
	got := make(chan result, 1)
	poll := func(what string, idx uint64, done func(*structs.NodeNetwork) bool) {
		for {
			nn, m, err := w2.client(t, s).NodeAgent().Network(ctx, &api.QueryOptions{WaitIndex: idx, WaitTime: 20 * time.Second})
			switch {
			case err != nil:
				got <- result{err: fmt.Errorf("long poll for %s: %w", what, err)}
				return
			case m.LastIndex <= idx:
				got <- result{err: fmt.Errorf("long poll for %s ended without a change (index %d, asked for more than %d)", what, m.LastIndex, idx)}
				return
			case done(nn):
				got <- result{idx: m.LastIndex}
				return
			}
			idx = m.LastIndex
		}
	}
	wait := func() uint64 {
		t.Helper()
		r := <-got
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.idx
	}
	go poll("quarantine", meta.LastIndex, func(nn *structs.NodeNetwork) bool { return len(nn.Endpoints) == 1 && nn.Endpoints[0].Quarantined })
	var q structs.Allocation
	mustStatus(t, "quarantine", postJSON(t, c, admin, "POST", "/v1/allocation/"+alloc.ID+"/quarantine", nil, &q), http.StatusOK)
	if !q.Quarantined {
		t.Errorf("quarantine answered %+v", q)
	}
	idx := wait()
	if evs := eventsOf(s, structs.EventAllocQuarantined); len(evs) != 1 || evs[0].Subject != alloc.ID || !strings.Contains(evs[0].Message, "bootstrap-token") {
		t.Errorf("quarantine events = %+v", evs)
	}
	go poll("admin policy", idx, func(nn *structs.NodeNetwork) bool { return len(nn.AdminPolicies) == 1 })
	mustStatus(t, "admin policy", postJSON(t, c, admin, "PUT", "/v1/admin-netpols", structs.AdminNetworkPolicy{Name: "a", Ingress: []structs.AdminNetpolRule{{
		Action: "pass", Peers: []structs.NetpolPeer{{NamespaceSelector: &structs.LabelSelector{}}}}}}, nil), http.StatusOK)
	idx = wait()
	mustStatus(t, "release", postJSON(t, c, admin, "DELETE", "/v1/allocation/"+alloc.ID+"/quarantine", nil, &q), http.StatusOK)
	if q.Quarantined || len(eventsOf(s, structs.EventAllocUnquarantined)) != 1 {
		t.Errorf("release answered %+v; events %+v", q, eventsOf(s, structs.EventAllocUnquarantined))
	}
	go poll("peer removal", idx, func(nn *structs.NodeNetwork) bool { return len(nn.Peers) == 0 })
	mustStatus(t, "remove w1", postJSON(t, c, admin, "DELETE", "/v1/node/"+w1.node.ID, nil, nil), http.StatusOK)
	wait()

	// w1's subnet is free again: the next worker gets it.
	w3 := joinWorker(t, s.APIAddr(), tc.boot.WorkerToken, "")
	if got := node(w3.node.ID).Subnet; got != "198.19.0.0/24" {
		t.Errorf("w3 joined with subnet %q, want w1's freed 198.19.0.0/24", got)
	}

	// Quarantine is audited with its permission.
	if err := s.auditLog.Sync(); err != nil {
		t.Fatal(err)
	}
	if !auditHas(t, s, func(en audit.Entry) bool {
		return en.Method == "POST" && en.Resource == "alloc/quarantine" && en.Action == "update" && en.Name == alloc.ID && en.Namespace == "web" && en.Status == http.StatusOK
	}) {
		t.Error("no audit entry for the quarantine")
	}
}

func TestNamespaceLabelsAPI(t *testing.T) {
	tc := startCluster(t, 1)
	s := tc.leader(t)
	c := newRawCaller(t, s.APIAddr(), tc.boot.CACertPEM, nil, true)
	admin := tc.boot.AdminToken
	var ns structs.Namespace
	mustStatus(t, "create", postJSON(t, c, admin, "PUT", "/v1/namespace/web", structs.NamespaceRequest{Labels: map[string]string{"team": "a", "env": "dev"}}, &ns), http.StatusOK)
	if ns.Labels["team"] != "a" || ns.Isolation {
		t.Fatalf("created %+v", ns)
	}
	iso := true
	var updated structs.Namespace // decoding into ns would merge the label maps
	mustStatus(t, "update", postJSON(t, c, admin, "PATCH", "/v1/namespace/web", structs.NamespaceUpdateRequest{
		SetLabels: map[string]string{"env": "prod"}, RemoveLabels: []string{"team"}, Isolation: &iso,
	}, &updated), http.StatusOK)
	if !reflect.DeepEqual(updated.Labels, map[string]string{"env": "prod"}) || !updated.Isolation {
		t.Errorf("updated %+v", updated)
	}
	before := stateIndex(s)
	for _, bad := range []struct {
		name, method, path string
		body               any
		status             int
	}{
		{"create with a bad label key", "PUT", "/v1/namespace/other", structs.NamespaceRequest{Labels: map[string]string{"a b": "c"}}, 400},
		{"create with a bad label value", "PUT", "/v1/namespace/other", structs.NamespaceRequest{Labels: map[string]string{"a": "-c"}}, 400},
		{"update with a bad label", "PATCH", "/v1/namespace/web", structs.NamespaceUpdateRequest{SetLabels: map[string]string{"x/y/z": "c"}}, 400},
		{"update set and removed", "PATCH", "/v1/namespace/web", structs.NamespaceUpdateRequest{SetLabels: map[string]string{"a": "b"}, RemoveLabels: []string{"a"}}, 400},
		{"update a missing namespace", "PATCH", "/v1/namespace/nope", structs.NamespaceUpdateRequest{Isolation: &iso}, 404},
		{"update unknown field", "PATCH", "/v1/namespace/web", map[string]any{"labels": map[string]string{"a": "b"}}, 400},
	} {
		wantError(t, bad.name, postJSON(t, c, admin, bad.method, bad.path, bad.body, nil), bad.status, "")
	}
	if after := stateIndex(s); after != before {
		t.Errorf("refused namespace writes moved the state from %d to %d", before, after)
	}
}

func eventsOf(s *Server, typ string) []*structs.Event {
	var out []*structs.Event
	for _, ev := range s.fsm.State().Snapshot().Events(nil) {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// auditHas reports whether an entry of s's audit log satisfies match.
func auditHas(t *testing.T, s *Server, match func(audit.Entry) bool) bool {
	t.Helper()
	files, err := audit.Files(filepath.Join(s.cfg.DataDir, "audit"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		for {
			var en audit.Entry
			if err := dec.Decode(&en); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			if match(en) {
				return true
			}
		}
	}
	return false
}
