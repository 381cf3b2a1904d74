package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hivesec/hive/structs"
)

var (
	fxNetpols = []structs.NetworkPolicy{
		{Namespace: "shop", Name: "allow-web", CreateIndex: 7, ModifyIndex: 9,
			Selector:    structs.LabelSelector{MatchLabels: map[string]string{"app": "web"}, MatchExpressions: []structs.LabelSelectorRequirement{{Key: "tier", Operator: "In", Values: []string{"a", "b"}}}},
			PolicyTypes: []string{"Ingress", "Egress"},
			Ingress: []structs.NetpolIngressRule{{
				From: []structs.NetpolPeer{
					{PodSelector: &structs.LabelSelector{MatchLabels: map[string]string{"app": "lb"}}},
					{IPBlock: &structs.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}},
				},
				Ports: []structs.NetpolPort{{Port: 80}, {Protocol: "UDP", Port: 5000, EndPort: 5010}},
			}},
		},
		{Namespace: "web", Name: "deny-all", Audit: true},
	}
	fxAdminNetpols = []structs.AdminNetworkPolicy{
		{Name: "z-last", Priority: 900},
		{Name: "deny-metadata", Priority: 10, Egress: []structs.AdminNetpolRule{{Name: "metadata", Action: "Deny",
			Peers: []structs.NetpolPeer{{IPBlock: &structs.IPBlock{CIDR: "169.254.169.254/32"}}}}}},
	}
)

// serveNetwork answers the network policy, quarantine and namespace
// update routes. A PUT of a policy is checked as the server checks it.
func (f *fakeAPI) serveNetwork(r *http.Request, body []byte, reply func(int, any)) bool {
	p := r.URL.Path
	switch key := r.Method + " " + p; {
	case key == "GET /v1/netpols":
		ns := r.URL.Query().Get("namespace")
		if ns == "" && r.Header.Get("Authorization") == "Bearer dev" {
			reply(403, structs.ErrorResponse{Error: "forbidden: user:dev may not list netpol cluster-wide", Code: "forbidden"})
			return true
		}
		out := []structs.NetworkPolicy{}
		for _, np := range fxNetpols {
			if ns == "" || np.Namespace == ns {
				out = append(out, np)
			}
		}
		reply(200, out)
	case key == "GET /v1/netpol/shop/allow-web":
		reply(200, fxNetpols[0])
	case key == "DELETE /v1/netpol/shop/allow-web":
		reply(200, struct{}{})
	case strings.HasPrefix(p, "/v1/netpol/"):
		reply(404, structs.ErrorResponse{Error: "network policy " + strings.TrimPrefix(p, "/v1/netpol/") + " not found", Code: "not_found"})
	case key == "PUT /v1/netpols":
		var np structs.NetworkPolicy
		if err := json.Unmarshal(body, &np); err != nil {
			reply(400, structs.ErrorResponse{Error: err.Error(), Code: "bad_request"})
			return true
		}
		if np.Namespace == "missing" {
			reply(404, structs.ErrorResponse{Error: "network policy missing/" + np.Name + ": namespace: namespace \"missing\" does not exist; create it with `hive namespace create missing`", Code: "not_found"})
			return true
		}
		if err := np.Validate(); err != nil {
			reply(400, structs.ErrorResponse{Error: "network policy " + np.Namespace + "/" + np.Name + ": " + err.Error(), Code: "bad_request"})
			return true
		}
		reply(200, np)
	case key == "GET /v1/admin-netpols":
		reply(200, fxAdminNetpols)
	case key == "GET /v1/admin-netpol/deny-metadata":
		reply(200, fxAdminNetpols[1])
	case key == "DELETE /v1/admin-netpol/deny-metadata":
		reply(200, struct{}{})
	case key == "PUT /v1/admin-netpols":
		var np structs.AdminNetworkPolicy
		_ = json.Unmarshal(body, &np)
		reply(200, np)
	case strings.HasPrefix(p, "/v1/allocation/") && strings.HasSuffix(p, "/quarantine"):
		if strings.TrimSuffix(strings.TrimPrefix(p, "/v1/allocation/"), "/quarantine") != fxAllocRunning.ID {
			reply(404, structs.ErrorResponse{Error: "allocation not found", Code: "not_found"})
			return true
		}
		a := *fxAllocRunning
		a.Quarantined = r.Method == "POST"
		reply(200, a)
	case key == "GET /v1/node/w-net":
		reply(200, structs.NodePublic{ID: "w-net", Role: structs.RoleWorker, Subnet: "198.19.0.0/24", WireGuardKey: "mFLBb9Mko2aU/WOsAJHyfyYkL2mXJSIx7xOIDkuQq3Q=", WireGuardPort: 51820})
	case key == "PATCH /v1/namespace/web":
		var u structs.NamespaceUpdateRequest
		_ = json.Unmarshal(body, &u)
		ns := fxNamespaces[1]
		ns.Labels = u.SetLabels
		if u.Isolation != nil {
			ns.Isolation = *u.Isolation
		}
		reply(200, ns)
	default:
		return false
	}
	return true
}

func TestNetpolList(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "netpol", "ls")
	if req, _, _ := f.last(); req != "GET /v1/netpols" || f.queries[len(f.queries)-1] != "namespace=default" {
		t.Errorf("ls asked %q ?%s, want the default namespace", req, f.queries[len(f.queries)-1])
	}
	if ls := lines(out); len(ls) != 1 {
		t.Errorf("default has no policies, got:\n%s", out)
	}
	out, _ = mustRun(t, "netpol", "ls", "-A")
	header := []string{"NAMESPACE", "SELECTOR", "TYPES", "INGRESS", "EGRESS", "AUDIT"} // "NAME" is found inside "NAMESPACE"
	checkAligned(t, out, header)
	ls := lines(out)
	if len(ls) != 3 || !strings.Contains(ls[1], "app=web, tier In (a,b)") || !strings.Contains(ls[1], "Ingress,Egress") ||
		!strings.Contains(ls[2], "(all)") || !strings.HasSuffix(ls[2], "true") {
		t.Errorf("table:\n%s", out)
	}
	if q := f.queries[len(f.queries)-1]; q != "" {
		t.Errorf("-A sent ?%s", q)
	}
	out, _ = mustRun(t, "netpol", "ls", "-n", "shop", "-o", "json")
	var list []structs.NetworkPolicy
	if err := json.Unmarshal([]byte(out), &list); err != nil || !reflect.DeepEqual(list, fxNetpols[:1]) {
		t.Errorf("JSON %+v %v", list, err)
	}
	_, errs, code := hive(t, "netpol", "ls", "-A", "--token", "dev")
	if code != 1 || !strings.Contains(errs, "pass -n NAMESPACE to list one") {
		t.Errorf("forbidden -A: exit %d %q", code, errs)
	}
	n := f.count()
	for _, args := range [][]string{{"netpol", "ls", "-A", "-n", "shop"}, {"netpol", "ls", "-n", "Shop"}} {
		if _, errs, code := hive(t, args...); code != 1 || !strings.Contains(errs, "Error: ") {
			t.Errorf("hive %s: exit %d %q", strings.Join(args, " "), code, errs)
		}
	}
	if f.count() != n {
		t.Errorf("bad arguments made %d API calls", f.count()-n)
	}
}

func TestNetpolGetDelete(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "netpol", "get", "shop/allow-web")
	for _, want := range []string{
		"Namespace      shop", "Selector       app=web, tier In (a,b)", "Policy Types   Ingress,Egress",
		"Ingress (allowed from):\n  1. allocations app=lb in this namespace; 10.0.0.0/8 except 10.1.0.0/16\n     ports: TCP/80, UDP/5000-5010",
		"Egress (allowed to): none, so every connection is denied",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("get output lacks %q:\n%s", want, out)
		}
	}
	out, _ = mustRun(t, "netpol", "get", "allow-web", "-n", "shop", "-o", "json")
	var p structs.NetworkPolicy
	if err := json.Unmarshal([]byte(out), &p); err != nil || !reflect.DeepEqual(p, fxNetpols[0]) {
		t.Errorf("JSON %+v %v", p, err)
	}
	_, errs, code := hive(t, "netpol", "get", "shop/nope")
	if code != 1 || !strings.Contains(errs, "reading network policy shop/nope: network policy shop/nope not found") {
		t.Errorf("missing: exit %d %q", code, errs)
	}
	out, _ = mustRun(t, "netpol", "rm", "shop/allow-web")
	if req, _, _ := f.last(); req != "DELETE /v1/netpol/shop/allow-web" || out != "Deleted network policy shop/allow-web\n" {
		t.Errorf("delete %q %q", req, out)
	}
	n := f.count()
	for _, args := range [][]string{{"netpol", "get", "shop/Bad_Name"}, {"netpol", "delete", "shop/x", "-n", "web"}, {"netpol", "get"}} {
		if _, errs, code := hive(t, args...); code != 1 || !strings.Contains(errs, "Error: ") {
			t.Errorf("hive %s: exit %d %q", strings.Join(args, " "), code, errs)
		}
	}
	if f.count() != n {
		t.Errorf("bad arguments made %d API calls", f.count()-n)
	}
}

func TestAdminNetpol(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "admin-netpol", "ls")
	checkAligned(t, out, []string{"PRIORITY", "NAME", "NAMESPACES", "SELECTOR", "INGRESS", "EGRESS"})
	if ls := lines(out); len(ls) != 3 || !strings.HasPrefix(ls[1], "10 ") || !strings.HasPrefix(ls[2], "900 ") {
		t.Errorf("want evaluation order, got:\n%s", out)
	}
	out, _ = mustRun(t, "anp", "get", "deny-metadata")
	if !strings.Contains(out, "Egress rules (to):\n  1. deny (metadata): 169.254.169.254/32\n     ports: every port") {
		t.Errorf("get:\n%s", out)
	}
	mustRun(t, "admin-netpol", "delete", "deny-metadata")
	if req, _, _ := f.last(); req != "DELETE /v1/admin-netpol/deny-metadata" {
		t.Errorf("delete %q", req)
	}
}

func TestApplyNetworkPolicies(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "apply", "-f", filepath.Join("testdata", "netpol.hcl"))
	if out != "role/netpol-editor applied\nnetwork_policy/shop/allow-web applied\nadmin_network_policy/deny-metadata applied\n" {
		t.Errorf("stdout %q", out)
	}
	var reqs []string
	for i := 0; i < 3; i++ {
		req, _, _, _ := f.reqAt(i)
		reqs = append(reqs, req)
	}
	if want := []string{"PUT /v1/role/netpol-editor", "PUT /v1/netpols", "PUT /v1/admin-netpols"}; !reflect.DeepEqual(reqs, want) {
		t.Errorf("requests %q, want %q", reqs, want)
	}
	var np structs.NetworkPolicy
	if _, _, _, body := f.reqAt(1); json.Unmarshal([]byte(body), &np) != nil || np.Namespace != "shop" || np.Ingress[0].Ports[0].Port != 80 ||
		np.Ingress[0].From[0].PodSelector.MatchLabels["app"] != "lb" {
		t.Errorf("policy sent %+v", np)
	}

	// Problems of both kinds in one file come back together, in file
	// order, and nothing is sent.
	n := f.count()
	src := `network_policy "p" {
  namespace = "shop"
  selector {}
  ingress {
    from {
      ip_block { cidr = "10.0.0.0/33" }
    }
    ports {
      protocol = "ICMP"
      port     = 0
    }
  }
}
role "r" {
  rule {
    resources = ["jobz"]
    actions   = ["read"]
  }
}
admin_network_policy "a" {
  subject {}
  egress {
    action = "drop"
    peers {
      namespace_selector {}
    }
  }
}
`
	_, errs, code := hiveIn(t, src, "apply", "-f", "-")
	want := []string{
		`<stdin>:6:25: network_policy "p": ingress[0].from[0].cidr: invalid CIDR "10.0.0.0/33"`,
		`<stdin>:16:17: unknown resource "jobz"`,
		`<stdin>:23:14: admin_network_policy "a": egress[0].action: unknown action "drop"`,
	}
	last := -1
	for _, w := range want {
		i := strings.Index(errs, w)
		if i < 0 || i < last {
			t.Errorf("errors lack %q, or not in file order:\n%s", w, errs)
		}
		last = i
	}
	if code != 1 || !strings.Contains(errs, "nothing was applied") {
		t.Errorf("bad file: exit %d %q", code, errs)
	}
	// The server's refusal names the policy and the field.
	_, errs, code = hiveIn(t, "network_policy \"p\" {\n  namespace = \"missing\"\n  selector {}\n}\n", "apply", "-f", "-")
	if code != 1 || !strings.Contains(errs, "applying network_policy/missing/p: network policy missing/p: namespace: namespace \"missing\" does not exist") {
		t.Errorf("refused policy: exit %d %q", code, errs)
	}
	if f.count() != n+1 {
		t.Errorf("%d API calls, want only the refused one", f.count()-n)
	}
}

func TestAllocQuarantine(t *testing.T) {
	f := env(t)
	out, _ := mustRun(t, "alloc", "quarantine", fxAllocRunning.ID[:8])
	if req, _, _ := f.last(); req != "POST /v1/allocation/"+fxAllocRunning.ID+"/quarantine" || !strings.Contains(out, "Quarantined allocation "+fxAllocRunning.ID) {
		t.Errorf("quarantine: %q %q", req, out)
	}
	out, _ = mustRun(t, "alloc", "unquarantine", fxAllocRunning.ID)
	if req, _, _ := f.last(); req != "DELETE /v1/allocation/"+fxAllocRunning.ID+"/quarantine" || !strings.Contains(out, "Released allocation") {
		t.Errorf("unquarantine: %q %q", req, out)
	}
	if _, errs, code := hive(t, "alloc", "quarantine", "ffff"); code != 1 || !strings.Contains(errs, "quarantining allocation ffff") {
		t.Errorf("unknown allocation: exit %d %q", code, errs)
	}
}

func TestNamespaceLabels(t *testing.T) {
	f := env(t)
	mustRun(t, "ns", "create", "team-a", "--label", "team=a", "--label", "example.com/tier=web", "--isolation")
	var req structs.NamespaceRequest
	if _, _, body := f.last(); json.Unmarshal([]byte(body), &req) != nil || !req.Isolation ||
		!reflect.DeepEqual(req.Labels, map[string]string{"team": "a", "example.com/tier": "web"}) {
		t.Errorf("create sent %+v", req)
	}
	out, _ := mustRun(t, "ns", "update", "web", "--label", "env=prod", "--remove-label", "team", "--isolation=false")
	var u structs.NamespaceUpdateRequest
	req2, _, body := f.last()
	if req2 != "PATCH /v1/namespace/web" || json.Unmarshal([]byte(body), &u) != nil || u.Isolation == nil || *u.Isolation ||
		u.Description != nil || !reflect.DeepEqual(u.RemoveLabels, []string{"team"}) || u.SetLabels["env"] != "prod" {
		t.Errorf("update sent %s %s", req2, body)
	}
	if out != "Updated namespace web: labels env=prod, isolation off\n" {
		t.Errorf("update said %q", out)
	}
	// Without --isolation the update leaves it alone.
	mustRun(t, "ns", "update", "web", "--description", "")
	if _, _, body := f.last(); body != `{"description":""}` {
		t.Errorf("description-only update sent %s", body)
	}
	n := f.count()
	for _, args := range [][]string{
		{"ns", "create", "x", "--label", "a b=c"},
		{"ns", "create", "x", "--label", "novalue"},
		{"ns", "update", "web"},
		{"ns", "update", "web", "--label", "a=b", "--remove-label", "a"},
		{"ns", "update", "web", "--label", "a=-b"},
	} {
		if _, errs, code := hive(t, args...); code != 1 || !strings.Contains(errs, "Error: ") {
			t.Errorf("hive %s: exit %d %q", strings.Join(args, " "), code, errs)
		}
	}
	if f.count() != n {
		t.Errorf("bad arguments made %d API calls", f.count()-n)
	}
}

func TestInitClusterCIDRFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster-cidr", "10.0.0.0/33"}, `invalid cluster CIDR "10.0.0.0/33"`},
		{[]string{"--cluster-cidr", "10.0.0.1/16"}, "host bits are set; did you mean 10.0.0.0/16?"},
		{[]string{"--cluster-cidr", "10.0.0.0/24"}, "use a length from /25 to /30"},
		{[]string{"--cluster-cidr", "10.0.0.0/16", "--subnet-bits", "31"}, "use a length from /17 to /30"},
		{[]string{"--cluster-cidr", "fd00::/48"}, "only IPv4"},
		{[]string{"--subnet-bits", "26", "--restore", "snap.hsnap"}, "cannot be given with --restore"},
	} {
		args := append([]string{"init", "--data-dir", dir, "--advertise", "127.0.0.1"}, tc.args...)
		_, errs, code := hive(t, args...)
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("hive %s: exit %d %q, want %q", strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("refused inits left %s behind: %v", dir, err)
	}
}

func TestNodeStatusNetwork(t *testing.T) {
	env(t)
	out, _ := mustRun(t, "node", "status", "w-net")
	for _, want := range []string{"Subnet         198.19.0.0/24", "WireGuard      mFLBb9Mko2aU/WOsAJHyfyYkL2mXJSIx7xOIDkuQq3Q=, port 51820"} {
		if !strings.Contains(out, want) {
			t.Errorf("node status lacks %q:\n%s", want, out)
		}
	}
}
